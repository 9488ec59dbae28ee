"""Does a text-to-image generator draw what its captions say? Metrics of ``dataset=shapes_text``.

- ``caption_accuracy``: an attribute classifier (the CNN of ``gan_lab.metrics.classifier`` with one softmax
  head per attribute: shape, colour, size, position), trained on real ``shapes_text`` images and cached,
  reads each generated image (resized to the dataset's side when it differs); the metric is the share of images whose attribute matches what their caption
  asks for (the eval set's ``attributes``), per attribute and their mean. The classifier's own accuracy on
  held-out real images is reported beside it: the ceiling.
- ``caption_retrieval``: R-precision in the spirit of AttnGAN's (Xu et al. 2018, §5; as recalled, not
  verified): the image branch of the dataset's trained joint embedding (``gan_lab.data.text_encoder``)
  scores each generated image against its own caption and the other captions of its group of
  :data:`POOL` consecutive captions of the set; top-1 is a hit when the best caption asks for the image's
  own caption's attributes (or, without attributes, is its own caption). The same number for the real images
  those captions describe is reported as the reference. It applies only to text from the trained encoder:
  the oracle's embeddings do not live in the image branch's space.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from gan_lab.data.base import TensorDataset, check_int, resize_images
from gan_lab.data.text import (ATTRIBUTE_NAMES, ATTRIBUTES, HELDOUT_SEED_OFFSET, ShapesText, caption_digest,
                               captioned_shapes, combination_index)
from gan_lab.metrics import cache
from gan_lab.metrics.classifier import Classifier, check_settings, fit
from gan_lab.metrics.evaluate import Evaluation, Metric, to_uint8
from gan_lab.models.base import EvalSet

log = logging.getLogger("gan_lab")

POOL = 100  # captions each generated image is scored against (fewer when the set is smaller)
SETTINGS = ("count", "steps", "batch_size", "lr", "width", "seed")
_HEADS = [len(v) for v in ATTRIBUTES.values()]
_HELDOUT = 1000  # held-out real images the classifier's own accuracy is measured on


def attribute_loss(net: Classifier, batch: dict) -> torch.Tensor:
    """Sum over the heads of each head's cross-entropy."""
    logits = net(batch["real"])[1].split(_HEADS, 1)
    return sum(F.cross_entropy(head, batch["attributes"][:, a]) for a, head in enumerate(logits))


def predict(net: Classifier, images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> (N, 4) predicted attributes."""
    logits = net.extract(images)[1].split(_HEADS, 1)
    return torch.stack([head.argmax(1) for head in logits], 1)


def attribute_accuracy(net: Classifier, images: torch.Tensor, attributes: torch.Tensor) -> dict[str, float]:
    """Per attribute, the share of uint8 ``images`` whose predicted value equals ``attributes`` (N, 4); and
    their mean."""
    hits = (predict(net, images) == attributes.cpu()).double().mean(0)
    values = {name: float(h) for name, h in zip(ATTRIBUTE_NAMES, hits)}
    values["mean"] = float(hits.mean())
    return values


@dataclass
class CachedAttributeClassifier:
    net: Classifier
    path: Path
    accuracy: dict       # attribute_accuracy on held-out real images
    trained: bool


def load_or_train(data: ShapesText, settings, device: torch.device, force: bool = False) -> CachedAttributeClassifier:
    """The attribute classifier of ``data``'s shapes (its seed, size, scale, tilt, classes): from the cache
    in ``settings.cache_dir``, else trained on ``settings.count`` images of that seed, scored on held-out
    images (seed + 2**31) and cached."""
    shapes = (len(data.class_names), data.seed, data.scale, float(data.max_tilt), data.image_size)
    key = {"data": {"num_classes": shapes[0], "seed": shapes[1], "scale": list(shapes[2]), "max_tilt": shapes[3],
                    "image_size": shapes[4], "captions": caption_digest()},
           "train": {k: settings[k] for k in SETTINGS}}

    def train_now() -> tuple[Classifier, dict]:
        log.info("training the shapes_text attribute classifier (%d steps)", settings.steps)
        images, attributes = captioned_shapes(settings.count, *shapes)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings.seed)
            net = Classifier(3, sum(_HEADS), settings.width)
        train_set = TensorDataset({"real": images, "attributes": attributes}).to(device)
        net = fit(net, train_set, attribute_loss, settings, device, "attribute classifier")
        held_images, held_attributes = captioned_shapes(_HELDOUT, shapes[0], shapes[1] + HELDOUT_SEED_OFFSET,
                                                        *shapes[2:])
        return net, {"accuracy": attribute_accuracy(net, held_images, held_attributes)}

    net, info, path, trained = cache.load_or_train(settings.cache_dir, key, Classifier, train_now,
                                                   "attribute classifier", device, force)
    return CachedAttributeClassifier(net, path, info["accuracy"], trained)


class _Settings(dict):
    """Settings readable as ``s.key`` and ``s["key"]``."""

    __getattr__ = dict.__getitem__


class CaptionAccuracy(Metric):
    """``caption_accuracy``: per attribute, the share of generated images that show what their caption asks
    for (sets with ``attributes``, on ``shapes_text``). Settings: the classifier's training (``count``
    images, ``steps``, ``batch_size``, ``lr``, ``width``, ``seed``) and its ``cache_dir``."""

    def __init__(self, count: int, steps: int, batch_size: int, lr: float, width: int, seed: int, cache_dir: str):
        check_int("count", count)
        self.settings = _Settings(count=count, steps=steps, batch_size=batch_size, lr=lr, width=width, seed=seed,
                                  cache_dir=cache_dir)
        check_settings(self.settings, "eval.available.caption_accuracy")

    def applies(self, ev: Evaluation, s: EvalSet) -> bool:
        return s.attributes is not None and isinstance(ev.data, ShapesText)

    def __call__(self, ev: Evaluation, s: EvalSet) -> dict[str, float]:
        clf = load_or_train(ev.data, self.settings, ev.device)
        ev.info["caption_accuracy"] = {"cache": str(clf.path), "real held-out accuracy": clf.accuracy}
        # Read at the side the classifier was trained at (StackGAN's Stage I draws at a quarter of it).
        fake = resize_images(to_uint8(ev.outputs(s).fake).cpu(), ev.data.image_size)
        values = attribute_accuracy(clf.net, fake, s.attributes)
        return {f"caption accuracy {name}": v for name, v in values.items()}


def image_to_caption_top1(image: torch.Tensor, text: torch.Tensor, attributes: torch.Tensor | None,
                          pool: int = POOL) -> float:
    """Image embeddings (N, D) against caption embeddings (N, D), row ``i`` matching row ``i``: the share of
    images whose best-scoring caption, among the ``pool`` of their group of consecutive rows, is their own
    (or, with ``attributes`` (N, A), asks for the same attributes). A last partial group is scored among
    itself."""
    hits = []
    for start in range(0, len(image), pool):
        scores = image[start:start + pool] @ text[start:start + pool].T
        best = scores.argmax(1)
        if attributes is None:
            hits.append(best == torch.arange(len(best)))
        else:
            combos = combination_index(attributes[start:start + pool].cpu())
            hits.append(combos[best] == combos)
    return float(torch.cat(hits).double().mean())


class CaptionRetrieval(Metric):
    """``caption_retrieval``: top-1 image->caption retrieval of generated images among :data:`POOL` captions of
    their set, with the dataset's trained joint embedding; and the same for the real images of those captions."""

    def applies(self, ev: Evaluation, s: EvalSet) -> bool:
        return (s.given is not None and "text" in s.given and isinstance(ev.data, ShapesText)
                and ev.data.text_encoder is not None)

    def __call__(self, ev: Evaluation, s: EvalSet) -> dict[str, float]:
        net = ev.data.text_encoder.net
        text = s.given["text"].float().cpu()
        values = {"caption retrieval top-1": image_to_caption_top1(
            net.embed_images(to_uint8(ev.outputs(s).fake)), text, s.attributes)}
        if len(text) <= ev.data.heldout_count:
            reference = ev.data.eval_conditions(len(text))
            if torch.allclose(reference["text"].cpu(), text):  # the held-out captions: their real images too
                values["caption retrieval top-1 (real)"] = image_to_caption_top1(
                    net.embed_images(to_uint8(reference["real"])), text, s.attributes)
        ev.info["caption_retrieval"] = {"pool": min(POOL, len(text)), "encoder": str(ev.data.text_encoder.path)}
        return values
