"""AnoGAN's search and f-AnoGAN's encoder (gan_lab.anogan), `gan-lab anomaly` end to end, dataset.classes."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from torch import nn

from gan_lab import config as config_lib
from gan_lab.anogan import (Encoder, anogan_parts, auroc, encoder_scores, search_scores, stratified, train_encoder)
from gan_lab.anomaly import anomaly
from gan_lab.data.shapes import Shapes
from gan_lab.data.vision import MNIST
from gan_lab.errors import ConfigError
from gan_lab.latent_search import frozen
from gan_lab.metrics import classifier
from gan_lab.models.dcgan import Discriminator, Generator
from gan_lab.train import run
from tests.conftest import TINY, compose_train, require_data
from tests.test_cli import gan_lab

Z = 8


@pytest.fixture(scope="module")
def nets():
    """A small DCGAN pair, untrained, its batch-norm statistics moved away from the identity."""
    torch.manual_seed(0)
    G, D = Generator(z_dim=Z, image_size=32, channels=1, width=8), Discriminator(image_size=32, channels=1, width=8)
    with torch.no_grad():
        D(G(torch.randn(64, Z)))  # train mode: running statistics of real use
    return G.eval(), D.eval()


def _search(G, D, x, z0, steps=30, weight=0.1, features=None, lr=0.01):
    with frozen(G, D):
        return search_scores(G, features or D.features, x, z0, steps, lr, weight)


def _state(*nets_):
    return [{k: v.clone() for k, v in n.state_dict().items()} for n in nets_]


# --- AnoGAN's search -----------------------------------------------------------------------------

def test_an_image_generated_from_z0_scores_exactly_zero_from_z0(nets):
    G, D = nets
    z0 = torch.randn(6, Z)
    with torch.no_grad():
        x = G(z0)
    scores = _search(G, D, x, z0)
    assert torch.equal(scores.z, z0)  # the L1 subgradient at 0 is 0: z0 stays a fixed point
    assert scores.score.max() == 0 and scores.residual.max() == 0 and scores.feature.max() == 0


def test_from_a_random_start_generated_images_score_far_below_real_ones(nets):
    G, D = nets
    torch.manual_seed(1)
    with torch.no_grad():
        generated = G(torch.randn(16, Z))
    real = Shapes(image_size=32, channels=1, count=16, seed=3).examples(16)["real"]
    start = torch.randn(16, Z)  # not the latents the images came from
    fake_scores = _search(G, D, generated, start, steps=200, lr=0.05).score
    real_scores = _search(G, D, real, start, steps=200, lr=0.05).score
    assert fake_scores.max() < 0.5 * real_scores.median()
    assert auroc(torch.cat([fake_scores, real_scores]), torch.arange(32) >= 16) == 1.0


def test_weight_zero_is_the_l1_residual_one_the_feature_residual(nets):
    G, D = nets
    x = Shapes(image_size=32, channels=1, count=4, seed=5).examples(4)["real"]
    z0 = torch.randn(4, Z)
    pixels = _search(G, D, x, z0, weight=0.0)
    assert torch.equal(pixels.score, pixels.residual)
    with torch.no_grad():  # by hand: sum |x - G(z*)| per image
        assert torch.allclose(pixels.residual, (x - G(pixels.z)).abs().flatten(1).sum(1))
    other = _search(G, D, x, z0, weight=0.0, features=lambda v: v.flatten(1)[:, :5] * 100)
    assert torch.equal(pixels.z, other.z)  # with weight 0 the features play no part in the search
    features = _search(G, D, x, z0, weight=1.0)
    assert torch.equal(features.score, features.feature)
    with torch.no_grad():
        assert torch.allclose(features.feature, (D.features(x) - D.features(G(features.z))).abs().sum(1))
    mixed = _search(G, D, x, z0, weight=0.1)
    assert torch.allclose(mixed.score, 0.9 * mixed.residual + 0.1 * mixed.feature)
    with torch.no_grad():  # the score is the loss at z_Gamma (§2.3), not a later or earlier one
        residual, feature, _ = anogan_parts(G, D.features, x, D.features(x), mixed.z)
    assert torch.allclose(mixed.score, 0.9 * residual + 0.1 * feature)
    assert not torch.allclose(mixed.score, 0.1 * residual + 0.9 * feature)  # not the reversed weighting (§1.7)


def test_scoring_leaves_g_and_d_unchanged(nets):
    G, D = nets
    G.train(), D.train()
    before = _state(G, D)
    _search(G, D, torch.rand(5, 1, 32, 32) * 2 - 1, torch.randn(5, Z), steps=10)
    assert G.training and D.training  # modes restored
    for saved, net in zip(before, (G, D)):
        assert all(torch.equal(saved[k], v) for k, v in net.state_dict().items())  # weights and BN buffers
    G.eval(), D.eval()


def test_a_batch_scores_as_each_image_alone(nets):
    G, D = nets
    x = Shapes(image_size=32, channels=1, count=4, seed=7).examples(4)["real"]
    z0 = torch.randn(4, Z)
    batch = _search(G, D, x, z0, steps=15)
    for i in range(4):
        alone = _search(G, D, x[i:i + 1], z0[i:i + 1], steps=15)
        assert torch.allclose(alone.z[0], batch.z[i], atol=1e-5)
        assert torch.allclose(alone.score[0], batch.score[i], rtol=1e-4)


# --- f-AnoGAN's encoder --------------------------------------------------------------------------

def test_encoder_training_updates_the_encoder_only(nets):
    G, D = nets
    torch.manual_seed(0)
    encoder = Encoder({"_target_": "gan_lab.models.dcgan.Discriminator", "image_size": 32, "channels": 1,
                       "width": 4}, [1, 32, 32], Z, "tanh")
    before_e = _state(encoder)[0]
    before = _state(G, D)
    data = Shapes(image_size=32, channels=1, count=32, seed=0)
    with frozen(G, D):
        train_encoder(encoder, G, D.features, lambda k: data.batch_at(k, 8, 0)["real"], 3, 1e-3, 1.0)
    for saved, net in zip(before, (G, D)):
        assert all(torch.equal(saved[k], v) for k, v in net.state_dict().items())
    assert not torch.equal(before_e["to_z.weight"], encoder.to_z.weight)
    assert encoder(torch.zeros(2, 1, 32, 32)).abs().max() < 1  # tanh output


def test_a_perfect_encoder_scores_generated_images_zero():
    """A linear G and its pseudo-inverse as E: G(E(G(z))) = G(z), so the izi_f score of G(z) is 0."""
    torch.manual_seed(0)
    W = torch.randn(16, 4, dtype=torch.float64)
    G = lambda z: (z @ W.T).view(-1, 1, 4, 4)  # noqa: E731
    E = lambda x: x.flatten(1) @ torch.linalg.pinv(W).T  # noqa: E731
    features = nn.Linear(16, 6, dtype=torch.float64)
    f = lambda x: torch.tanh(features(x.flatten(1)))  # noqa: E731
    z = torch.randn(5, 4, dtype=torch.float64)
    scores = encoder_scores(E, G, f, G(z), kappa=1.0)
    assert scores.score.abs().max() < 1e-20 and torch.allclose(scores.z, z)
    off = encoder_scores(E, G, f, torch.randn(5, 1, 4, 4, dtype=torch.float64), kappa=1.0)
    assert off.score.min() > 1e-3  # an image off G's range is not reconstructed
    assert torch.allclose(off.score, off.residual + off.feature)


# --- AUROC and the stratified subset ---------------------------------------------------------------

def test_auroc_on_hand_computed_cases():
    # normal scores 0.1, 0.4; anomalous 0.35, 0.8: 3 of the 4 (anomalous, normal) pairs are ordered
    assert auroc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])) == 0.75
    # a tie counts half: pairs (1 vs 1) 0.5 and (2 vs 1) 1
    assert auroc(torch.tensor([1.0, 1.0, 2.0]), torch.tensor([0, 1, 1])) == 0.75
    assert auroc(torch.tensor([3.0, 1.0, 2.0]), torch.tensor([1, 0, 0])) == 1.0
    assert auroc(torch.tensor([3.0, 1.0, 2.0]), torch.tensor([0, 1, 1])) == 0.0
    with pytest.raises(ValueError, match="both"):
        auroc(torch.tensor([1.0, 2.0]), torch.tensor([1, 1]))


def test_stratified_subset_keeps_each_class_share():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)[torch.randperm(100, generator=torch.Generator().manual_seed(0))]
    index = stratified(labels, 10)
    assert torch.equal(index, stratified(labels, 10)) and len(set(index.tolist())) == 10
    assert torch.bincount(labels[index]).tolist() == [5, 3, 2]
    assert torch.bincount(labels[stratified(labels, 7)]).tolist() == [4, 2, 1]  # largest remainders: 3.5, 2.1, 1.4
    assert torch.equal(stratified(labels, None), torch.arange(100))


# --- dataset.classes ----------------------------------------------------------------------------------

def test_dataset_classes_are_checked_before_any_file_is_read(tmp_path):
    for bad in ([10], [-1], [], [1, 1], "3", [1.5]):
        with pytest.raises(ValueError, match=r"dataset\.classes"):
            MNIST(root=str(tmp_path / "nowhere"), classes=bad)  # the classes error, not the missing data
    cfg = compose_train([*TINY, "dataset=mnist", f"dataset.root={tmp_path}", "dataset.classes=[3,12]"])
    with pytest.raises(ConfigError, match=r"dataset\.classes=\[3, 12\]: the dataset has no class 12"):
        run(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_dataset_classes_keep_those_images_in_order():
    root = require_data("MNIST", "raw", "train-images-idx3-ubyte").parents[2]
    every = MNIST(root=str(root), split="test")
    some = MNIST(root=str(root), split="test", classes=[5, 3])
    keep = (every.tensors["label"] == 3) | (every.tensors["label"] == 5)
    assert torch.equal(some.tensors["label"], every.tensors["label"][keep])
    assert torch.equal(some.tensors["real"], every.tensors["real"][keep])


def test_a_run_on_some_classes_gets_the_classifier_of_every_class(tmp_path):
    """eval.features=classifier on a one-class run: the classifier still learns (and is cached for) all ten classes."""
    root = require_data("cifar-10-partial").parent
    settings = OmegaConf.create({"steps": 2, "batch_size": 8, "lr": 1e-3, "width": 4, "seed": 0, "cache_dir": str(tmp_path)})
    node = {"_target_": "gan_lab.data.cifar_partial.CIFAR10Partial", "root": str(root), "split": "train",
            "image_size": 32, "channels": 3, "num_classes": 10}
    one = classifier.load_or_train({**node, "classes": [0]}, settings, torch.device("cpu"))
    every = classifier.load_or_train({**node, "classes": None}, settings, torch.device("cpu"))
    assert one.trained and not every.trained and one.path == every.path
    assert sum(a is not None for a in one.accuracy["per_class"]) == 10


# --- `gan-lab anomaly` -----------------------------------------------------------------------------------------

def _compose_anomaly(overrides: list[str]):
    config_lib.register()
    with initialize_config_module("gan_lab.configs", version_base="1.3"):
        return compose("anomaly", overrides=overrides)


@pytest.fixture(scope="module")
def one_class_run(tmp_path_factory):
    """A 4-step DCGAN on the airplanes of the partial CIFAR-10 (93 training images)."""
    root = require_data("cifar-10-partial").parent
    path = tmp_path_factory.mktemp("anomaly") / "run"
    run(compose_train([*TINY, "dataset=cifar10_partial", f"dataset.root={root}", "dataset.classes=[0]"]), path)
    return path


def test_anomaly_command_end_to_end(one_class_run, tmp_path):
    env = {"GAN_LAB_CACHE": str(tmp_path / "cache")}
    out = gan_lab("anomaly", f"ckpt={one_class_run}", "steps=3", "count=60", "batch_size=25", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(max((one_class_run / "anomaly").glob("*-search.json")).read_text())
    assert report["images"] == 60 and report["normal"] == 6 and report["normal_classes"] == [0]  # 97 of 932 are planes
    assert (report["steps"], report["weight"], report["step"]) == (3, 0.1, 4) and 0 <= report["auroc"] <= 1
    with open(report["files"]["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 60 and sum(r["label"] == "0" for r in rows) == 6
    assert all((r["anomalous"] == "1") == (r["label"] != "0") for r in rows)
    anomalous = torch.tensor([int(r["anomalous"]) for r in rows])
    assert report["auroc"] == pytest.approx(auroc(torch.tensor([float(r["score"]) for r in rows]), anomalous))
    assert (one_class_run / "anomaly").glob("*-search.png")

    args = ("method=encoder", "encoder.iterations=3", "encoder.batch_size=16")
    first = gan_lab("anomaly", f"ckpt={one_class_run}", *args, cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    again = gan_lab("anomaly", f"ckpt={one_class_run}", *args, cwd=tmp_path, env=env)
    assert again.returncode == 0 and "from the cache" in again.stdout
    reports = sorted((one_class_run / "anomaly").glob("*-encoder.json"))
    values = [json.loads(r.read_text()) for r in reports]
    assert values[0]["images"] == 932 and values[0]["encoder"]["trained_now"]
    assert values[0]["auroc"] == values[-1]["auroc"]  # the cached encoder scores as the one trained


def test_the_checkpoint_is_read_not_changed(one_class_run, tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_LAB_CACHE", str(tmp_path))
    file = one_class_run / "checkpoints" / "last.pt"
    before = file.read_bytes()
    report = anomaly(_compose_anomaly([f"ckpt={one_class_run}", "steps=2", "count=30", "progress=plain"]))
    again = anomaly(_compose_anomaly([f"ckpt={one_class_run}", "steps=2", "count=30", "progress=plain"]))
    assert report["auroc"] == again["auroc"] and file.read_bytes() == before  # the same z0 from the seed


def test_checkpoints_that_cannot_be_scored_are_clear_errors(tmp_path):
    root = require_data("cifar-10-partial").parent
    run(compose_train([*TINY, "dataset=cifar10_partial", f"dataset.root={root}"]), tmp_path / "every")
    with pytest.raises(ConfigError, match=r"no dataset\.classes"):
        anomaly(_compose_anomaly([f"ckpt={tmp_path / 'every'}"]))
    run(compose_train([*TINY, "model=ebgan", "dataset=cifar10_partial", f"dataset.root={root}",
                       "dataset.classes=[1]"]), tmp_path / "ebgan")
    with pytest.raises(ConfigError, match="exposes no features"):
        anomaly(_compose_anomaly([f"ckpt={tmp_path / 'ebgan'}"]))
    for bad, key in (("method=both", "method"), ("weight=1.5", "weight"), ("count=0", "count"), ("steps=-1", "steps"),
                     ("encoder.squash=sigmoid", "encoder.squash")):
        with pytest.raises(ConfigError, match=key):
            anomaly(_compose_anomaly([f"ckpt={tmp_path / 'ebgan'}", bad]))
