"""The CIFAR-10 images that ``$GAN_LAB_DATA/cifar-10-partial/`` holds: the first 932 of ``data_batch_1``
(split ``train``) and of ``test_batch`` (split ``test``), cut byte for byte from the original pickles
(shared/data/README.md says how). torchvision cannot read them (it checks all six batch files), so this
reads the ``.npz`` files directly; without the files the error says where it looked.

Source: Krizhevsky 2009, "Learning Multiple Layers of Features from Tiny Images" (CIFAR-10).
"""

from __future__ import annotations

import numpy as np
import torch

from gan_lab.data.base import (TensorDataset, absolute_root, check_channels, check_choice, check_classes, check_int,
                               keep_classes, match_channels, resize_images)
from gan_lab.errors import DataNotFoundError

FILES = {"train": "data_batch_1_first932.npz", "test": "test_batch_first932.npz"}


class CIFAR10Partial(TensorDataset):
    """``real`` uint8 (932, C, S, S) and ``label`` int64 of one split of ``root/cifar-10-partial/``; with
    ``classes``, only the images of those classes."""

    kind = "image"

    def __init__(self, root, split: str = "train", image_size: int = 32, channels: int = 3, num_classes: int = 10,
                 classes: list[int] | None = None):
        check_choice("split", split, tuple(FILES))
        self.image_size = check_int("image_size", image_size)
        self.channels = check_channels(channels)
        if num_classes != 10:
            raise ValueError(f"dataset.num_classes must be 10 for CIFAR-10, got {num_classes!r}")
        self.selected = check_classes(classes, num_classes)
        path = absolute_root(root) / "cifar-10-partial" / FILES[split]
        if not path.is_file():
            raise DataNotFoundError(f"CIFAR-10 partial ({split} split) not found: looked for {path}. Point "
                                    f"GAN_LAB_DATA (or dataset.root) at the folder holding cifar-10-partial/, or "
                                    f"use dataset=cifar10 with the whole set")
        with np.load(path) as z:
            tensors = keep_classes({"real": torch.from_numpy(z["data"].reshape(-1, 3, 32, 32).copy()),
                                    "label": torch.from_numpy(z["labels"].astype(np.int64))}, self.selected)
        images = match_channels(resize_images(tensors["real"], self.image_size), self.channels)
        super().__init__({"real": images, "label": tensors["label"]}, num_classes)
