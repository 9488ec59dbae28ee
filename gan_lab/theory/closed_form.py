"""Closed forms behind the theory figures: the optimal discriminator of two 1-D Gaussians, divergences of
discrete distributions and of the parallel lines, and the updates of the bilinear game min_x max_y xy."""

from __future__ import annotations

import math

import torch

LOG2 = math.log(2.0)


def gaussian_pdf(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    return torch.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))


def optimal_d(x: torch.Tensor, data: tuple[float, float], gen: tuple[float, float]) -> torch.Tensor:
    """D*(x) = p_data(x) / (p_data(x) + p_g(x)) for Gaussians given as (mean, std) (Goodfellow et al. 2014,
    §4.1, Proposition 1)."""
    p, q = gaussian_pdf(x, *data), gaussian_pdf(x, *gen)
    return p / (p + q)


def kl(p: torch.Tensor, q: torch.Tensor) -> float:
    """KL(p || q) of two discrete distributions on one support (inf where p has mass q lacks)."""
    on = p > 0
    if (q[on] == 0).any():
        return math.inf
    return float((p[on] * (p[on] / q[on]).log()).sum())


def js(p: torch.Tensor, q: torch.Tensor) -> float:
    """Jensen-Shannon divergence, KL(p || m) / 2 + KL(q || m) / 2 with m = (p + q) / 2: log 2 for disjoint
    supports, 0 for equal distributions."""
    def half(a: torch.Tensor, b: torch.Tensor) -> float:  # KL(a || m) without forming m: no underflow
        on = a > 0
        return float((a[on] * (2 * a[on] / (a[on] + b[on])).log()).sum())
    return 0.5 * half(p, q) + 0.5 * half(q, p)


def js_gaussians(data: tuple[float, float], gen: tuple[float, float], points: int = 20001) -> float:
    """JS of two 1-D Gaussians by quadrature on a grid covering both (8 std each side)."""
    lo = min(data[0] - 8 * data[1], gen[0] - 8 * gen[1])
    hi = max(data[0] + 8 * data[1], gen[0] + 8 * gen[1])
    x = torch.linspace(lo, hi, points, dtype=torch.float64)
    p, q = gaussian_pdf(x, *data), gaussian_pdf(x, *gen)
    return js(p / p.sum(), q / q.sum())


def parallel_lines(theta: float) -> dict[str, float]:
    """P_0 = (0, Z) against P_theta = (theta, Z), Z ~ U[0, 1] (Arjovsky, Chintala & Bottou 2017, §2,
    Example 1): KL = inf, JS = log 2, TV = 1 for theta != 0 (all 0 at theta = 0), W1 = |theta|."""
    apart = theta != 0
    return {"theta": theta, "KL": math.inf if apart else 0.0, "JS": LOG2 if apart else 0.0,
            "TV": 1.0 if apart else 0.0, "W1": abs(theta)}


def parallel_lines_sample(theta: float, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n points of P_0 and n of P_theta, each with its own Z draws."""
    z0, z1 = torch.rand(n, 1, generator=generator), torch.rand(n, 1, generator=generator)
    return torch.cat([torch.zeros_like(z0), z0], 1), torch.cat([torch.full_like(z1, theta), z1], 1)


def xy_growth(lr: float, method: str) -> float:
    """Radius factor per step of gradient play on V = xy from any (x, y) != 0 (Goodfellow 2016 tutorial, §8.2):
    simultaneous steps are the rotation-scaling [[1, -lr], [lr, 1]], so the radius grows by sqrt(1 + lr^2);
    extragradient's step [[1 - lr^2, -lr], [lr, 1 - lr^2]] shrinks it by sqrt(1 - lr^2 + lr^4)."""
    if method == "simultaneous":
        return math.sqrt(1 + lr**2)
    if method == "extragradient":
        return math.sqrt((1 - lr**2) ** 2 + lr**2)
    raise ValueError(f"no closed-form radius factor for {method!r}")
