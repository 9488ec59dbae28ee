"""Base classes of the training tricks; the hook contract is described in ``gan_lab.tricks``."""

from __future__ import annotations

import logging

import torch
from torch import nn

from gan_lab.errors import ConfigError

log = logging.getLogger(__name__)


class Trick:
    """Engine hooks that do nothing; a trick overrides the ones it needs."""

    def setup(self, task: nn.Module) -> None:
        """Once, before the first step."""

    def after_d_step(self, task: nn.Module) -> None:
        """After every discriminator optimizer step."""

    def after_g_step(self, task: nn.Module) -> None:
        """After every generator optimizer step."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""


class Penalty(Trick):
    """A term added to the discriminator's loss, logged as ``penalty/<name>``.

    Subclasses set ``name`` and implement :meth:`penalty`."""

    name: str

    def setup(self, task: nn.Module) -> None:
        if not hasattr(task, "penalties"):
            raise ConfigError(f"tricks: {type(task).__name__} takes no discriminator penalties, "
                              f"so {type(self).__name__} cannot be used with this model")
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in task.D.modules()):
            log.warning("%s: the discriminator uses batch norm, which mixes the samples of a batch, so "
                        "its input gradients are not per sample (Gulrajani et al. 2017, §4); consider "
                        "model.discriminator.norm=layer", type(self).__name__)
        task.penalties.append(self)

    def d_penalty(self, task: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                  cond: tuple) -> dict[str, torch.Tensor]:
        return {f"penalty/{self.name}": self.penalty(task.D, real, fake, cond)}

    def penalty(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, cond: tuple) -> torch.Tensor:
        raise NotImplementedError


def positive(value: float, key: str) -> float:
    """``value`` if it is positive, else a ValueError naming the config key."""
    if not value > 0:
        raise ValueError(f"{key} must be positive, got {value}")
    return value
