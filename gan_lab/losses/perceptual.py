"""The VGG content loss of SRGAN (Ledig et al. 2017, "Photo-Realistic Single Image Super-Resolution
Using a Generative Adversarial Network", §2.2.1, eq. 5): the MSE between feature maps of a frozen
ImageNet VGG19, "the feature map obtained by the j-th convolution (after activation) before the i-th
maxpooling layer". ``vgg22`` = relu2_2 (torchvision ``vgg19().features[:9]``, 128 channels at 1/2 size),
``vgg54`` = relu5_4 (``features[:36]``, 512 channels at 1/16), the paper's final SRGAN.

Scaling (§3.2): "VGG feature maps were also rescaled by a factor of 1/12.75 to obtain VGG losses of a
scale that is comparable to the MSE loss. This is equivalent to multiplying Equation 5 with a rescaling
factor of ≈ 0.006" (quoted from the paper in the spec). Here ``scale`` multiplies the *features*
(default 1/12.75), so the loss is ``scale**2`` (= 0.00615) times the plain feature MSE. The constant was
tuned for the paper's VGG input convention; torchvision's normalised inputs give other magnitudes, so it
stays a knob.

The weights are never downloaded: the user gives torchvision's VGG19 ``state_dict`` file
(``vgg19-dcbb9e9d.pth``), loaded with ``weights_only=True``. The network is frozen (eval mode, no
gradients) and is no module of the task, so it is never stored in a checkpoint.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gan_lab.errors import ConfigError

log = logging.getLogger(__name__)

# Index just past the ReLU of each layer in torchvision's vgg19().features.
LAYERS = {"vgg22": 9, "vgg54": 36}
WEIGHTS_FILE = "vgg19-dcbb9e9d.pth"
WEIGHTS_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
SHA256_PREFIX = "dcbb9e9d"  # torch hub names a file by the first 8 hex digits of its SHA-256
ENV = "GAN_LAB_VGG19"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _missing(key: str, why: str) -> ConfigError:
    return ConfigError(f"{key}: {why}. The VGG content loss needs torchvision's ImageNet VGG19 weights, "
                       f"{WEIGHTS_FILE} ({WEIGHTS_URL}): download it and set {key}=/path/to/{WEIGHTS_FILE} or the "
                       f"environment variable {ENV}; or use the content loss mse, which needs no weights")


def load_vgg19(path: str | Path | None, key: str) -> dict[str, torch.Tensor]:
    """The state_dict of a torchvision VGG19 file; errors name the config ``key``. A file whose SHA-256
    does not start with dcbb9e9d (torch hub's name for the official one) is used with a warning."""
    if path is None:
        raise _missing(key, "no weights file given")
    file = Path(str(path)).expanduser()
    if not file.is_file():
        raise _missing(key, f"{file} does not exist")
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    if not digest.startswith(SHA256_PREFIX):
        log.warning("%s: SHA-256 %s... is not that of torchvision's %s; using it anyway (converted weights?)",
                    file, digest[:8], WEIGHTS_FILE)
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, a git-lfs pointer, not a torch file
        raise _missing(key, f"{file} is not a readable torch state_dict ({type(err).__name__})") from None
    if not isinstance(state, dict) or "features.0.weight" not in state:
        raise _missing(key, f"{file} is not a VGG19 state_dict (no features.0.weight)")
    return state


class VGGFeatures(nn.Module):
    """Frozen ``vgg19().features[:LAYERS[layer]]`` on images in [-1, 1]: mapped to [0, 1], then
    ImageNet-normalised (torchvision's convention for its weights)."""

    def __init__(self, layer: str, weights: str | Path | None, key: str = "model.vgg_weights"):
        super().__init__()
        if layer not in LAYERS:
            raise ConfigError(f"unknown VGG layer {layer!r}; one of {list(LAYERS)}")
        from torchvision.models import vgg19  # ~3 s import: only runs that use a VGG loss pay it

        state = load_vgg19(weights, key)
        net = vgg19(weights=None)
        try:
            net.load_state_dict(state)
        except RuntimeError as err:
            raise _missing(key, f"the file does not fit torchvision's VGG19: {str(err).splitlines()[0]}") from None
        self.features = net.features[:LAYERS[layer]].eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "VGGFeatures":
        return super().train(False)  # always the frozen network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * 0.5 + 0.5
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # grayscale images as RGB
        return self.features((x - self.mean) / self.std)


class ContentLoss:
    """``mse``: pixel MSE on [-1, 1] images (SRResNet, SRGAN-MSE); ``vgg22`` / ``vgg54``: the MSE of
    ``scale`` times the VGG features. Holds the VGG outside any module tree (no checkpoint, no optimizer)
    and moves it to the images' device on first use. The VGG is read by :meth:`load` (a training run calls
    it before its first step; evaluating or sampling a trained run never needs the file), else on first use."""

    KINDS = ("mse", *LAYERS)

    def __init__(self, kind: str = "mse", weights: str | Path | None = None, scale: float = 1 / 12.75,
                 key: str = "model.vgg_weights"):
        if kind not in self.KINDS:
            raise ConfigError(f"model.content must be one of {list(self.KINDS)}, got {kind!r}")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale <= 0:
            raise ConfigError(f"model.vgg_scale must be a positive number, got {scale!r}")
        self.kind, self.scale, self.weights, self.key = kind, float(scale), weights, key
        self.vgg: VGGFeatures | None = None

    def load(self) -> None:
        """Read the VGG weights now (errors name the config key); nothing to do for ``mse``."""
        if self.kind != "mse" and self.vgg is None:
            self.vgg = VGGFeatures(self.kind, self.weights, self.key)

    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.kind == "mse":
            return F.mse_loss(output, target)
        self.load()
        if self.vgg.mean.device != output.device:
            self.vgg.to(output.device)
        with torch.no_grad():
            wanted = self.vgg(target)
        return F.mse_loss(self.scale * self.vgg(output), self.scale * wanted)
