"""Base classes of the training tricks; the hook contract is described in ``gan_lab.tricks``."""

from __future__ import annotations

import logging

import torch
from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.models.terms import LossTerm

log = logging.getLogger(__name__)


class Trick:
    """Engine hooks that do nothing; a trick overrides the ones it needs."""

    def modify(self, task: nn.Module) -> None:
        """Change the networks (add layers, reparametrize weights), before the optimizers are built;
        ``gan-lab eval`` and ``sample`` call it too, before loading a checkpoint's weights."""

    def setup(self, task: nn.Module) -> None:
        """Once, after every trick's :meth:`modify` and before the first step."""

    def begin_step(self, task: nn.Module, step: int) -> None:
        """Before step ``step`` (1-based); a trick's schedule is a pure function of it."""

    def after_phase(self, task: nn.Module, player: str, step: int) -> None:
        """After every optimizer step of ``player`` (``n_critic`` times per step for the critic)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""


class Penalty(Trick, LossTerm):
    """A trick that adds loss terms (``gan_lab.models.terms.LossTerm``) to a noise-to-image task."""

    def setup(self, task: nn.Module) -> None:
        self.register(task)
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in task.D.modules()):
            log.warning("%s: the discriminator uses batch norm, which mixes the samples of a batch, so "
                        "its input gradients are not per sample (Gulrajani et al. 2017, §4); consider "
                        "model.discriminator.norm=layer", type(self).__name__)

    def register(self, task: nn.Module) -> None:
        """Join ``task.penalties``; a ConfigError for tasks that take no loss terms."""
        if not hasattr(task, "penalties"):
            raise ConfigError(f"tricks: {type(task).__name__} takes no loss terms from tricks, "
                              f"so {type(self).__name__} cannot be used with this model")
        task.penalties.append(self)


def positive(value: float, key: str) -> float:
    """``value`` if it is positive, else a ValueError naming the config key."""
    if not value > 0:
        raise ValueError(f"{key} must be positive, got {value}")
    return value


def positive_int(value: int, key: str) -> int:
    """``value`` if it is a positive integer, else a ValueError naming the config key."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key} must be a positive integer, got {value!r}")
    return value


def feature_discriminator(task: nn.Module, trick: str) -> nn.Module:
    """``task.D`` if it exposes ``features(x, *cond) -> (B, F)`` and a linear ``head`` on them
    (the DCGAN and MLP discriminators do), else a ConfigError naming the trick."""
    D = task.D
    if not (callable(getattr(D, "features", None)) and isinstance(getattr(D, "head", None), nn.Module)):
        raise ConfigError(f"tricks.{trick}: the discriminator {type(D).__name__} exposes no features/head "
                          "split, so this trick cannot apply to this model")
    return D


def extend_head(D: nn.Module, layer: nn.Module, extra: int) -> None:
    """Insert ``layer`` (features (B, F) -> (B, F + extra)) before D's final linear map, which is
    rebuilt for the wider input. Layers inserted earlier are kept."""
    head = D.head
    linear = head[-1] if isinstance(head, nn.Sequential) else head
    earlier = list(head[:-1]) if isinstance(head, nn.Sequential) else []
    new = nn.Linear(linear.in_features + extra, linear.out_features, device=linear.weight.device)
    with torch.no_grad():  # the existing features keep their weights; the new inputs start at 0
        new.weight.zero_()
        new.weight[:, :linear.in_features].copy_(linear.weight)
        new.bias.copy_(linear.bias)
    D.head = nn.Sequential(*earlier, layer.to(linear.weight.device), new)
