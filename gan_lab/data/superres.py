"""Super-resolution pairs from any image dataset: each high-resolution (HR) image and its bicubic
downscale by ``factor`` (antialiased), the degradation of Ledig et al. 2017, "Photo-Realistic Single
Image Super-Resolution Using a Generative Adversarial Network", §3.2 ("obtained the LR images by
downsampling the HR images (BGR, C = 3) using bicubic kernel with downsampling factor r = 4").

The pairs are data kind ``paired``, ``{"input": LR (C, S/factor, S/factor), "target": HR (C, S, S)}``,
both stored as uint8 like saved LR files (so the LR is quantised as in the SR benchmarks) and served in
[-1, 1]; a super-resolution model maps its LR input to [0, 1] itself (the paper's LR range).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from gan_lab.data.base import TensorDataset, check_choice, check_int


def bicubic_downscale(images: torch.Tensor, factor: int) -> torch.Tensor:
    """uint8 or float (N, C, H, W) -> (N, C, H/factor, W/factor), bicubic with antialiasing (a = -0.5, the
    kernel of MATLAB's ``imresize`` and PIL); uint8 in, rounded uint8 out."""
    out = F.interpolate(images.float(), scale_factor=1 / factor, mode="bicubic", antialias=True,
                        align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8) if images.dtype == torch.uint8 else out


def bicubic_upscale(images: torch.Tensor, factor: int) -> torch.Tensor:
    """Float images in [-1, 1] (N, C, h, w) -> (N, C, h factor, w factor), bicubic, clamped to [-1, 1]:
    the baseline every SR paper reports (Ledig et al. 2017, Table 2 "bicubic")."""
    return F.interpolate(images, scale_factor=factor, mode="bicubic", align_corners=False).clamp(-1, 1)


class SuperResolution(TensorDataset):
    """LR/HR pairs of the dataset ``base`` (any image dataset config, e.g. shapes or cifar10).

    ``split``: passed to ``base`` when it has splits (cifar10's train/test); a base without splits but with a
    ``seed`` (shapes) draws its ``test`` split with ``seed + 1``, images the training set never showed.
    ``count``: keep the base's first ``count`` images (None: all). ``image_size`` and ``channels`` repeat
    the base's (the model configs read them) and are checked."""

    kind = "paired"

    def __init__(self, base: DictConfig | dict, factor: int = 4, split: str = "train", count: int | None = None,
                 image_size: int | None = None, channels: int | None = None):
        self.factor = check_int("factor", factor)
        check_choice("split", split, ("train", "test"))
        node = OmegaConf.to_container(base, resolve=True) if isinstance(base, DictConfig) else dict(base)
        if "split" in node:
            node["split"] = split
        elif split == "test" and "seed" in node:
            node["seed"] = int(node["seed"]) + 1
        data = instantiate(node)
        if "real" not in data.tensors or data.tensors["real"].dim() != 4:
            raise ValueError(f"dataset.base must be an image dataset, got {node.get('_target_')}")
        hr = data.tensors["real"]
        if count is not None:
            hr = hr[:check_int("count", count)]
        side = hr.shape[-1]
        if side % self.factor or side // self.factor < 1:
            raise ValueError(f"dataset.factor={factor} must divide the image side ({side} px, "
                             f"dataset.base.image_size)")
        for key, value, have in (("image_size", image_size, side), ("channels", channels, hr.shape[1])):
            if value is not None and value != have:
                raise ValueError(f"dataset.{key}={value} differs from the base dataset's {have}: set "
                                 f"dataset.base.{key} (dataset.{key} follows it)")
        self.image_size, self.channels = side, hr.shape[1]
        self.class_names = getattr(data, "class_names", None)
        super().__init__({"input": bicubic_downscale(hr, self.factor), "target": hr})
