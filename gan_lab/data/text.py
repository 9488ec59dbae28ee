"""Captioned images: the data of text-to-image GANs (GAN-INT-CLS, StackGAN).

The references train on images with ten captions each, every caption already encoded by a frozen text
encoder (Reed et al. 2016, "Learning Deep Representations of Fine-Grained Visual Descriptions": the
char-CNN-RNN embeddings shipped as ``char-CNN-RNN-embeddings.pickle``, (N, 10, 1024)). The text a generator
is conditioned on is the mean of several of an image's caption embeddings: four drawn at random in
Reed et al.'s GAN-INT-CLS code (``numCaption=4``) and StackGAN's TensorFlow code (``NUM_EMBEDDING: 4``), one
in StackGAN-Pytorch; ``captions_per_example`` sets it.

:class:`CaptionedImages` holds that layout (``embeddings`` (N, K, D) beside the uint8 images) and its
batching; :class:`ShapesText` generates it offline from the synthetic shapes of ``gan_lab.data.shapes``:
every image gets one caption per template, built from the parameters the image was rendered from
(shape, colour word from the hue, size word from the radius, position words from the centre), and
encoded by the ``trained`` encoder (``gan_lab.data.text_encoder``: the lab's joint image-text embedding)
or the ``oracle`` (the caption's attributes, one-hot, through a fixed random projection). StackGAN's birds
and flowers with their char-CNN-RNN embeddings are in ``gan_lab.data.text_embeddings``.
"""

from __future__ import annotations

import hashlib
import math

import torch

from gan_lab.data.base import TensorDataset, check_choice, check_int
from gan_lab.data.shapes import SHAPES, check_scale, render_shapes, sample_shapes
from gan_lab.errors import ConfigError

# -- what a caption says: four attributes, each a closed set of words --

COLOURS = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "magenta")
# Upper hue edges (degrees) of the colour words: red is [345, 360) and [0, 15), orange [15, 45), ...
HUE_EDGES = (15.0, 45.0, 70.0, 160.0, 200.0, 255.0, 285.0, 345.0)
SIZES = ("small", "medium", "large")
# Position = 3 * vertical + horizontal, each the third of the image (in that axis) the shape's centre is in.
POSITIONS = ("top left", "top", "top right", "left", "centre", "right", "bottom left", "bottom", "bottom right")
_POSITION_PHRASES = ("at the top left", "at the top", "at the top right", "on the left", "in the centre",
                     "on the right", "at the bottom left", "at the bottom", "at the bottom right")
ATTRIBUTES = {"shape": SHAPES, "colour": COLOURS, "size": SIZES, "position": POSITIONS}
ATTRIBUTE_NAMES = list(ATTRIBUTES)

# Every image has one caption per training template; the held-out templates phrase the same attributes
# in orders no training caption uses (with training words only) and caption the held-out images.
TRAIN_TEMPLATES = (
    "a {size} {colour} {shape} {position}",
    "{position} there is a {size} {colour} {shape}",
    "the {shape} is {size} and {colour} and lies {position}",
    "a {colour} {shape} of {size} size {position}",
    "this {size} {shape} is {colour} and sits {position}",
    "there is a {colour} {shape} {position} and it is {size}",
)
HELDOUT_TEMPLATES = (
    "{position} a {colour} {size} {shape}",
    "the {colour} {shape} {position} is {size}",
)
PAD = "<pad>"
# The held-out images are those of seed + 2**31 (torch keeps 32 bits of a seed: no seed below 2**31 names them).
HELDOUT_SEED_OFFSET = 2 ** 31


def _vocabulary() -> tuple[str, ...]:
    words = set()
    for template in TRAIN_TEMPLATES + HELDOUT_TEMPLATES:
        words.update(w for w in template.split() if not w.startswith("{"))
    for values in (SHAPES, COLOURS, SIZES, _POSITION_PHRASES):
        for value in values:
            words.update(value.split())
    return (PAD, *sorted(words))


VOCABULARY = _vocabulary()
_WORD_ID = {w: i for i, w in enumerate(VOCABULARY)}


def hue_degrees(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3) RGB (any positive scale) -> hue in [0, 360) degrees (the HSV hexcone)."""
    r, g, b = rgb.float().unbind(1)
    high, low = rgb.float().amax(1), rgb.float().amin(1)
    chroma = (high - low).clamp_min(1e-12)
    hue = torch.where(high == r, ((g - b) / chroma) % 6,
                      torch.where(high == g, (b - r) / chroma + 2, (r - g) / chroma + 4))
    return (hue * 60) % 360


def colour_index(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3) RGB -> index into :data:`COLOURS` of its hue."""
    return torch.bucketize(hue_degrees(rgb), torch.tensor(HUE_EDGES), right=True) % len(COLOURS)


def shape_attributes(params: dict[str, torch.Tensor], scale: tuple[float, float]) -> torch.Tensor:
    """(N, 4) int64 attributes (shape, colour, size, position) of ``sample_shapes`` parameters.

    Size: the tertile of ``radius`` within ``scale``. Position: the third of the image the centre lies in,
    per axis (shapes.py's centre is in [-1, 1] with y pointing up)."""
    low, high = scale
    size = ((params["radius"] - low) / (high - low) * 3).floor().clamp(0, 2).long()
    x, y = params["center"].unbind(1)
    horizontal = (x >= -1 / 3).long() + (x > 1 / 3).long()      # 0 left, 1 centre, 2 right
    vertical = (y <= 1 / 3).long() + (y < -1 / 3).long()        # 0 top, 1 middle, 2 bottom
    return torch.stack([params["label"], colour_index(params["colour"]), size, 3 * vertical + horizontal], 1)


# Every (shape, colour, size, position), in the order of combination_index.
COMBINATIONS = torch.cartesian_prod(*(torch.arange(len(v)) for v in ATTRIBUTES.values()))
_RADIX = torch.tensor([len(v) for v in ATTRIBUTES.values()])


def combination_index(attributes: torch.Tensor) -> torch.Tensor:
    """(N, 4) attributes -> (N,) row of :data:`COMBINATIONS`."""
    index = torch.zeros(len(attributes), dtype=torch.long)
    for column, radix in zip(attributes.T, _RADIX.tolist()):
        index = index * radix + column
    return index


def caption(template: str, attributes: list[int]) -> str:
    shape, colour, size, position = attributes
    return template.format(shape=SHAPES[shape], colour=COLOURS[colour], size=SIZES[size],
                           position=_POSITION_PHRASES[position])


def tokenize(sentences: list[str], length: int | None = None) -> torch.Tensor:
    """Sentences -> (n, length) int64 word ids, padded with 0; an unknown word is a ConfigError."""
    ids = []
    for sentence in sentences:
        words = sentence.lower().replace(",", " ").replace(".", " ").split()
        unknown = [w for w in words if w not in _WORD_ID or w == PAD]
        if unknown:
            raise ConfigError(f"text: unknown word {unknown[0]!r} in {sentence!r}; the shapes_text vocabulary is: "
                              f"{' '.join(VOCABULARY[1:])}")
        if not words:
            raise ConfigError("text: an empty sentence")
        ids.append([_WORD_ID[w] for w in words])
    length = length or max(map(len, ids))
    out = torch.zeros(len(ids), length, dtype=torch.long)
    for row, words in zip(out, ids):
        row[:len(words)] = torch.tensor(words[:length])
    return out


def parse_attributes(tokens: torch.Tensor) -> torch.Tensor:
    """(n, L) word ids -> (n, 4) attributes the words name, -1 where a sentence names none (the oracle's input).

    Position: ``left``/``right`` and ``top``/``bottom`` pick the column and row, ``centre`` (or one axis
    named alone) the middle of the other."""
    out = torch.full((len(tokens), len(ATTRIBUTES)), -1, dtype=torch.long)
    for row, ids in zip(out, tokens.tolist()):
        words = {VOCABULARY[i] for i in ids if i}
        for a, values in enumerate((SHAPES, COLOURS, SIZES)):
            named = [v for v in values if v in words]
            if named:
                row[a] = values.index(named[0])
        if words & {"left", "right", "top", "bottom", "centre"}:
            horizontal = 0 if "left" in words else 2 if "right" in words else 1
            vertical = 0 if "top" in words else 2 if "bottom" in words else 1
            row[3] = 3 * vertical + horizontal
    return out


def caption_digest() -> str:
    """Changes whenever what a caption says of an image can (templates, words, hue bins, positions), so a
    network cached for the old captions (the trained encoder, the attribute classifier) is not reused."""
    rules = (TRAIN_TEMPLATES, HELDOUT_TEMPLATES, VOCABULARY, list(ATTRIBUTES.items()), HUE_EDGES, _POSITION_PHRASES)
    return hashlib.sha256(repr(rules).encode()).hexdigest()[:16]


def captioned_shapes(count: int, num_classes: int, seed: int, scale: tuple[float, float], max_tilt: float,
                     image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images (count, 3, size, size), attributes (count, 4)) of the shapes of ``seed``."""
    params = sample_shapes(count, num_classes, seed, scale, max_tilt)
    return render_shapes(params, image_size, 3)[0], shape_attributes(params, scale)


def caption_table(templates: tuple[str, ...]) -> torch.Tensor:
    """Word ids (T, M, L) of every template filled with each of the M attribute combinations (in
    :func:`combination_index` order): captions are a function of (template, attributes)."""
    tokens = tokenize([caption(t, a) for t in templates for a in COMBINATIONS.tolist()])
    return tokens.view(len(templates), len(COMBINATIONS), -1)


def heldout_captions(attributes: torch.Tensor) -> list[str]:
    """The held-out caption of each of the held-out images: the held-out templates in turn."""
    return [caption(HELDOUT_TEMPLATES[i % len(HELDOUT_TEMPLATES)], a) for i, a in enumerate(attributes.tolist())]


# -- encoders: (word ids (n, L), attributes (n, 4)) -> caption embeddings (n, D) --

class OracleEncoder:
    """The caption's attributes as one-hot blocks (a block of zeros for an attribute it does not name),
    through a fixed random projection to ``dim``: what a perfect text encoder could give, with no training.
    Every paraphrase of one set of attributes gets the same embedding."""

    def __init__(self, dim: int, seed: int = 0):
        widths = [len(v) for v in ATTRIBUTES.values()]
        self.offsets = torch.tensor([0, *widths[:-1]]).cumsum(0)
        gen = torch.Generator().manual_seed(seed)
        # Unit variance per output dimension for a caption naming all four attributes.
        self.projection = torch.randn(sum(widths), dim, generator=gen) / math.sqrt(len(widths))

    def encode(self, tokens: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
        known = attributes >= 0
        onehot = torch.zeros(len(attributes), len(self.projection))
        rows = torch.arange(len(attributes))[:, None].expand_as(attributes)
        onehot[rows[known], (attributes + self.offsets)[known]] = 1.0
        return onehot @ self.projection


# -- the datasets --

class CaptionedImages(TensorDataset):
    """Images with K caption embeddings each: ``tensors`` holds ``real`` uint8 (N, C, H, W), ``embeddings``
    float32 (N, K, D) and optionally ``label`` (N,).

    A batch is ``{"real", "text", "label"?}``: ``text`` (B, D) is the mean of ``captions_per_example``
    distinct caption embeddings of each image, drawn from the batch's augment generator (so batch ``k`` of a
    run stays a pure function of ``(seed, k)``); without one (``examples``) the first ones.
    """

    kind = "text"

    def __init__(self, images: torch.Tensor, embeddings: torch.Tensor, labels: torch.Tensor | None,
                 num_classes: int | None, captions_per_example: int):
        per_image = embeddings.shape[1]
        if check_int("captions_per_example", captions_per_example) > per_image:
            raise ValueError(f"dataset.captions_per_example must be at most {per_image} (the captions per image), "
                             f"got {captions_per_example}")
        self.captions_per_example = captions_per_example
        self.text_dim = embeddings.shape[2]
        tensors = {"real": images, "embeddings": embeddings.float()}
        if labels is not None:
            tensors["label"] = labels
        super().__init__(tensors, num_classes)

    def batch(self, index: torch.Tensor, augment: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        index = index.to(self.device)
        embeddings = self.tensors["embeddings"].index_select(0, index)            # (B, K, D)
        count, per_image = len(index), embeddings.shape[1]
        if augment is None:
            pick = torch.arange(self.captions_per_example).expand(count, -1)
        else:  # distinct captions per image: the first m of a random permutation
            pick = torch.rand(count, per_image, generator=augment).argsort(1)[:, :self.captions_per_example]
        pick = pick.to(self.device)[..., None].expand(-1, -1, self.text_dim)
        out = {"real": self._images(index, augment), "text": embeddings.gather(1, pick).mean(1)}
        if "label" in self.tensors:
            out["label"] = self.tensors["label"].index_select(0, index)
        return out

    def _images(self, index: torch.Tensor, augment: torch.Generator | None) -> torch.Tensor:
        """The images of ``index`` in [-1, 1]; a source with image augmentation draws it from ``augment``
        (after the captions)."""
        return self.tensors["real"].index_select(0, index).float().div_(127.5).sub_(1.0)

    def embed(self, sentences: list[str]) -> torch.Tensor:
        """(n, D) embeddings of new sentences (``gan-lab sample text=...``)."""
        raise ConfigError(f"text=...: {type(self).__name__} holds precomputed caption embeddings only and cannot "
                          f"encode new sentences")

    def eval_conditions(self, n: int) -> dict:
        """What evaluation conditions on: ``text`` (n, D) embeddings of held-out captions, ``captions`` (their
        sentences), ``attributes`` ((n, A) int64 that each caption asks for, or None), ``attribute_names``,
        and ``real`` (n, C, H, W) in [-1, 1]: the held-out images the captions describe."""
        raise NotImplementedError


class ShapesText(CaptionedImages):
    """Synthetic shapes with generated captions (``dataset=shapes_text``).

    The images are ``sample_shapes``/``render_shapes`` of seed ``seed`` (colour, always); each has one caption
    per training template (:data:`TRAIN_TEMPLATES`), all true of the image: its shape, the colour word of its
    hue (:data:`HUE_EDGES`), its size tertile within ``scale``, and the thirds of the image its centre lies in.
    ``captions`` (N, K, L) holds their word ids, ``attributes`` (N, 4) what they say.

    Held out from training: ``heldout_count`` other images (seed ``seed + 2**31``), each captioned with one
    of the :data:`HELDOUT_TEMPLATES` (new word orders of training words): :meth:`eval_conditions`.
    """

    eval_data = "the held-out images and captions (seed + 2**31; word orders training never used)"

    def __init__(self, image_size: int = 32, count: int = 8192, num_classes: int = 6, seed: int = 0,
                 scale: tuple[float, float] = (0.3, 0.7), max_tilt: float = 15.0, captions_per_example: int = 4,
                 encoder: str = "trained", text_dim: int = 128, heldout_count: int = 1024,
                 text_encoder: dict | None = None):
        self.image_size = check_int("image_size", image_size)
        self.channels = 3
        check_int("count", count)
        if check_int("num_classes", num_classes) > len(SHAPES):
            raise ValueError(f"dataset.num_classes must be at most {len(SHAPES)} ({', '.join(SHAPES)}), "
                             f"got {num_classes}")
        self.seed = check_int("seed", seed, low=0)
        if seed >= HELDOUT_SEED_OFFSET:
            raise ValueError(f"dataset.seed must be below 2**31 (the held-out images use seed + 2**31), got {seed}")
        self.scale = check_scale(scale)
        if self.scale[0] == self.scale[1]:
            raise ValueError(f"dataset.scale must be a range (its tertiles are the size words), got {list(scale)}")
        check_choice("encoder", encoder, ("oracle", "trained"))
        self.max_tilt, self.heldout_count = max_tilt, check_int("heldout_count", heldout_count)
        self.class_names = SHAPES[:num_classes]
        self.attribute_names = ATTRIBUTE_NAMES
        self.vocabulary = VOCABULARY
        self.text_dim = check_int("text_dim", text_dim)
        self.encoder_settings = None if text_encoder is None else dict(text_encoder)
        self.text_encoder = None  # the CachedEncoder of encoder=trained
        self.encoder = self._trained_encoder() if encoder == "trained" else OracleEncoder(text_dim)

        images, self.attributes = captioned_shapes(count, num_classes, seed, self.scale, max_tilt, image_size)
        # Encode each (template, attribute combination) once, then index by image.
        tokens = caption_table(TRAIN_TEMPLATES)
        embeddings = self.encoder.encode(tokens.flatten(0, 1), COMBINATIONS.repeat(len(TRAIN_TEMPLATES), 1))
        combo = combination_index(self.attributes)
        self.captions = tokens[:, combo].transpose(0, 1)                                       # (N, K, L)
        embeddings = embeddings.view(len(TRAIN_TEMPLATES), len(COMBINATIONS), -1)[:, combo].transpose(0, 1)
        super().__init__(images, embeddings, self.attributes[:, 0], num_classes, captions_per_example)
        self._heldout: tuple[torch.Tensor, torch.Tensor] | None = None

    def encoder_spec(self):
        """(``EncoderSpec``, cache folder) of the trained encoder of these shapes (``dataset.text_encoder``)."""
        from gan_lab.data.text_encoder import EncoderSpec  # it builds on this module

        settings = self.encoder_settings
        if settings is None or "cache_dir" not in settings:
            raise ValueError("dataset.encoder=trained needs dataset.text_encoder (its settings and cache_dir; "
                             "configs/dataset/shapes_text.yaml has them)")
        spec = EncoderSpec(len(self.class_names), self.seed, self.scale, float(self.max_tilt),
                           self.text_dim, {k: v for k, v in settings.items() if k != "cache_dir"})
        return spec, settings["cache_dir"]

    def _trained_encoder(self):
        """The joint embedding's text branch for these shapes: from the cache, else trained now."""
        from gan_lab.data import text_encoder

        self.text_encoder = text_encoder.load_or_train(*self.encoder_spec(), torch.device("cpu"))
        return text_encoder.TrainedEncoder(self.text_encoder.net)

    def _encode(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.encoder.encode(tokens, parse_attributes(tokens))

    def embed(self, sentences: list[str]) -> torch.Tensor:
        return self._encode(tokenize(list(sentences))).to(self.device)

    def heldout(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(uint8 images, attributes) of the held-out images, rendered on first use."""
        if self._heldout is None:
            self._heldout = captioned_shapes(self.heldout_count, len(self.class_names),
                                             self.seed + HELDOUT_SEED_OFFSET, self.scale, self.max_tilt,
                                             self.image_size)
        return self._heldout

    def eval_conditions(self, n: int) -> dict:
        if not 1 <= n <= self.heldout_count:
            raise ConfigError(f"{n} held-out captions asked for; dataset.heldout_count={self.heldout_count} "
                              f"(raise it to evaluate on more)")
        images, attributes = (v[:n] for v in self.heldout())
        sentences = heldout_captions(attributes)
        return {"text": self.embed(sentences), "captions": sentences, "attributes": attributes.to(self.device),
                "attribute_names": list(ATTRIBUTE_NAMES),
                "real": images.to(self.device).float().div_(127.5).sub_(1.0)}
