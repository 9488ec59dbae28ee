"""Plain image folders: ``ImageFolder`` (e.g. CelebA) and ``PairedFolder`` (pix2pix A|B files).

Every file is decoded once with PIL at construction (center-cropped to a square and
resized bilinearly, which in PIL is antialiased) into one uint8 tensor; training
then only indexes it. ``PairedFolder`` applies pix2pix's random jitter per batch:
images are stored at ``load_size`` and each sample gets a random ``image_size``
crop and horizontal flip, the same for input and target (Isola et al. 2017,
"Image-to-Image Translation with Conditional Adversarial Networks", §6.2).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gan_lab.data.base import TensorDataset, absolute_root, check_bool, check_channels, check_choice, check_int
from gan_lab.errors import DataFileError, DataNotFoundError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_MODES = {1: "L", 3: "RGB"}


def list_images(folder: Path, recursive: bool = True) -> list[Path]:
    """Image files under ``folder``, sorted so the dataset order never depends on the file system."""
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    return sorted(p for p in pattern if p.suffix.lower() in EXTENSIONS and p.is_file())


def _to_tensor(img: Image.Image) -> torch.Tensor:
    array = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(array.reshape(array.shape[0], array.shape[1], -1).copy()).permute(2, 0, 1)


def decode_square(path: Path, size: int, mode: str) -> torch.Tensor:
    """One file -> uint8 (C, size, size): center crop to a square, then bilinear resize."""
    with Image.open(path) as img:
        # JPEG can decode at 1/2, 1/4, 1/8 scale, never below the requested size: much faster for CelebA.
        img.draft(mode, (size, size))
        img = img.convert(mode)
        w, h = img.size
        side = min(w, h)
        box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
        # Crop first: resize(box=...) would let the filter read pixels outside the box.
        return _to_tensor(img.crop(box).resize((size, size), Image.BILINEAR))


def decode_image(path: Path, mode: str) -> torch.Tensor:
    """One file -> uint8 (C, H, W) at its own size."""
    with Image.open(path) as img:
        return _to_tensor(img.convert(mode))


def _decode_pair(path: Path, size: int, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One A|B file -> its left (A) and right (B) halves, each resized to (C, size, size)."""
    with Image.open(path) as img:
        img = img.convert(mode)
        w, h = img.size
        if w != 2 * h:  # an image of one side, or of another set: its "halves" would be nonsense
            raise DataFileError(f"{path} is {w}x{h} pixels; an A|B pair file holds two square halves side by "
                                f"side (width = 2 x height)")
        half = w // 2
        # Crop before resizing so neither half's filter reads pixels of the other.
        a, b = (img.crop((x, 0, x + half, h)).resize((size, size), Image.BILINEAR) for x in (0, half))
        return _to_tensor(a), _to_tensor(b)


def _decode_all(fn, paths: list[Path]) -> list:
    """``fn`` of every file; a file PIL cannot decode (truncated, not an image) is a DataFileError naming it."""
    def one(path: Path):
        try:
            return fn(path)
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            raise DataFileError(f"cannot decode the image {path}: {err}") from None

    # PIL releases the GIL while decoding and resizing, so threads use every core.
    with ThreadPoolExecutor() as pool:
        return list(pool.map(one, paths))


def check_jitter(image_size, load_size, flip) -> tuple[int, int]:
    """Checked ``(image_size, load_size)`` of a random-crop-and-flip set; errors name ``dataset.<key>``."""
    check_bool("flip", flip)
    check_int("image_size", image_size)
    check_int("load_size", load_size)
    if load_size < image_size:
        raise ValueError(f"dataset.load_size ({load_size}) must be >= dataset.image_size ({image_size}), "
                         f"the random crop is taken from the loaded image")
    return image_size, load_size


def random_crop_flip(images: dict[str, torch.Tensor], image_size: int, flip: bool,
                     generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """pix2pix jitter: one random ``image_size`` crop (and, with ``flip``, a coin-flip horizontal flip)
    per sample, the same for every tensor of ``images`` (each (n, C, L, L), any dtype, L >= image_size).

    ``generator``: the source of the draws; None draws from the global CPU RNG.
    """
    first = next(iter(images.values()))
    n, size, room = len(first), image_size, first.shape[-1] - image_size
    if room == 0 and not flip:
        return images
    top = torch.randint(room + 1, (n,), generator=generator)
    left = torch.randint(room + 1, (n,), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5 if flip else torch.zeros(n, dtype=torch.bool)
    steps = torch.arange(size)
    rows = top[:, None] + steps                                         # (n, size)
    cols = left[:, None] + torch.where(flips[:, None], size - 1 - steps, steps)
    device = first.device
    samples = torch.arange(n, device=device)[:, None, None]
    rows, cols = rows.to(device)[:, :, None], cols.to(device)[:, None, :]
    # Advanced indexing around the channel slice gives (n, size, size, C).
    return {k: v[samples, :, rows, cols].permute(0, 3, 1, 2).contiguous() for k, v in images.items()}


def center_crop(images: dict[str, torch.Tensor], image_size: int) -> dict[str, torch.Tensor]:
    """The centre ``image_size`` crop of every tensor of ``images`` (each (n, C, L, L))."""
    out = {}
    for key, value in images.items():
        start = (value.shape[-1] - image_size) // 2
        out[key] = value[..., start:start + image_size, start:start + image_size].contiguous()
    return out


class ImageFolder(TensorDataset):
    """All images under ``path`` (recursive), as ``real`` uint8 (N, channels, image_size, image_size).

    When every image lies in a first-level sub-folder and there are at least two of
    them, the sorted sub-folder names are the classes and ``label`` is set;
    otherwise the set is unlabelled (a single folder such as CelebA's
    ``img_align_celeba/`` is not a class).
    """

    kind = "image"

    def __init__(self, path, image_size: int = 64, channels: int = 3, num_classes: int | None = None,
                 max_images: int | None = None):
        self.image_size = check_int("image_size", image_size)
        self.channels = check_channels(channels)
        if max_images is not None:
            check_int("max_images", max_images)
        self.path = absolute_root(path)
        files = list_images(self.path) if self.path.is_dir() else []
        if not files:
            raise DataNotFoundError(
                f"No images found: looked in {self.path} (recursively) for files ending in "
                f"{', '.join(EXTENSIONS)}.\nPut the images there (sub-folders become classes), or set "
                f"dataset.path to the folder that holds them (e.g. CelebA's img_align_celeba/).")
        if max_images is not None and max_images < len(files):
            # Evenly spaced, so a capped labelled folder still covers every class.
            keep = torch.linspace(0, len(files) - 1, max_images).round().long().tolist()
            files = [files[i] for i in keep]

        folders = [f.relative_to(self.path).parts[0] if f.parent != self.path else None for f in files]
        names = sorted(set(folders)) if None not in folders else []
        self.class_names = names if len(names) >= 2 else None
        found = len(self.class_names) if self.class_names else None
        if num_classes is not None and num_classes != found:
            raise ValueError(f"dataset.num_classes is {num_classes}, but {self.path} holds "
                             f"{'no class sub-folders' if found is None else f'{found} class sub-folders'}")

        images = torch.stack(_decode_all(lambda f: decode_square(f, image_size, _MODES[channels]), files))
        tensors = {"real": images}
        if self.class_names:
            index = {name: i for i, name in enumerate(self.class_names)}
            tensors["label"] = torch.tensor([index[name] for name in folders], dtype=torch.int64)
        super().__init__(tensors, found)


class PairedFolder(TensorDataset):
    """pix2pix A|B files under ``path/split``: ``input``/``target`` uint8 at ``load_size``, jittered per batch.

    ``direction`` AtoB maps the left half to the right half, BtoA the reverse
    (facades: A is the photo, B the label map, and pix2pix trains BtoA).
    """

    kind = "paired"

    def __init__(self, path, split: str = "train", direction: str = "AtoB", image_size: int = 256,
                 load_size: int = 286, flip: bool = True, channels: int = 3):
        check_choice("direction", direction, ("AtoB", "BtoA"))
        self.image_size, self.load_size = check_jitter(image_size, load_size, flip)
        self.channels = check_channels(channels)
        self.path, self.split, self.direction, self.flip = absolute_root(path), split, direction, flip
        folder = self.path / split
        files = list_images(folder, recursive=False) if folder.is_dir() else []
        if not files:
            raise DataNotFoundError(
                f"No A|B image pairs found: looked in {folder} for files ending in {', '.join(EXTENSIONS)}.\n"
                f"Set dataset.path to a pix2pix dataset folder holding {split}/ (e.g. facades: "
                f"http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/facades.tar.gz, or "
                f"datasets/download_pix2pix_dataset.sh in junyanz/pytorch-CycleGAN-and-pix2pix).")

        pairs = _decode_all(lambda f: _decode_pair(f, load_size, _MODES[channels]), files)
        a, b = (torch.stack(half) for half in zip(*pairs))
        source, target = (a, b) if direction == "AtoB" else (b, a)
        super().__init__({"input": source, "target": target})

    def batch(self, index: torch.Tensor, augment: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Base batch, then one random crop and flip per sample, shared by input and target, drawn from
        ``augment`` (``batch_at``'s generator of batch k: the jitter is a function of the step and of
        nothing else, the same on every device); without it the centre crop (evaluation, sample grids)."""
        out = super().batch(index)
        if augment is None:
            return center_crop(out, self.image_size)
        return random_crop_flip(out, self.image_size, self.flip, augment)
