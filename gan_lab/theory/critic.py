"""The lab's pieces on toy data: losses read from the ``loss`` config group, the MLP discriminator of
``model=gan`` as a small critic, and a discriminator-only training loop (the theory figures train D against
a fixed G or fixed point sets, which the engine's G/D loop does not do)."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gan_lab.errors import ConfigError
from gan_lab.losses.penalties import gradient_penalty
from gan_lab.models.gan import Discriminator

Sampler = Callable[[int], torch.Tensor]
LOSSES = resources.files("gan_lab.configs") / "loss"  # the loss config group: one YAML file per option


def loss_names() -> list[str]:
    """Every option of the ``loss`` config group, sorted."""
    return sorted(p.name.removesuffix(".yaml") for p in LOSSES.iterdir() if p.name.endswith(".yaml"))


def load_loss(name: str, key: str):
    """The loss object of ``configs/loss/<name>.yaml``; ``key`` names the setting in errors."""
    if name not in loss_names():
        raise ConfigError(f"{key}={name}: not in configs/loss (choose from {', '.join(loss_names())})")
    return instantiate(OmegaConf.load(str(LOSSES / f"{name}.yaml")))


def unbounded(loss) -> bool:
    """Whether D's loss falls without bound as free outputs part (real up and fake down, or the reverse):
    such a game (Wasserstein, an energy) has an optimal D only within a constrained class, here 1-Lipschitz
    critics held there by the lab's gradient penalty."""
    def at(scale: float, sign: int) -> float:
        return float(loss.d_loss(torch.tensor([sign * scale]), torch.tensor([-sign * scale])))
    return any(at(1e4, s) < at(1e2, s) - 1e3 for s in (1, -1))


def toy_critic(dim: int, units: int = 64, seed: int = 0) -> Discriminator:
    """``model=gan``'s maxout discriminator at toy size (two layers of ``units``, 2 pieces, no dropout)."""
    torch.manual_seed(seed)
    return Discriminator([dim], units=[units, units], pieces=2, input_dropout=0.0, dropout=0.0)


def train_critic(D: torch.nn.Module, loss, real: Sampler, fake: Sampler, steps: int, batch: int = 256,
                 lr: float = 1e-3, penalty: float = 0.0, every: int = 0,
                 probe: Callable[[int], dict] | None = None) -> list[dict]:
    """``steps`` Adam steps of D on ``loss.d_loss`` (plus ``penalty`` * the WGAN-GP term when > 0) between
    fresh batches of ``real`` and ``fake``; ``probe(step)`` is recorded at step 0 and every ``every`` steps."""
    opt = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.9))
    records = []
    for step in range(steps + 1):
        if probe is not None and every and step % every == 0:
            records.append({"step": step, **probe(step)})
        if step == steps:
            break
        x, g = real(batch), fake(batch).detach()
        d_loss = loss.d_loss(D(x), D(g))
        if penalty > 0:
            d_loss = d_loss + gradient_penalty(D, x, g, lambda_=penalty)
        opt.zero_grad(set_to_none=True)
        d_loss.backward()
        opt.step()
    return records


@torch.no_grad()
def d_loss_on(D: torch.nn.Module, loss, real: Sampler, fake: Sampler, n: int = 8192) -> float:
    """D's loss (without penalty) on fresh samples: minus the game's value for D."""
    return float(loss.d_loss(D(real(n)), D(fake(n))))
