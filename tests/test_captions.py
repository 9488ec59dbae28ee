"""The shapes_text encoder (joint embedding loss, training, cache, `gan-lab train-text-encoder`) and the caption
metrics (caption_accuracy, caption_retrieval)."""

from __future__ import annotations


import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
from torch import nn

from gan_lab.data import text_encoder
from gan_lab.data.text import (COMBINATIONS, HELDOUT_SEED_OFFSET, ShapesText, captioned_shapes, combination_index,
                               heldout_captions, parse_attributes, tokenize)
from gan_lab.errors import ConfigError
from gan_lab.metrics import captions
from gan_lab.metrics.evaluate import Evaluation
from gan_lab.models.base import EvalSet, GANTask
from gan_lab.train_text_encoder import run as train_text_encoder

# A few seconds of training: enough for the plumbing and to beat chance by far.
TINY_ENCODER = [f"dataset.text_encoder.{s}" for s in ("count=1024", "steps=120", "width=8", "hidden=32", "word_dim=16",
                                                       "image_size=16")]


def compose_app(name: str, overrides: list[str]):
    with initialize_config_module("gan_lab.configs", version_base="1.3"):
        return compose(name, overrides=overrides)


def reference_loss(fea_txt: torch.Tensor, fea_img: torch.Tensor) -> float:
    """reedscot/cvpr2016 train_sje_hybrid.lua JointEmbeddingLoss, as its loops are written (labels[i] = i)."""
    batch, classes = len(fea_img), len(fea_txt)
    loss = 0.0
    for i in range(batch):
        own = float(fea_img[i] @ fea_txt[i])
        for j in range(classes):
            if j != i:
                loss += max(0.0, float(fea_img[i] @ fea_txt[j]) - own + 1)
    return loss / (batch * classes)


def test_joint_embedding_loss_is_the_references_symmetric_hinge():
    image, text = torch.tensor([[1.0], [0.0]]), torch.tensor([[1.0], [2.0]])
    alone = torch.eye(2, dtype=torch.bool)
    # scores [[1, 2], [0, 0]]: images 2/4 + 1/4, captions 0/4 + 3/4
    assert text_encoder.joint_embedding_loss(image, text, alone) == pytest.approx(1.5)
    gen = torch.Generator().manual_seed(0)
    image, text = torch.randn(6, 5, generator=gen), torch.randn(6, 5, generator=gen)
    expected = reference_loss(text, image) + reference_loss(image, text)  # symmetric=1: both directions
    alone = torch.eye(6, dtype=torch.bool)
    assert float(text_encoder.joint_embedding_loss(image, text, alone)) == pytest.approx(expected)
    # Captions as true of an image as its own are never negatives: all alike -> nothing to push apart.
    assert float(text_encoder.joint_embedding_loss(image, text, torch.ones(6, 6, dtype=torch.bool))) == 0.0
    # Matched pairs ahead of every other by the margin: zero loss.
    ahead = text_encoder.joint_embedding_loss(2 * torch.eye(3), torch.eye(3), torch.eye(3, dtype=torch.bool))
    assert float(ahead) == 0.0


def test_text_encoder_ignores_padding():
    torch.manual_seed(0)
    net = text_encoder.TextEncoder(20, 8, word_dim=4, hidden=5).eval()
    short = torch.tensor([[3, 4, 5, 0]])
    longer = torch.tensor([[3, 4, 5, 0, 0, 0, 0]])
    assert torch.allclose(net(short), net(longer), atol=1e-6)
    assert not torch.allclose(net(short), net(torch.tensor([[5, 4, 3, 0]])))  # word order matters


class _Perfect:
    """An embedding that knows the attributes: images and captions to the one-hot of their combination."""

    def __init__(self, attributes):
        self.attributes = attributes

    def embed_images(self, images):
        return nn.functional.one_hot(combination_index(self.attributes), len(COMBINATIONS)).float()

    def embed_text(self, tokens):
        return nn.functional.one_hot(combination_index(parse_attributes(tokens)), len(COMBINATIONS)).float()


def test_retrieval_of_a_perfect_encoder_and_of_wrong_captions():
    images, attributes = captioned_shapes(250, 6, 5, (0.3, 0.7), 15.0, 16)
    net = _Perfect(attributes[:200])
    true = tokenize(heldout_captions(attributes))
    assert text_encoder.retrieval(net, images, attributes, true) == {"top1": 1.0, "top5": 1.0}  # 2 pools of 100
    wrong = tokenize(heldout_captions(attributes[torch.randperm(250, generator=torch.Generator().manual_seed(0))]))
    scores = text_encoder.retrieval(net, images, attributes, wrong)
    assert scores["top1"] < 0.1 and scores["top5"] < 0.2


def test_train_text_encoder_trains_caches_and_beats_chance(tmp_path, caplog):
    cfg = compose_app("train_text_encoder",
                      [*TINY_ENCODER, f"dataset.text_encoder.cache_dir={tmp_path}", "device=cpu"])
    first = train_text_encoder(cfg)
    assert first.trained and first.path.parent == tmp_path and first.path.is_file()
    # Chance: top-1 about 1 / 100 (a bit more with repeated attributes in a pool), top-5 about 5 / 100.
    assert first.retrieval["top1"] > 0.15 and first.retrieval["top5"] > 0.4, first.retrieval
    again = train_text_encoder(cfg)
    assert not again.trained and again.retrieval == first.retrieval
    assert all(torch.equal(v, again.net.state_dict()[k]) for k, v in first.net.state_dict().items())
    # The dataset with encoder=trained uses the cached encoder (no training) for its captions.
    node = OmegaConf.to_container(cfg.dataset, resolve=True)
    data = ShapesText(**{k: v for k, v in node.items() if k != "_target_"})
    assert data.text_encoder.path == first.path and not data.text_encoder.trained
    assert torch.allclose(data.tensors["embeddings"][0, 0], first.net.embed_text(data.captions[0, :1])[0], atol=1e-5)
    assert data.embed(["a small red star on the left"]).shape == (1, data.text_dim)
    # A dataset of another image size shares the encoder (trained at its own image_size).
    other = ShapesText(**{k: v for k, v in node.items() if k not in ("_target_", "image_size", "count")},
                       image_size=24, count=8)
    assert other.text_encoder.path == first.path
    # Other settings: another cache entry.
    spec = data.encoder_spec()[0]
    assert text_encoder.EncoderSpec(6, 0, (0.3, 0.7), 15.0, 128, {**spec.settings, "seed": 1}).key() != spec.key()
    assert text_encoder.EncoderSpec(6, 1, (0.3, 0.7), 15.0, 128, spec.settings).key() != spec.key()


def test_bad_encoder_settings_name_the_key(tmp_path):
    cfg = compose_app("train_text_encoder",
                      [f"dataset.text_encoder.cache_dir={tmp_path}", "dataset.text_encoder.steps=0"])
    with pytest.raises(ConfigError, match="dataset.text_encoder.steps"):
        train_text_encoder(cfg)
    cfg = compose_app("train_text_encoder", ["dataset=shapes"])
    with pytest.raises(ConfigError, match="no trained text encoder"):
        train_text_encoder(cfg)


# -- the metrics --

ATTRIBUTE_SETTINGS = dict(count=2048, steps=300, batch_size=64, lr=2e-3, width=16, seed=0)


@pytest.fixture(scope="module")
def attribute_classifier(tmp_path_factory):
    data = ShapesText(count=16, encoder="oracle")
    settings = captions._Settings(**ATTRIBUTE_SETTINGS, cache_dir=str(tmp_path_factory.mktemp("attr")))
    return data, captions.load_or_train(data, settings, torch.device("cpu"))


def test_caption_accuracy_of_real_images_near_one_and_shuffled_near_chance(attribute_classifier):
    data, clf = attribute_classifier
    images, attributes = captioned_shapes(600, 6, 7 + HELDOUT_SEED_OFFSET, data.scale, data.max_tilt, 32)
    own = captions.attribute_accuracy(clf.net, images, attributes)
    shuffled = captions.attribute_accuracy(clf.net, images, attributes[torch.randperm(600)])
    assert own["mean"] > 0.7 and own["colour"] > 0.8, own
    assert shuffled["mean"] < 0.35, shuffled
    assert own["mean"] - shuffled["mean"] > 0.4


def test_image_to_caption_top1():
    gen = torch.Generator().manual_seed(0)
    text = nn.functional.normalize(torch.randn(150, 8, generator=gen), dim=1)  # unit rows: x.x beats x.y
    assert captions.image_to_caption_top1(text.clone(), text, None) == 1.0
    assert captions.image_to_caption_top1(text[torch.randperm(150, generator=gen)], text, None) < 0.1
    # With attributes: the best caption may be another one asking for the same attributes.
    attributes = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]])
    swapped = torch.eye(3)[[1, 0, 2]]
    assert captions.image_to_caption_top1(swapped, torch.eye(3), attributes) == 1.0
    assert captions.image_to_caption_top1(swapped, torch.eye(3), None) == pytest.approx(1 / 3)


class _Replay(GANTask):
    """A stub text-to-image task whose "generator" returns given images in order: the set's own real images
    (a perfect generator) or any others."""

    data_kinds = ("text",)

    def __init__(self, images: torch.Tensor):
        super().__init__(nn.Linear(1, 1), nn.Linear(1, 1))
        self.images, self.cursor = images, 0

    def eval_sets(self, data, n):
        c = data.eval_conditions(n)
        self.cursor = 0
        return [EvalSet("", c["real"], given={"text": c["text"]}, attributes=c["attributes"])]

    def sample(self, n, G, **given):
        assert given["text"].shape == (n, 128)
        out = self.images[self.cursor:self.cursor + n]
        self.cursor += n
        return {"samples": out}


def _evaluate(data, fakes, metric, n=200):
    settings = OmegaConf.create({"num_samples": n, "batch_size": 64})
    task = _Replay(fakes)
    ev = Evaluation(task, task.G, data, settings, torch.device("cpu"), {"_target_": "shapes_text"})
    [s] = ev.sets
    assert metric.applies(ev, s)
    return metric(ev, s)


def test_caption_metrics_through_an_evaluation(tmp_path, attribute_classifier):
    data, _ = attribute_classifier
    real = data.eval_conditions(200)["real"]
    accuracy = captions.CaptionAccuracy(**ATTRIBUTE_SETTINGS, cache_dir=str(attribute_classifier[1].path.parent))
    perfect = _evaluate(data, real, accuracy)
    wrong = _evaluate(data, real.flip(0), accuracy)
    assert perfect["caption accuracy mean"] > 0.7 and wrong["caption accuracy mean"] < 0.4
    assert set(perfect) == {f"caption accuracy {k}" for k in ("shape", "colour", "size", "position", "mean")}
    # Samples smaller than the data (StackGAN's Stage I draws at a quarter of the side) are read enlarged.
    half = nn.functional.interpolate(real, scale_factor=0.5, mode="bilinear", antialias=True)
    assert _evaluate(data, half, accuracy)["caption accuracy mean"] > 0.6

    # caption_retrieval needs the trained encoder's text: the oracle's does not apply.
    retrieval = captions.CaptionRetrieval()
    task = _Replay(real)
    settings = OmegaConf.create({"num_samples": 200, "batch_size": 64})
    ev = Evaluation(task, task.G, data, settings, torch.device("cpu"), {})
    assert not retrieval.applies(ev, ev.sets[0])
    cfg = compose_app("train_text_encoder", [*TINY_ENCODER, f"dataset.text_encoder.cache_dir={tmp_path}",
                                             "dataset.count=16"])
    node = OmegaConf.to_container(cfg.dataset, resolve=True)
    trained = ShapesText(**{k: v for k, v in node.items() if k != "_target_"})
    real = trained.eval_conditions(200)["real"]
    perfect = _evaluate(trained, real, retrieval)
    assert perfect["caption retrieval top-1"] == perfect["caption retrieval top-1 (real)"] > 0.15
    assert _evaluate(trained, real.flip(0), retrieval)["caption retrieval top-1"] < 0.1


def test_classifier_features_on_shapes_text(tmp_path):
    from gan_lab.metrics import classifier

    settings = OmegaConf.create({"steps": 5, "batch_size": 16, "lr": 3e-3, "width": 8, "seed": 0,
                                 "cache_dir": str(tmp_path)})
    node = {"_target_": "gan_lab.data.text.ShapesText", "count": 256, "encoder": "oracle"}
    clf = classifier.load_or_train(node, settings, torch.device("cpu"))
    assert clf.trained and clf.class_names == ["circle", "square", "triangle", "cross", "ring", "star"]
    with pytest.raises(ConfigError, match="disjoint classes"):
        classifier.load_or_train({"_target_": "gan_lab.data.text_embeddings.StackGANText", "split": "train"},
                                 settings, torch.device("cpu"))


def test_a_cached_network_leaves_the_global_rng_alone(tmp_path):
    """A run's weights must not depend on whether shapes_text's encoder was trained now or read from the
    cache (the clean-clone CI found a resumed run whose first half trained it and second half read it)."""
    settings = dict(image_size=16, count=64, steps=2, batch_size=8, lr=2e-3, word_dim=8, hidden=8, width=4, seed=0,
                    cache_dir=str(tmp_path))
    draws = []
    for _ in ("trained now", "from the cache"):
        torch.manual_seed(0)
        ShapesText(count=16, text_encoder=settings)
        draws.append(torch.rand(3))
    torch.manual_seed(0)
    assert torch.equal(draws[0], draws[1]) and torch.equal(draws[0], torch.rand(3))
