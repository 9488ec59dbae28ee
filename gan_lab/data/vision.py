"""torchvision image sets (MNIST, Fashion-MNIST, CIFAR-10) as uint8 tensors.

The raw ``.data``/``.targets`` arrays of the torchvision datasets are converted in
one go (no per-image PIL loop) and resized once to ``image_size``. ``classes`` keeps
only the images of some classes (the normal data of a one-class anomaly detector,
``gan-lab anomaly``). A missing set
raises :class:`DataNotFoundError` naming every folder torchvision looked in and how
to get the files.

Sources: LeCun et al. 1998 (MNIST), Xiao et al. 2017 (Fashion-MNIST),
Krizhevsky 2009 (CIFAR-10).
"""

from __future__ import annotations

import torch

from gan_lab.data.base import (TensorDataset, absolute_root, check_bool, check_channels, check_choice, check_classes,
                               check_int, keep_classes, match_channels, resize_images)
from gan_lab.errors import DataNotFoundError


class _TorchvisionImages(TensorDataset):
    """One torchvision image set, decoded into ``real`` uint8 (N, C, S, S) and ``label`` int64; with ``classes``,
    only the images of those classes (in their order in the set, labels unchanged)."""

    kind = "image"
    tv_class: str          # name in torchvision.datasets
    folder: str            # where torchvision looks, relative to root
    expects: str           # the files torchvision reads from ``folder``
    source: str            # where the files come from
    classes: int = 10

    # Subclasses spell out their signature (and defaults) so Hydra keys map 1:1 to arguments.
    def __init__(self, root, split: str, download: bool, image_size: int, channels: int, num_classes: int,
                 classes):
        check_choice("split", split, ("train", "test"))
        check_bool("download", download)
        self.image_size = check_int("image_size", image_size)
        self.channels = check_channels(channels)
        if num_classes != self.classes:
            raise ValueError(f"dataset.num_classes must be {self.classes} for {self.tv_class}, got {num_classes!r}")
        self.selected = check_classes(classes, num_classes)
        self.root = absolute_root(root)
        self.split = split

        data, targets = self._load(download)
        labels = torch.as_tensor(targets, dtype=torch.int64)
        tensors = keep_classes({"real": torch.as_tensor(data), "label": labels}, self.selected)
        images = tensors["real"]
        # MNIST-style sets are (N, H, W); CIFAR is (N, H, W, C) like PIL.
        images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
        images = match_channels(resize_images(images.contiguous(), self.image_size), self.channels)
        super().__init__({"real": images, "label": tensors["label"]}, num_classes)

    def _load(self, download: bool):
        # torchvision costs ~3 s to import; only these three datasets need it.
        import torchvision.datasets

        cls = getattr(torchvision.datasets, self.tv_class)
        where = self.root / self.folder
        manual = (f"put {self.expects} into {where}, or point GAN_LAB_DATA (or dataset.root) at a folder "
                  f"that holds {self.folder}/")
        try:
            ds = cls(str(self.root), train=self.split == "train", download=download)
        except (RuntimeError, OSError) as err:
            if download:
                reason = [line for line in str(err).splitlines() if line.strip()][-1:] or [type(err).__name__]
                raise DataNotFoundError(
                    f"{self.tv_class} ({self.split} split) is not in {where} and downloading {self.source} "
                    f"into {self.root} failed (offline?): {reason[0].strip()}\nInstead, {manual}.") from err
            raise DataNotFoundError(
                f"{self.tv_class} ({self.split} split) not found: looked in {where}.\nGet it with "
                f"dataset.download=true (torchvision downloads {self.source} into {self.root}), "
                f"or {manual}.") from err
        return ds.data, ds.targets


class MNIST(_TorchvisionImages):
    """MNIST digits, 28 px resized once to ``image_size`` (32 by default, the DCGAN size)."""

    tv_class = "MNIST"
    folder = "MNIST/raw"
    expects = ("the uncompressed IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, "
               "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte; with only the .gz files, "
               "download=true extracts them without network)")
    source = "the four MNIST .gz files from ossci-datasets.s3.amazonaws.com/mnist"

    def __init__(self, root, split: str = "train", download: bool = True, image_size: int = 32,
                 channels: int = 1, num_classes: int = 10, classes: list[int] | None = None):
        super().__init__(root, split, download, image_size, channels, num_classes, classes)


class FashionMNIST(_TorchvisionImages):
    """Zalando's Fashion-MNIST, a drop-in MNIST replacement with 10 clothing classes."""

    tv_class = "FashionMNIST"
    folder = "FashionMNIST/raw"
    expects = MNIST.expects
    source = "the four Fashion-MNIST .gz files from fashion-mnist.s3-website.eu-central-1.amazonaws.com"

    def __init__(self, root, split: str = "train", download: bool = True, image_size: int = 32,
                 channels: int = 1, num_classes: int = 10, classes: list[int] | None = None):
        super().__init__(root, split, download, image_size, channels, num_classes, classes)


class CIFAR10(_TorchvisionImages):
    """CIFAR-10, 32 px RGB natural images in 10 classes."""

    tv_class = "CIFAR10"
    folder = "cifar-10-batches-py"
    expects = ("the python batches (data_batch_1..5, test_batch, batches.meta; torchvision checks the md5 "
               "of all six data batches)")
    source = "cifar-10-python.tar.gz from www.cs.toronto.edu/~kriz/cifar.html"

    def __init__(self, root, split: str = "train", download: bool = True, image_size: int = 32,
                 channels: int = 3, num_classes: int = 10, classes: list[int] | None = None):
        super().__init__(root, split, download, image_size, channels, num_classes, classes)
