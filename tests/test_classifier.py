"""The offline classifier features: training, the cache, classifier-FID, `gan-lab eval` and `train-classifier`."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from gan_lab.engine import checkpoint
from gan_lab.errors import ConfigError
from gan_lab.eval import evaluate
from gan_lab.metrics import classifier
from gan_lab.metrics.fid import fid_from_features
from gan_lab.train import run
from gan_lab.train_classifier import run as train_classifier
from tests.conftest import TINY, compose_train, data_root, require_data
from tests.test_cli import gan_lab
from tests.test_eval import eval_cli

SHAPES = {"_target_": "gan_lab.data.shapes.Shapes", "image_size": 32, "channels": 3, "count": 2048,
          "num_classes": 4, "seed": 0}
# A classifier that trains in a fraction of a second: enough for the cache and eval plumbing.
QUICK = ["steps=5", "batch_size=16", "width=8"]


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread in this process: on a shared 2-core machine, small ops with two threads wait for a
    descheduled one (see classifier.one_cpu_thread), which turns seconds into minutes."""
    with classifier.one_cpu_thread(torch.device("cpu")):
        yield


def settings(tmp_path, *overrides: str):
    """Classifier settings (the defaults of configs/train_classifier.yaml) with a cache inside the test dir."""
    base = {"steps": 150, "batch_size": 64, "lr": 3e-3, "width": 16, "seed": 0, "cache_dir": str(tmp_path / "cache")}
    return OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))


def compose_app(name: str, overrides: list[str]):
    with initialize_config_module("gan_lab.configs", version_base="1.3"):
        return compose(name, overrides=overrides)


def test_classifier_learns_shapes(tmp_path):
    clf = classifier.load_or_train(SHAPES, settings(tmp_path), torch.device("cpu"))
    assert clf.trained and clf.evaluated_on == "held-out 204 of 2048 images"
    assert clf.accuracy["overall"] >= 0.95 and all(a >= 0.85 for a in clf.accuracy["per_class"])
    assert clf.class_names == ["circle", "square", "triangle", "cross"]
    features, logits = clf.net.extract(torch.zeros(3, 3, 32, 32, dtype=torch.uint8))
    assert features.shape == (3, classifier.FEATURES) and logits.shape == (3, 4)


def test_training_is_deterministic_from_the_seed():
    data = classifier.labelled_splits({**SHAPES, "count": 256})[0]
    quick = OmegaConf.from_dotlist([*QUICK, "lr=0.003", "seed=3"])
    a, b = (classifier.train(data, quick, torch.device("cpu")).state_dict() for _ in range(2))
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = classifier.train(data, OmegaConf.merge(quick, {"seed": 4}), torch.device("cpu")).state_dict()
    assert not torch.equal(a["head.weight"], other["head.weight"])


def test_cache_hit_and_rebuild(tmp_path, caplog, monkeypatch):
    quick, dataset, cpu = settings(tmp_path, *QUICK), {**SHAPES, "count": 256}, torch.device("cpu")
    first = classifier.load_or_train(dataset, quick, cpu)
    assert first.trained and first.path.parent == tmp_path / "cache" and first.path.is_file()

    with monkeypatch.context() as m:  # a cache hit trains nothing and returns the same weights
        m.setattr(classifier, "train", lambda *a: pytest.fail("a cache hit must not train"))
        hit = classifier.load_or_train(dataset, quick, cpu)
    assert not hit.trained and hit.path == first.path and hit.accuracy == first.accuracy
    assert all(torch.equal(v, hit.net.state_dict()[k]) for k, v in first.net.state_dict().items())
    assert classifier.load_or_train(dataset, quick, cpu, force=True).trained

    first.path.write_bytes(b"garbage")  # a corrupt file is rebuilt, never trusted
    with caplog.at_level(logging.WARNING, logger="gan_lab"):
        assert classifier.load_or_train(dataset, quick, cpu).trained
    assert "ignoring unreadable cache file" in caplog.text

    stored = torch.load(first.path, weights_only=True)  # weights changed on disk, key intact: rebuilt
    next(iter(stored["state"].values())).add_(1)
    checkpoint.save(stored, first.path)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gan_lab"):
        assert classifier.load_or_train(dataset, quick, cpu).trained
    assert "do not match their checksum" in caplog.text

    stored = torch.load(first.path, weights_only=True)  # a file holding another key: also rebuilt
    checkpoint.save({**stored, "key": {**stored["key"], "dataset": {**dataset, "seed": 1}}}, first.path)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gan_lab"):
        assert classifier.load_or_train(dataset, quick, cpu).trained
    assert "trained for other data or settings" in caplog.text

    # Where the files are (root), how they are fetched and the split do not change the key; the data does.
    key = classifier.cache_key
    assert key({**dataset, "root": "/a", "split": "test"}, quick) == key({**dataset, "root": "/b"}, quick)
    assert key({**dataset, "image_size": 28}, quick) != key(dataset, quick)


def test_classifier_fid_of_a_set_with_itself_is_zero(tmp_path):
    clf = classifier.load_or_train({**SHAPES, "count": 256}, settings(tmp_path, *QUICK), torch.device("cpu"))
    images = classifier.labelled_splits({**SHAPES, "count": 400})[0].tensors["real"]
    real, _ = clf.net.extract(images[:200])
    assert fid_from_features(real, real) == pytest.approx(0.0, abs=1e-8)
    other, _ = clf.net.extract(images[200:])
    noise, _ = clf.net.extract(torch.randint(0, 256, (200, 3, 32, 32), dtype=torch.uint8))
    assert 0 < fid_from_features(real, other) < fid_from_features(real, noise)


def test_sample_report_accuracy_per_requested_class_and_shares():
    logits = torch.eye(3)[[0, 1, 1, 2]] * 5  # predicted: 0, 1, 1, 2
    names = ["a", "b", "c"]
    values = classifier.sample_report(logits, torch.tensor([0, 1, 2, 2]), names)
    assert values == {"accuracy a": 1.0, "accuracy b": 1.0, "accuracy c": 0.5, "accuracy mean": pytest.approx(2.5 / 3)}
    assert classifier.sample_report(logits, None, names) == {"share a": 0.25, "share b": 0.5, "share c": 0.25}


def test_eval_with_classifier_features(tmp_path):
    quick = [f"eval.classifier.{s}" for s in QUICK]
    common = ["eval.features=classifier", "eval.num_samples=40", "eval.batch_size=20", "eval.available.kid.subset_size=10",
              *quick]
    run(compose_train([*TINY, "model=cgan", "dataset.count=64"]), tmp_path / "cgan")
    out = eval_cli(tmp_path, f"ckpt={tmp_path / 'cgan'}", *common)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "training the classifier" in out.stdout and classifier.NOTE in out.stdout
    report = json.loads(next((tmp_path / "cgan" / "eval").glob("*.json")).read_text())
    assert report["features"] == "classifier" and report["note"] == classifier.NOTE
    assert report["inception_weights_sha256"] is None and report["classifier"]["cache"].startswith(str(tmp_path))
    values = report["metrics"]
    assert {"classifier-FID", "classifier-KID", "classifier-IS", "classifier-precision"} <= set(values)
    per_class = [values[f"accuracy {name}"] for name in ("circle", "square", "triangle", "cross")]
    assert all(0 <= a <= 1 for a in per_class) and values["accuracy mean"] == pytest.approx(sum(per_class) / 4)

    # An unconditional model on the same dataset: the cached classifier, shares of predicted classes.
    run(compose_train([*TINY, "dataset.count=64"]), tmp_path / "dcgan")
    cfg = compose_app("eval", [f"ckpt={tmp_path / 'dcgan'}", *common, "eval.metrics=[fid,classes]",
                               f"eval.classifier.cache_dir={tmp_path / 'cache' / 'classifiers'}"])
    values = evaluate(cfg)["metrics"]
    shares = [v for k, v in values.items() if k.startswith("share ")]
    assert set(values) == {"classifier-FID", "share circle", "share square", "share triangle", "share cross"}
    assert values["classifier-FID"] > 0 and sum(shares) == pytest.approx(1.0)
    assert len(list((tmp_path / "cache" / "classifiers").glob("*.pt"))) == 1  # one classifier for both runs
    # `gan-lab train-classifier` with the same dataset and settings finds the classifier eval cached.
    same = compose_app("train_classifier", ["dataset.count=64", *[f"classifier.{s}" for s in QUICK],
                                            f"classifier.cache_dir={tmp_path / 'cache' / 'classifiers'}"])
    assert not train_classifier(same).trained

    for bad, message in (("eval.features=bogus", "eval.features must be one of"),
                         ("eval.classifier.steps=0", "eval.classifier.steps")):
        with pytest.raises(ConfigError, match=message):
            evaluate(compose_app("eval", [f"ckpt={tmp_path / 'dcgan'}", *common, bad]))


def test_train_classifier_cli(tmp_path):
    args = ("train-classifier", "dataset.count=256", "classifier.steps=5", "classifier.width=8")
    env = {"GAN_LAB_CACHE": str(tmp_path / "cache")}
    (tmp_path / "cwd").mkdir()
    out = gan_lab(*args, cwd=tmp_path / "cwd", env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    for row in ("accuracy circle", "accuracy cross", "accuracy overall", "held-out 25 of 256 images", "trained in"):
        assert row in out.stdout, row
    assert len(list((tmp_path / "cache" / "classifiers").glob("*.pt"))) == 1
    assert not any((tmp_path / "cwd").iterdir())  # nothing written into the working directory
    cfg = compose_app("train_classifier", [*args[1:], f"classifier.cache_dir={tmp_path / 'cache' / 'classifiers'}"])
    assert not train_classifier(cfg).trained  # the same settings again: from the cache


def test_train_classifier_needs_labelled_images(tmp_path):
    for dataset in ("toy2d", "shapes_paired"):
        cfg = compose_app("train_classifier", [f"dataset={dataset}", f"classifier.cache_dir={tmp_path}"])
        with pytest.raises(ConfigError, match="dataset: the classifier needs labelled images"):
            train_classifier(cfg)
    assert not list(tmp_path.iterdir())


def test_eval_and_train_classifier_share_the_settings():
    """The cache key includes the training settings: equal defaults let eval find what train-classifier cached."""
    ours, evals = compose_app("train_classifier", []).classifier, compose_app("eval", ["ckpt=x"]).eval.classifier
    assert {k: ours[k] for k in classifier.SETTINGS} == {k: evals[k] for k in classifier.SETTINGS}
    assert Path(ours.cache_dir).expanduser() == Path(evals.cache_dir).expanduser()


def test_mnist_classifier_accuracy(tmp_path):
    require_data("MNIST", "raw")
    dataset = {"_target_": "gan_lab.data.vision.MNIST", "root": str(data_root()), "split": "train",
               "download": False, "image_size": 32, "channels": 1, "num_classes": 10}
    clf = classifier.load_or_train(dataset, settings(tmp_path, "width=32"), torch.device("cpu"))
    assert clf.evaluated_on == "test split" and clf.class_names == [str(d) for d in range(10)]
    assert clf.accuracy["overall"] >= 0.95, clf.accuracy
