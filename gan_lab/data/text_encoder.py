"""The lab's text encoder for ``shapes_text``: a joint image-text embedding (``dataset.encoder=trained``).

Text-to-image GANs condition on caption embeddings from a frozen encoder trained beforehand. The references
use Reed, Akata, Lee and Schiele 2016, "Learning Deep Representations of Fine-Grained Visual Descriptions"
(CVPR, arXiv 1605.05395): a text encoder phi and an image encoder theta trained jointly so that the
compatibility ``F(v, t) = theta(v)^T phi(t)`` of an image with a matching caption exceeds its compatibility
with the captions of other classes, and symmetrically for a caption against other images (the "deep
symmetric structured joint embedding"; the paper as recalled, not re-read: the loss below is checked against
the reference code). This module trains one of those for the synthetic shapes in a few CPU minutes:

- text: word embedding (``word_dim``) -> bidirectional GRU (``hidden`` per direction) -> mean over the
  caption's words -> Linear -> ``text_dim`` (Reed et al. use a char-CNN-RNN; words suffice for a closed
  vocabulary);
- image: the small CNN of ``gan_lab.metrics.classifier`` with ``text_dim`` outputs;
- loss: the reference code's ``JointEmbeddingLoss`` (reedscot/cvpr2016 ``train_sje_hybrid.lua``, with
  ``symmetric=1``): for every image of a batch, ``sum_j max(0, 1 + F(v, t_j) - F(v, t_own))`` over the other
  captions of the batch, plus the same with captions and images swapped, both divided by B^2. The reference
  draws one image per class per batch; here a batch may hold two images of one attribute combination, whose
  captions are then not counted as wrong (that would penalise a true caption). Adam with a cosine-decayed
  rate (``gan_lab.metrics.classifier.fit``) replaces the reference's RMSprop (lr 4e-4, decay 0.98 per epoch).

The trained encoder is cached (``gan_lab.metrics.cache``) keyed on the data it saw (shapes seed, size,
scale, tilt, classes, the caption templates) and its settings; with it is stored its held-out retrieval
accuracy: each held-out caption (held-out images, held-out phrasings) against :data:`POOL` candidate
images, correct when the best-scoring image is one the caption is true of (the pool may hold several with
the same attributes).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from gan_lab.data.base import TensorDataset, resize_images
from gan_lab.data.text import (HELDOUT_SEED_OFFSET, TRAIN_TEMPLATES, VOCABULARY, caption_digest, caption_table,
                               captioned_shapes, combination_index, heldout_captions, tokenize)
from gan_lab.errors import ConfigError
from gan_lab.metrics import cache
from gan_lab.metrics.classifier import Classifier, fit, one_cpu_thread

log = logging.getLogger("gan_lab")

POOL = 100            # candidate images per held-out caption in the retrieval accuracy
HELDOUT_IMAGES = 1000  # held-out images scored (POOL groups of consecutive ones)
SETTINGS = ("image_size", "count", "steps", "batch_size", "lr", "word_dim", "hidden", "width", "seed")
_BATCH = 512


class TextEncoder(nn.Module):
    """Word ids (B, L), 0-padded -> (B, dim): embedding, bidirectional GRU over the words (packed, so padding
    never enters the backward direction), mean of the hidden states over the words, Linear."""

    def __init__(self, vocab_size: int, dim: int, word_dim: int, hidden: int):
        super().__init__()
        self.words = nn.Embedding(vocab_size, word_dim, padding_idx=0)
        self.gru = nn.GRU(word_dim, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        lengths = (tokens != 0).sum(1)
        packed = pack_padded_sequence(self.words(tokens), lengths.cpu(), batch_first=True, enforce_sorted=False)
        states = pad_packed_sequence(self.gru(packed)[0], batch_first=True)[0]          # (B, max length, 2h)
        return self.out(states.sum(1) / lengths[:, None].to(states.dtype))              # padding states are 0


class JointEmbedding(nn.Module):
    """``image`` (theta) and ``text`` (phi) encoders into one ``dim``-d space; F(v, t) = theta(v)^T phi(t)."""

    def __init__(self, dim: int, word_dim: int, hidden: int, width: int, image_size: int,
                 vocab_size: int = len(VOCABULARY)):
        super().__init__()
        self.arch = {"dim": dim, "word_dim": word_dim, "hidden": hidden, "width": width, "image_size": image_size,
                     "vocab_size": vocab_size}
        self.image = Classifier(3, dim, width)
        self.text = TextEncoder(vocab_size, dim, word_dim, hidden)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.image(images)[1], self.text(tokens)

    @torch.no_grad()
    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W), any side -> (N, dim) image embeddings, on the CPU (resized to ``image_size``
        first, as the training images were rendered)."""
        return self.image.extract(resize_images(images.cpu(), self.arch["image_size"]), _BATCH)[1]

    @torch.no_grad()
    def embed_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """Word ids (N, L) -> (N, dim) caption embeddings, on the CPU."""
        self.eval()
        device = next(self.parameters()).device
        with one_cpu_thread(device):
            return torch.cat([self.text(t.to(device)).float().cpu() for t in tokens.split(_BATCH)])


def joint_embedding_loss(image: torch.Tensor, text: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    """Symmetric structured hinge of matched rows ``image[i]``/``text[i]`` (B, D); ``same[i, j]``: caption
    ``j`` is as true of image ``i`` as its own (never a negative; the diagonal included)."""
    scores = image @ text.T                                                            # F(v_i, t_j)

    def hinge(s: torch.Tensor) -> torch.Tensor:  # each row's own score against the row's others
        return (1 + s - s.diagonal()[:, None]).clamp_min(0).masked_fill(same, 0).sum() / s.numel()

    return hinge(scores) + hinge(scores.T)


class _CaptionedBatches(TensorDataset):
    """Images with their attribute combination; a batch gives each image one training caption, its
    template drawn from the batch's generator."""

    def __init__(self, images: torch.Tensor, combos: torch.Tensor, table: torch.Tensor):
        super().__init__({"real": images, "combo": combos})
        self.table = table                                                               # (T, M, L)

    def batch(self, index: torch.Tensor, augment: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        out = super().batch(index)
        template = torch.randint(len(self.table), (len(index),), generator=augment)
        out["tokens"] = self.table[template, out["combo"].cpu()].to(self.device)
        return out


def _loss(net: JointEmbedding, batch: dict) -> torch.Tensor:
    image, text = net(batch["real"], batch["tokens"])
    return joint_embedding_loss(image, text, batch["combo"][:, None] == batch["combo"][None])


def retrieval(net: JointEmbedding, images: torch.Tensor, attributes: torch.Tensor, tokens: torch.Tensor,
              pool: int = POOL) -> dict[str, float]:
    """Caption -> image retrieval: each caption ``i`` (word ids) against the ``pool`` images of its group of
    consecutive items (its own among them); top-k: one of the k best-scoring images has the caption's
    attributes."""
    groups = len(images) // pool
    if groups < 1:
        raise ValueError(f"retrieval needs at least {pool} images, got {len(images)}")
    n = groups * pool
    image, text = net.embed_images(images[:n]), net.embed_text(tokens[:n])
    combos = combination_index(attributes[:n]).view(groups, pool)
    scores = torch.einsum("gcd,gid->gci", text.view(groups, pool, -1), image.view(groups, pool, -1))
    ranked = combos.gather(1, scores.argsort(2, descending=True).flatten(1)).view(groups, pool, pool)
    hit = ranked == combos[..., None]                                                  # (group, caption, rank)
    return {f"top{k}": float(hit[..., :k].any(-1).double().mean()) for k in (1, 5)}


# -- settings, the cache --

def check_settings(settings: dict) -> None:
    """Every setting present and of the right sign; errors name ``dataset.text_encoder.<key>``."""
    missing = [k for k in SETTINGS if k not in settings]
    if missing:
        raise ConfigError(f"dataset.text_encoder lacks {missing} (configs/dataset/shapes_text.yaml has them all)")
    for key in SETTINGS:
        value, low = settings[key], 0 if key == "seed" else 1
        if key == "lr":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"dataset.text_encoder.lr must be a positive number, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"dataset.text_encoder.{key} must be an integer >= {low}, got {value!r}")


@dataclass
class CachedEncoder:
    net: JointEmbedding
    path: Path
    retrieval: dict            # {"top1", "top5"}: held-out captions against POOL images
    trained: bool              # False: loaded from the cache


@dataclass(frozen=True)
class EncoderSpec:
    """What a trained encoder depends on: the shapes it sees (at its own ``settings["image_size"]``, so one
    encoder serves datasets of every image size) and its settings (``dataset.text_encoder``)."""

    num_classes: int
    seed: int
    scale: tuple[float, float]
    max_tilt: float
    text_dim: int
    settings: dict

    def key(self) -> dict:
        data = {"num_classes": self.num_classes, "seed": self.seed,
                "scale": list(self.scale), "max_tilt": float(self.max_tilt), "captions": caption_digest()}
        return {"data": data, "text_dim": self.text_dim, "train": {k: self.settings[k] for k in SETTINGS}}


def _train(spec: EncoderSpec, device: torch.device) -> JointEmbedding:
    s = spec.settings
    images, attributes = captioned_shapes(s["count"], spec.num_classes, spec.seed, spec.scale, spec.max_tilt,
                                          s["image_size"])
    data = _CaptionedBatches(images, combination_index(attributes), caption_table(TRAIN_TEMPLATES)).to(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(s["seed"])
        net = JointEmbedding(spec.text_dim, s["word_dim"], s["hidden"], s["width"], s["image_size"])
    return fit(net, data, _loss, SimpleNamespace(**s), device, "text encoder")


def heldout_retrieval(net: JointEmbedding, spec: EncoderSpec) -> dict[str, float]:
    """:func:`retrieval` on :data:`HELDOUT_IMAGES` held-out images with their held-out captions."""
    images, attributes = captioned_shapes(HELDOUT_IMAGES, spec.num_classes, spec.seed + HELDOUT_SEED_OFFSET,
                                          spec.scale, spec.max_tilt, spec.settings["image_size"])
    return retrieval(net, images, attributes, tokenize(heldout_captions(attributes)))


def load_or_train(spec: EncoderSpec, cache_dir, device: torch.device, force: bool = False) -> CachedEncoder:
    """The encoder of ``spec``: from the cache in ``cache_dir``, else trained (with a log line), scored and
    cached."""
    check_settings(spec.settings)

    def train_now() -> tuple[JointEmbedding, dict]:
        log.info("training the shapes_text encoder (%d steps)", spec.settings["steps"])
        net = _train(spec, device)
        scores = heldout_retrieval(net, spec)
        log.info("text encoder: held-out caption->image retrieval among %d images: top-1 %.3f, top-5 %.3f",
                 POOL, scores["top1"], scores["top5"])
        return net, {"retrieval": scores}

    net, info, path, trained = cache.load_or_train(cache_dir, spec.key(), JointEmbedding, train_now, "text encoder",
                                                   device, force)
    return CachedEncoder(net, path, info["retrieval"], trained)


class TrainedEncoder:
    """``dataset.encoder=trained``: captions through the text branch of the cached joint embedding."""

    def __init__(self, net: JointEmbedding):
        self.net = net

    def encode(self, tokens: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
        return self.net.embed_text(tokens)

