"""CUB-200-2011 birds and Oxford-102 flowers with the references' caption embeddings (``dataset=cub_text``,
``dataset=oxford_text``).

StackGAN (Zhang et al. 2017) ships Reed et al.'s char-CNN-RNN embeddings of ten captions per image; its
loaders (hanzhanggit/StackGAN ``misc/preprocess_birds.py``, ``misc/preprocess_flowers.py``;
StackGAN-Pytorch ``code/miscc/datasets.py``) read, for ``<root>/<name>`` (``birds`` or ``flowers``):

- ``<split>/char-CNN-RNN-embeddings.pickle``: (N, 10, 1024) float32 (a list or array);
- ``<split>/filenames.pickle``: the N image keys, e.g. ``001.Black_footed_Albatross/Black_Footed_Albatross_0046_18``;
- ``<split>/class_info.pickle`` (optional): the N class ids;
- images: birds ``CUB_200_2011/images/<key>.jpg``, flowers ``<key>.jpg`` (``jpg/image_00001``);
- birds only: ``CUB_200_2011/images.txt`` and ``bounding_boxes.txt``: each bird is cropped to a box of side
  1.5 max(w, h) around its bounding box (clipped to the image), as StackGAN-Pytorch's ``get_img`` does;
- optional ``text/<key>.txt``: the captions themselves (``eval_conditions`` names them when present).

The pickles were written by Python 2 and load with ``encoding="latin1"``. The splits are class-disjoint
(birds 150/50 classes, flowers 82/20). Images are decoded once at ``load_size`` (StackGAN: 76/64 of the side)
and cropped to ``image_size`` at random with a horizontal flip in training (the references' augmentation),
centrally otherwise. The embeddings cannot encode new sentences: ``embed`` says so.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gan_lab.data.base import absolute_root, check_choice, check_int
from gan_lab.data.folders import _decode_all, _to_tensor, center_crop, check_jitter, random_crop_flip
from gan_lab.data.text import CaptionedImages
from gan_lab.errors import ConfigError, DataNotFoundError

EMBEDDINGS = "char-CNN-RNN-embeddings.pickle"
# Where to get them: the StackGAN README (hanzhanggit/StackGAN, "Data").
SOURCES = {
    "birds": {"embeddings": "https://drive.google.com/open?id=0B3y_msrWZaXLT1BZdVdycDY5TEE",
              "images": "http://www.vision.caltech.edu/visipedia/CUB-200-2011.html",
              "images_to": "birds/CUB_200_2011/ (images/, images.txt, bounding_boxes.txt)"},
    "flowers": {"embeddings": "https://drive.google.com/open?id=0B3y_msrWZaXLaUc0UXpmcnhaVmM",
                "images": "http://www.robots.ox.ac.uk/~vgg/data/flowers/102/",
                "images_to": "flowers/ (so that flowers/jpg/image_00001.jpg exists)"},
}


def load_pickle(path: Path):
    """A Python 2 pickle of the references (strings as latin-1 bytes)."""
    with open(path, "rb") as f:
        return pickle.load(f, encoding="latin1")


def _bird_boxes(cub: Path) -> dict[str, tuple[float, float, float, float]]:
    """Image key (path without ``.jpg``) -> bounding box (x, y, width, height) from the CUB files."""
    names = dict(line.split() for line in (cub / "images.txt").read_text().splitlines() if line.strip())
    boxes = {}
    for line in (cub / "bounding_boxes.txt").read_text().splitlines():
        if line.strip():
            number, *box = line.split()
            boxes[names[number].rsplit(".", 1)[0]] = tuple(float(v) for v in box)
    return boxes


def _decode(path: Path, box: tuple[float, float, float, float] | None, size: int) -> torch.Tensor:
    """One image -> uint8 (3, size, size): cropped around ``box`` (StackGAN's birds) and resized, not
    squared first (the references stretch a non-square crop)."""
    with Image.open(path) as img:
        img = img.convert("RGB")
        if box is not None:
            x, y, w, h = box
            radius = int(max(w, h) * 0.75)
            cx, cy = int((2 * x + w) / 2), int((2 * y + h) / 2)
            img = img.crop((max(0, cx - radius), max(0, cy - radius), min(img.width, cx + radius),
                            min(img.height, cy + radius)))
        return _to_tensor(img.resize((size, size), Image.BILINEAR))


class StackGANText(CaptionedImages):
    """One split of StackGAN's birds or flowers: images with their ten char-CNN-RNN caption embeddings."""

    def __init__(self, root, name: str, split: str = "train", image_size: int = 64,
                 load_size: int = 76, flip: bool = True, captions_per_example: int = 4, text_dim: int = 1024):
        # text_dim: the embeddings' size the config promises (models size their text layers by it)
        check_choice("name", name, tuple(SOURCES))
        check_int("text_dim", text_dim)
        check_choice("split", split, ("train", "test"))
        self.image_size, self.load_size = check_jitter(image_size, load_size, flip)
        self.flip, self.name, self.split, self.channels = flip, name, split, 3
        self.root = absolute_root(root) / name
        split_dir = self.root / split
        cub = self.root / "CUB_200_2011"
        needed = [split_dir / EMBEDDINGS, split_dir / "filenames.pickle"]
        if name == "birds":
            needed += [cub / "images.txt", cub / "bounding_boxes.txt"]
        self._require(needed)
        embeddings = torch.from_numpy(np.asarray(load_pickle(split_dir / EMBEDDINGS), dtype=np.float32))
        self.filenames = [str(f) for f in load_pickle(split_dir / "filenames.pickle")]
        if embeddings.dim() != 3 or len(embeddings) != len(self.filenames):
            raise DataNotFoundError(f"{split_dir / EMBEDDINGS} holds {tuple(embeddings.shape)} embeddings for "
                                    f"{len(self.filenames)} files; expected (files, captions, dim)")
        if embeddings.shape[2] != text_dim:
            raise ConfigError(f"dataset.text_dim={text_dim}, but {split_dir / EMBEDDINGS} holds "
                              f"{embeddings.shape[2]}-d embeddings: set dataset.text_dim={embeddings.shape[2]}")
        # Class ids are the dataset's (1..200 for birds); a label is the index of its id among this split's.
        classes, labels, self.class_ids = split_dir / "class_info.pickle", None, None
        if classes.is_file():
            ids, labels = torch.as_tensor(np.asarray(load_pickle(classes), dtype=np.int64)).unique(return_inverse=True)
            self.class_ids = ids.tolist()
        images_dir = cub / "images" if name == "birds" else self.root
        paths = [images_dir / f"{key}.jpg" for key in self.filenames]
        self._require(paths)
        boxes = _bird_boxes(cub) if name == "birds" else {}
        images = torch.stack(_decode_all(lambda item: _decode(item[0], boxes.get(item[1]), load_size),
                                         list(zip(paths, self.filenames))))
        super().__init__(images, embeddings, labels, None if labels is None else len(self.class_ids),
                         captions_per_example)

    def _require(self, paths: list[Path]) -> None:
        missing = [p for p in paths if not p.is_file()]
        if missing:
            source = SOURCES[self.name]
            raise DataNotFoundError(
                f"{self.name} caption embeddings not found: looked for {missing[0]}"
                f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}. Download StackGAN's "
                f"preprocessed char-CNN-RNN embeddings ({source['embeddings']}, from the hanzhanggit/StackGAN "
                f"README) and extract them so that {self.root}/{{train,test}}/{EMBEDDINGS} exist, and the images "
                f"({source['images']}) into {self.root.parent}/{source['images_to']}; or set dataset.root "
                f"(now {self.root.parent}).")

    def _images(self, index: torch.Tensor, augment: torch.Generator | None) -> torch.Tensor:
        images = {"real": self.tensors["real"].index_select(0, index)}
        images = center_crop(images, self.image_size) if augment is None else \
            random_crop_flip(images, self.image_size, self.flip, augment)
        return images["real"].float().div_(127.5).sub_(1.0)

    def captions(self, n: int) -> list[str]:
        """The first caption of each of the first ``n`` images: from ``text/<key>.txt`` when present, else
        ``<key> #0``."""
        out = []
        for key in self.filenames[:n]:
            path = self.root / "text" / f"{key}.txt"
            lines = [l.strip() for l in path.read_text(errors="replace").splitlines() if l.strip()] \
                if path.is_file() else []
            out.append(lines[0] if lines else f"{key} #0")
        return out

    def eval_conditions(self, n: int) -> dict:
        """The first caption embedding of each of the first ``n`` images of this split (``gan-lab eval`` reads
        ``split=test``: classes unseen in training); no attributes."""
        if not 1 <= n <= len(self):
            raise ConfigError(f"{n} captions asked for; the {self.split} split of {self.name} has {len(self)} images")
        return {"text": self.tensors["embeddings"][:n, 0], "captions": self.captions(n), "attributes": None,
                "attribute_names": [], "real": self.examples(n)["real"]}
