"""Unpaired image domains for CycleGAN, DiscoGAN and DualGAN.

Unpaired translators (Zhu et al. 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks"; Kim et al. 2017, DiscoGAN; Yi et al. 2017, DualGAN) learn from two image sets
``A`` and ``B`` with no correspondence, generally of different sizes. As in pytorch-CycleGAN-and-pix2pix's
``unaligned_dataset``, the ``B`` of a batch is drawn independently of its ``A``: each domain walks its
own epoch-wise permutation (one ``BatchSampler`` per domain, seeded by ``(seed, domain)``), and each
sample gets its own random crop and flip from a generator seeded by ``(seed, k)``, so batch ``k`` is
still a pure function of ``(k, batch_size, seed)``. ``len(data)`` is ``max(len(A), len(B))``, the
reference's epoch; the smaller domain's own epochs are shorter.

``paired``: whether ``A[i]`` is the true partner of ``B[i]`` (shapes, facades). Training never uses
it; an evaluation can score a translation against the partner (L1, PSNR, SSIM).
"""

from __future__ import annotations

import torch

from gan_lab.data.base import (BatchSampler, absolute_root, augment_generator, check_channels, check_choice, check_int,
                               shard_rows)
from gan_lab.data.folders import (EXTENSIONS, _MODES, PairedFolder, _decode_all, center_crop, check_jitter,
                                  decode_square, list_images, random_crop_flip)
from gan_lab.data.shapes import ShapesPaired
from gan_lab.errors import DataNotFoundError

DOMAINS = ("A", "B")


def _unit(images: torch.Tensor) -> torch.Tensor:
    return images.float().div_(127.5).sub_(1.0)


class UnpairedImages:
    """Domains ``A`` and ``B`` as uint8 (N_A | N_B, C, L, L) in ``tensors``; batches are float in [-1, 1].

    Images are stored at ``L`` (``load_size``) and cropped to ``image_size``: randomly (plus a
    horizontal flip when ``flip``) in ``batch_at``, centrally in ``examples`` and ``batch``.
    """

    kind = "unpaired"
    paired = False
    num_classes = None

    def __init__(self, a: torch.Tensor, b: torch.Tensor, image_size: int, flip: bool):
        self.tensors = {"A": a, "B": b}
        self.image_size, self.flip = image_size, flip
        self._samplers: dict[str, BatchSampler] = {}

    def __len__(self) -> int:
        return max(len(v) for v in self.tensors.values())

    def to(self, device: torch.device | str) -> "UnpairedImages":
        """Move both domains to ``device`` (the GPU when they fit)."""
        self.tensors = {k: v.to(device) for k, v in self.tensors.items()}
        return self

    @property
    def device(self) -> torch.device:
        return self.tensors["A"].device

    def indices(self, k: int, batch_size: int, seed: int) -> dict[str, torch.Tensor]:
        """Per domain, batch ``k`` of its own permutations: domain ``d`` (0 = A, 1 = B) reseeds every one of
        its epochs from ``(2 * seed + d, epoch)``, so the two index streams are independent."""
        first = self._samplers.get("A")
        if first is None or (first.batch_size, first.seed) != (batch_size, 2 * seed):
            for key, images in self.tensors.items():
                if batch_size > len(images):
                    raise ValueError(f"train.batch_size={batch_size} is larger than domain {key} of the dataset "
                                     f"({len(images)} images)")
            self._samplers = {key: BatchSampler(len(self.tensors[key]), batch_size, 2 * seed + d)
                              for d, key in enumerate(DOMAINS)}
        return {key: sampler.indices(k) for key, sampler in self._samplers.items()}

    def batch_at(self, k: int, batch_size: int, seed: int, shard: tuple[int, int] = (0, 1)) -> dict[str, torch.Tensor]:
        """Batch ``k`` of a run: independent A and B draws, each sample cropped and flipped on its own
        (``shard``: one rank's slice, as ``TensorDataset.batch_at``)."""
        augment = augment_generator(seed, k, shard)
        return {key: self._gather(key, shard_rows(index, shard), augment)
                for key, index in self.indices(k, batch_size, seed).items()}

    def examples(self, n: int) -> dict[str, torch.Tensor]:
        """The first ``n`` images of each domain (fewer where a domain is smaller), centre-cropped."""
        images = center_crop({key: images[:n] for key, images in self.tensors.items()}, self.image_size)
        return {key: _unit(v) for key, v in images.items()}

    def batch(self, index: torch.Tensor, augment: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The same ``index`` in both domains (the true partners when ``paired``): centre-cropped, or with
        ``augment`` a random crop and flip per sample and domain drawn from it."""
        return {key: self._gather(key, index, augment) for key in DOMAINS}

    def _gather(self, key: str, index: torch.Tensor, augment: torch.Generator | None) -> torch.Tensor:
        # Crop the uint8 images first: the float copy is then only image_size^2 per sample.
        images = {key: self.tensors[key].index_select(0, index.to(self.device))}
        if augment is None:
            return _unit(center_crop(images, self.image_size)[key])
        return _unit(random_crop_flip(images, self.image_size, self.flip, augment)[key])


class UnpairedFolder(UnpairedImages):
    """A CycleGAN dataset folder: ``path/<split>A`` and ``path/<split>B`` (e.g. summer2winter_yosemite).

    Every image (recursive, sorted) is centre-cropped to a square and decoded once at ``load_size``;
    training takes random ``image_size`` crops and flips, the CycleGAN reference's defaults being
    load 286 / crop 256 (the defaults here, load 72 / crop 64, are CPU-sized). Grayscale files are converted
    to ``channels``.
    """

    def __init__(self, path, split: str = "train", image_size: int = 64, load_size: int = 72, flip: bool = True,
                 channels: int = 3):
        check_choice("split", split, ("train", "test"))
        self.image_size, self.load_size = check_jitter(image_size, load_size, flip)
        self.channels = check_channels(channels)
        self.path, self.split = absolute_root(path), split
        folders = [self.path / f"{split}{key}" for key in DOMAINS]
        files = [list_images(folder) if folder.is_dir() else [] for folder in folders]
        empty = [folder.name for folder, found in zip(folders, files) if not found]
        if empty:
            raise DataNotFoundError(
                f"No unpaired images in {' and '.join(empty)}: looked in {folders[0]} and {folders[1]} "
                f"(recursively) for files ending in {', '.join(EXTENSIONS)}.\nSet dataset.path to a CycleGAN "
                f"dataset folder holding {split}A/ and {split}B/ (e.g. summer2winter_yosemite: "
                f"datasets/download_cyclegan_dataset.sh summer2winter_yosemite in "
                f"junyanz/pytorch-CycleGAN-and-pix2pix, or "
                f"http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/summer2winter_yosemite.zip).")
        a, b = (torch.stack(_decode_all(lambda f: decode_square(f, load_size, _MODES[channels]), found))
                for found in files)
        super().__init__(a, b, image_size, flip)


class UnpairedFromPairs(UnpairedImages):
    """A pix2pix A|B folder (e.g. facades) used unpaired: A = the left halves, B = the right halves.

    Decoded by :class:`~gan_lab.data.folders.PairedFolder`; training draws B independently of A
    (and crops each on its own), while the hidden pairing is kept (``paired``) for evaluation.
    """

    paired = True

    def __init__(self, path, split: str = "train", image_size: int = 64, load_size: int = 72, flip: bool = True,
                 channels: int = 3):
        pairs = PairedFolder(path, split, "AtoB", image_size, load_size, flip, channels)
        self.image_size, self.load_size, self.channels = pairs.image_size, pairs.load_size, pairs.channels
        self.path, self.split = pairs.path, split
        super().__init__(pairs.tensors["input"], pairs.tensors["target"], image_size, flip)


class ShapesUnpaired(UnpairedImages):
    """Synthetic domains: A = shape outlines, B = the same shapes filled (:class:`ShapesPaired`'s render).

    ``A[i]`` is the true partner of ``B[i]`` (``paired``); training draws them independently. Split
    ``train`` is ``ShapesPaired(seed=seed)``; ``test`` renders unseen shapes from seed ``seed + 2**31``
    (torch's CPU generator keeps 32 bits of a seed, so seeds below 2**31 never name a test set).
    """

    paired = True
    TEST_SEED_OFFSET = 2 ** 31

    def __init__(self, image_size: int = 32, channels: int = 3, count: int = 2048, seed: int = 0,
                 scale: tuple[float, float] = (0.5, 0.85), max_tilt: float = 15.0, split: str = "train"):
        check_choice("split", split, ("train", "test"))
        self.seed, self.split = check_int("seed", seed, low=0), split
        if seed >= self.TEST_SEED_OFFSET:
            raise ValueError(f"dataset.seed must be below 2**31 (the test split uses seed + 2**31), got {seed}")
        shapes_seed = seed if split == "train" else seed + self.TEST_SEED_OFFSET
        pairs = ShapesPaired(image_size, channels, count, shapes_seed, scale, max_tilt)
        self.image_size, self.channels, self.load_size = pairs.image_size, pairs.channels, pairs.image_size
        super().__init__(pairs.tensors["input"], pairs.tensors["target"], image_size, flip=False)
