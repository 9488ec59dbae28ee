"""Paired image-to-image metrics: L1, PSNR and SSIM (Wang et al. 2004, "Image Quality Assessment: From
Error Visibility to Structural Similarity", §III.C), and PSNR/SSIM on the luma channel Y, as the
super-resolution literature reports them: on Y, without a strip of ``factor`` pixels at each border
(Ledig et al. 2017, §3.1, a 4-pixel strip at 4x; as recalled, not verified against the paper).

Images are float (N, C, H, W) in [0, data_range] (1 for gan-lab's [0, 1] images); each function returns
one value per image pair, (N,), so callers choose the reduction. SSIM follows the paper's reference
code (ssim_index.m): 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, statistics from
"valid" windows only (no padding), the SSIM map averaged over positions and then over channels, and no
automatic downsampling (as in scikit-image and pytorch-msssim).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gan_lab.metrics.evaluate import Metric


def _check(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"expected two image batches of one shape (N, C, H, W), got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference per image pair."""
    _check(a, b)
    return (a - b).abs().flatten(1).mean(1)


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """10 log10(data_range^2 / MSE) per image pair in dB; identical images give inf (as scikit-image)."""
    _check(a, b)
    mse = (a.double() - b.double()).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(data_range**2 / mse)).float()


def rgb_to_y(images: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] (N, 3, H, W) -> the luma Y of ITU-R BT.601 "studio swing" YCbCr, (N, 1, H, W) in
    [16/255, 235/255]: Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255, MATLAB's ``rgb2ycbcr`` on
    double images, which the SR benchmarks (and their Python ports, e.g. ESRGAN's ``rgb2ycbcr``) use."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected RGB images (N, 3, H, W), got {tuple(images.shape)}")
    weights = torch.tensor([65.481, 128.553, 24.966], dtype=images.dtype, device=images.device)
    return ((images * weights.view(1, 3, 1, 1)).sum(1, keepdim=True) + 16.0) / 255.0


def crop_border(images: torch.Tensor, border: int) -> torch.Tensor:
    """``images`` without ``border`` pixels at each edge (N, C, H - 2 border, W - 2 border)."""
    if border == 0:
        return images
    if 2 * border >= min(images.shape[-2:]):
        raise ValueError(f"a border of {border} px leaves nothing of {tuple(images.shape[-2:])} images")
    return images[..., border:-border, border:-border]


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Normalised 1-D Gaussian (the 2-D window is its outer product)."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    w = torch.exp(-(x**2) / (2 * sigma**2))
    return w / w.sum()


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM per image pair (float64 inside, so flat regions do not lose the C1/C2 balance)."""
    _check(a, b)
    if min(a.shape[-2:]) < 11:
        raise ValueError(f"SSIM's 11x11 window needs images of at least 11x11, got {tuple(a.shape[-2:])}")
    n, c = a.shape[:2]
    a, b = a.double().flatten(0, 1).unsqueeze(1), b.double().flatten(0, 1).unsqueeze(1)
    w = gaussian_window().to(a.device)

    def blur(x: torch.Tensor) -> torch.Tensor:  # separable valid Gaussian filter
        return F.conv2d(F.conv2d(x, w.view(1, 1, 1, -1)), w.view(1, 1, -1, 1))

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return ssim_map.mean(dim=(1, 2, 3)).view(n, c).mean(1).float()


class PairedMetric(Metric):
    """The mean of ``measure`` over (output, true partner) pairs of a paired set, in [0, 1] image units."""

    key: str

    @staticmethod
    def measure(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def applies(self, ev, s) -> bool:
        return s.paired and s.real.dim() == 4

    def __call__(self, ev, s) -> dict[str, float]:
        fake, partner = (crop_border(x * 0.5 + 0.5, s.border) for x in (ev.outputs(s).fake, s.real.cpu().float()))
        return {self.key: float(self.measure(fake, partner).mean())}


class L1(PairedMetric):
    key, measure = "L1", staticmethod(l1)


class PSNR(PairedMetric):
    key, measure = "PSNR", staticmethod(psnr)


class SSIM(PairedMetric):
    key, measure = "SSIM", staticmethod(ssim)


class PSNRY(PairedMetric):
    """PSNR of the luma Y (RGB sets only), after the set's border crop."""

    key = "PSNR-Y"

    def applies(self, ev, s) -> bool:
        return super().applies(ev, s) and s.real.shape[1] == 3

    @staticmethod
    def measure(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return psnr(rgb_to_y(a), rgb_to_y(b))


class SSIMY(PSNRY):
    """SSIM of the luma Y (RGB sets only), after the set's border crop."""

    key = "SSIM-Y"

    @staticmethod
    def measure(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return ssim(rgb_to_y(a), rgb_to_y(b))


class CycleL1(Metric):
    """``cycle L1``: |back(G(x)) - x| averaged over a translator's inputs, in [0, 1] image units (the cycle
    consistency of Zhu et al. 2017, eq. 2, as an error)."""

    def applies(self, ev, s) -> bool:
        return s.back is not None

    def __call__(self, ev, s) -> dict[str, float]:
        return {"cycle L1": float((ev.outputs(s).cycled - s.given["input"].cpu()).abs().mean() * 0.5)}
