"""In-memory datasets and resumable batching.

Every dataset gan-lab trains on is small enough to decode once into tensors
(uint8 images, float points, int64 labels), which removes per-image Python work
from the training loop. A dataset owns its batching: ``batch_at(k, batch_size, seed)``
is batch ``k`` of a run, a pure function of its arguments (augmentation included,
drawn from a generator seeded by ``(seed, k)``), so the data order after a resume is
exactly the order of an uninterrupted run and no other random draw can change it.

The contract the engine and the tasks rely on: ``kind`` (an open string a task lists in
``data_kinds``), ``len(data)`` (examples per epoch), ``batch_at``, ``examples(n)`` (the first
``n`` examples without augmentation: the fixed inputs of sample grids), ``to(device)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

class TensorDataset:
    """Decoded samples of one split, held as tensors.

    Subclasses (one per data source) set the class attribute ``kind`` so that a
    config can be checked against a model before anything is decoded.

    ``tensors`` maps batch keys to tensors with the sample count first:
    ``"real"`` (uint8 images (N, C, H, W) or float points (N, D)) and optionally
    ``"label"`` (int64) for ``kind="image"``/``"points"``; ``"input"`` and
    ``"target"`` (uint8 images) for ``kind="paired"``.
    """

    kind: str = "image"

    def __init__(self, tensors: dict[str, torch.Tensor], num_classes: int | None = None):
        sizes = {k: len(v) for k, v in tensors.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"dataset tensors differ in length: {sizes}")
        self.tensors = tensors
        self.num_classes = num_classes
        self._sampler: BatchSampler | None = None

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def to(self, device: torch.device | str) -> "TensorDataset":
        """Move the decoded samples to ``device`` (the GPU when they fit)."""
        self.tensors = {k: v.to(device) for k, v in self.tensors.items()}
        return self

    @property
    def device(self) -> torch.device:
        return next(iter(self.tensors.values())).device

    def batch_at(self, k: int, batch_size: int, seed: int, shard: tuple[int, int] = (0, 1)) -> dict[str, torch.Tensor]:
        """Batch ``k`` of a run: an epoch-wise permutation seeded by ``(seed, epoch)``; with ``shard``
        ``(rank, world)`` only that rank's contiguous slice of it (a data-parallel run)."""
        sampler = self._sampler
        if sampler is None or (sampler.batch_size, sampler.seed) != (batch_size, seed):
            sampler = self._sampler = BatchSampler(len(self), batch_size, seed)
        return self.batch(shard_rows(sampler.indices(k), shard), augment=augment_generator(seed, k, shard))

    def examples(self, n: int) -> dict[str, torch.Tensor]:
        """The first ``n`` examples, not augmented."""
        return self.batch(torch.arange(min(n, len(self))))

    def batch(self, index: torch.Tensor, augment: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Gather samples; uint8 images become float in [-1, 1]. ``augment``: the generator of a
        dataset's random augmentation (None: no augmentation)."""
        index = index.to(self.device)
        out = {}
        for key, value in self.tensors.items():
            value = value.index_select(0, index)
            if value.dtype == torch.uint8:
                value = value.float().div_(127.5).sub_(1.0)
            out[key] = value
        return out


def shard_rows(rows: torch.Tensor, shard: tuple[int, int]) -> torch.Tensor:
    """Rank ``shard[0]``'s contiguous slice of ``rows`` among ``shard[1]`` equal slices."""
    rank, world = shard
    n = len(rows) // world
    return rows[rank * n:(rank + 1) * n]


def augment_generator(seed: int, k: int, shard: tuple[int, int] = (0, 1)) -> torch.Generator:
    """The generator of batch ``k``'s augmentation: seeded by ``(seed, k)`` and, after rank 0, the rank, so
    the ranks' slices are not jittered alike (augmentation is then per rank, not one process's)."""
    rank = shard[0]
    return torch.Generator().manual_seed(seed * 1_000_003 + k + (rank << 40))


class BatchSampler:
    """Batch ``k`` of a run is a pure function of ``(seed, k)``.

    Epoch ``e`` is a fresh permutation seeded by ``(seed, e)``; the last partial
    batch of an epoch is dropped so every step sees ``batch_size`` samples.
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int):
        if batch_size > num_samples:
            raise ValueError(f"train.batch_size={batch_size} is larger than the dataset ({num_samples} samples)")
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.per_epoch = num_samples // batch_size
        self._epoch, self._perm = -1, None

    def indices(self, k: int) -> torch.Tensor:
        epoch, pos = divmod(k, self.per_epoch)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.num_samples, generator=gen)
        return self._perm[pos * self.batch_size:(pos + 1) * self.batch_size]


# -- argument checks and image conversions shared by the data sources --

def check_int(key: str, value, low: int = 1) -> int:
    """Return ``value`` if it is an integer >= ``low``, else a ValueError naming ``dataset.<key>``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        wanted = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise ValueError(f"dataset.{key} must be {wanted}, got {value!r}")
    return value


def check_choice(key: str, value, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"dataset.{key} must be one of {list(choices)}, got {value!r}")


def check_bool(key: str, value) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"dataset.{key} must be true or false, got {value!r}")


def check_classes(classes, num_classes: int) -> tuple[int, ...] | None:
    """``dataset.classes``: None (every class), or distinct labels in ``[0, num_classes)`` (one int or a list),
    else a ValueError naming the key. Checked before any file is read."""
    if classes is None:
        return None
    if isinstance(classes, int) and not isinstance(classes, bool):
        classes = [classes]
    if (isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence) or not classes
            or not all(isinstance(c, int) and not isinstance(c, bool) for c in classes)):
        raise ValueError(f"dataset.classes must be null or a non-empty list of class indices, got {classes!r}")
    unknown = [c for c in classes if not 0 <= c < num_classes]
    if unknown or len(set(classes)) != len(classes):
        problem = f"has no class {unknown[0]}" if unknown else "repeats a class"
        raise ValueError(f"dataset.classes={list(classes)}: the dataset {problem} (classes are 0..{num_classes - 1})")
    return tuple(classes)


def keep_classes(tensors: dict[str, torch.Tensor], classes: tuple[int, ...] | None) -> dict[str, torch.Tensor]:
    """The examples whose ``label`` is one of ``classes``, in their original order (labels unchanged);
    everything when ``classes`` is None."""
    if classes is None:
        return tensors
    keep = torch.isin(tensors["label"], torch.tensor(classes, dtype=tensors["label"].dtype))
    return {key: value[keep] for key, value in tensors.items()}


def check_channels(channels) -> int:
    check_choice("channels", channels, (1, 3))
    return channels


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, C, H, W) -> uint8 (N, C, size, size): bilinear with antialias, done once at load."""
    if images.shape[-2:] == (size, size):
        return images
    # torch resizes uint8 natively on the CPU (PIL-like rounding, no float copy of the whole set).
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def match_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Gray -> RGB by replication, RGB -> gray by ITU-R 601 luma; uint8 (N, C, H, W)."""
    have = images.shape[1]
    if have == channels:
        return images
    if have == 1:
        return images.expand(-1, channels, -1, -1).contiguous()
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (images.float() * luma).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)


def absolute_root(root) -> Path:
    """Expand ``~`` and make absolute once, so nothing later depends on the working directory."""
    return Path(str(root)).expanduser().resolve()
