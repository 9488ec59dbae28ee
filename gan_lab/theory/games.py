"""``saturation`` and ``xy_game``: what the generator receives, and why gradient play need not converge.

- saturation: a fixed G whose samples lie far from the data, and a D trained towards optimality under each
  loss of the ``loss`` config group; the norm of G's loss gradient with respect to G's weights, as D
  improves. The minimax cost log(1 - D(G(z))) saturates as D(G(z)) -> 0, the non-saturating -log D(G(z))
  does not (Goodfellow et al. 2014, §3; Goodfellow 2016 tutorial, §3.2.3, as recalled; Arjovsky & Bottou
  2017, §2.2, Theorem 2.4 and 2.5, as recalled).
- xy_game: min_x max_y V = xy, whose only equilibrium is (0, 0): simultaneous gradient steps spiral out by
  sqrt(1 + lr^2) per step, alternating steps circle, extragradient (Korpelevich 1976) and a gradient penalty
  on the max player (R1, Mescheder et al. 2018, §4.1, on the Dirac-GAN of §2) spiral in (Goodfellow 2016
  tutorial, §8.2, as recalled).
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import nn

from gan_lab.losses.adversarial import AdversarialLoss
from gan_lab.losses.penalties import r1_penalty
from gan_lab.models.gan import Generator
from gan_lab.theory.closed_form import xy_growth
from gan_lab.theory.critic import load_loss, loss_names, toy_critic, train_critic, unbounded
from gan_lab.theory.plot import figure, save


def _grad_norm(loss: torch.Tensor, params) -> float:
    grads = torch.autograd.grad(loss, list(params))
    return float(torch.sqrt(sum(g.square().sum() for g in grads)))


def saturation(cfg: DictConfig, out: Path) -> str:
    torch.manual_seed(cfg.seed)
    G = Generator([1], z_dim=1, hidden=[])  # x = w z + b: near 0 at initialisation, far from the data
    rng = torch.Generator().manual_seed(cfg.seed)
    z = torch.randn(cfg.batch * 4, 1, generator=rng)  # G's gradient is measured on these

    def real(n: int) -> torch.Tensor:
        return cfg.data[0] + cfg.data[1] * torch.randn(n, 1, generator=rng)

    def fake(n: int) -> torch.Tensor:
        return G(torch.randn(n, 1, generator=rng))

    curves, skipped = {}, {}
    for name in loss_names():
        try:
            loss = load_loss(name, "loss")
            constrained = unbounded(loss)
            D = toy_critic(1, seed=cfg.seed)

            def probe(step: int) -> dict:
                out_fake = D(G(z))
                shown = torch.sigmoid(out_fake) if isinstance(loss, AdversarialLoss) else out_fake
                return {"grad_G": _grad_norm(loss.g_loss(out_fake), G.parameters()),
                        "D(G(z))": float(shown.detach().mean())}

            records = train_critic(D, loss, real, fake, cfg.steps, cfg.batch, cfg.lr,
                                   penalty=cfg.penalty if constrained else 0.0, every=cfg.every, probe=probe)
        except Exception as err:  # any loss the toy cannot run is listed with its reason, never dropped silently
            skipped[name] = " ".join(f"{type(err).__name__}: {err}".split())[:300]  # Hydra's cause is on line 2
            continue
        if not all(torch.isfinite(torch.tensor(r["grad_G"])) for r in records):
            skipped[name] = "a non-finite G gradient on the toy"
            continue
        curves[name + (" (+GP critic)" if constrained else "")] = records

    fig, (ax,) = figure(width=6)
    for label, records in curves.items():
        ax.plot([r["step"] for r in records], [max(r["grad_G"], 1e-12) for r in records], label=label)
    ax.set(yscale="log", xlabel="D steps on a fixed G (D -> optimal)", ylabel="||grad of G's loss wrt G||",
           title=f"G's gradient as D improves (data N{tuple(cfg.data)}, G near 0)")
    ax.legend(fontsize=7)
    save(fig, out, "saturation", {"steps": cfg.steps, "data": list(cfg.data), "curves": curves, "skipped": skipped})
    ends = ", ".join(f"{k} {v[-1]['grad_G']:.2g}" for k, v in curves.items())
    gone = "; skipped: " + ", ".join(f"{k} ({v})" for k, v in skipped.items()) if skipped else ""
    return f"||grad G|| after {cfg.steps} D steps: {ends}{gone}"


class Bilinear(nn.Module):
    """The max player of V(x, y) = xy as a discriminator D_y(x) = y x, so the lab's R1 penalty applies: its
    input gradient is y, and gamma / 2 * y^2 pulls y to 0 (Mescheder et al. 2018's Dirac-GAN)."""

    def __init__(self, y: float):
        super().__init__()
        self.y = nn.Parameter(torch.tensor(y, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.y * x


def _gradients(x: float, y: float, gamma: float) -> tuple[float, float]:
    """(dV/dx, d(-V + R1)/dy) at (x, y): each player's descent direction."""
    D, x = Bilinear(y), torch.tensor(x, dtype=torch.float64, requires_grad=True)
    (gx,) = torch.autograd.grad(D(x), x)
    cost_y = -D(x.detach())
    if gamma > 0:
        cost_y = cost_y + r1_penalty(D, x.detach().view(1, 1), gamma=gamma)
    (gy,) = torch.autograd.grad(cost_y, D.y)
    return float(gx), float(gy)


def play(method: str, lr: float, steps: int, start: tuple[float, float], gamma: float = 0.0) -> torch.Tensor:
    """The (steps + 1, 2) trajectory of (x, y) under ``method``: simultaneous, alternating or extragradient
    gradient steps of size lr; ``gamma`` > 0 adds the R1 penalty to the max player's cost."""
    if method not in ("simultaneous", "alternating", "extragradient"):
        raise ValueError(f"unknown method {method!r}")
    x, y = start
    path = [(x, y)]
    for _ in range(steps):
        gx, gy = _gradients(x, y, gamma)
        if method == "simultaneous":
            x, y = x - lr * gx, y - lr * gy
        elif method == "alternating":  # y answers the x just played
            x = x - lr * gx
            y = y - lr * _gradients(x, y, gamma)[1]
        else:  # extragradient: look ahead, then step from (x, y) with the look-ahead's gradients
            hx, hy = _gradients(x - lr * gx, y - lr * gy, gamma)
            x, y = x - lr * hx, y - lr * hy
        path.append((x, y))
    return torch.tensor(path, dtype=torch.float64)


def xy_game(cfg: DictConfig, out: Path) -> str:
    start = (float(cfg.start[0]), float(cfg.start[1]))
    runs = {"simultaneous": play("simultaneous", cfg.lr, cfg.steps, start),
            "alternating": play("alternating", cfg.lr, cfg.steps, start),
            "extragradient": play("extragradient", cfg.lr, cfg.steps, start),
            f"simultaneous + R1 (gamma={cfg.gamma})": play("simultaneous", cfg.lr, cfg.steps, start, cfg.gamma)}
    radius = {k: float(v[-1].norm()) for k, v in runs.items()}
    fig, (ax,) = figure(width=5, height=5)
    for label, path in runs.items():
        ax.plot(path[:, 0], path[:, 1], lw=1, label=f"{label}: r = {radius[label]:.2f}")
    ax.plot([start[0]], [start[1]], "ko", ms=4)
    ax.plot([0], [0], "k*", ms=8, label="equilibrium (0, 0)")
    ax.set(xlabel="x (minimises xy)", ylabel="y (maximises xy)", aspect="equal",
           title=f"min_x max_y xy: {cfg.steps} steps, lr {cfg.lr}")
    ax.legend(fontsize=7, loc="lower left")
    r0 = float(torch.tensor(start).norm())
    save(fig, out, "xy_game", {"lr": cfg.lr, "steps": cfg.steps, "start": list(start), "gamma": cfg.gamma,
                               "start_radius": r0, "final_radius": radius,
                               "simultaneous_factor_closed_form": xy_growth(cfg.lr, "simultaneous"),
                               "trajectories": {k: v.tolist() for k, v in runs.items()}})
    return (f"from r = {r0:.2f}: simultaneous steps spiral out to r = {radius['simultaneous']:.2f} "
            f"(x sqrt(1 + lr^2) = {xy_growth(cfg.lr, 'simultaneous'):.5f} per step), alternating circle "
            f"(r = {radius['alternating']:.2f}), extragradient and R1 spiral in (r = {radius['extragradient']:.2f}, "
            f"{radius[f'simultaneous + R1 (gamma={cfg.gamma})']:.2f})")
