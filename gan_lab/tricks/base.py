"""Base classes of the training tricks; the hook contract is described in ``gan_lab.tricks``."""

from __future__ import annotations

import logging

import torch
from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.models.noise import CriticPass

log = logging.getLogger(__name__)


class Trick:
    """Engine hooks that do nothing; a trick overrides the ones it needs."""

    def modify(self, task: nn.Module) -> None:
        """Change the networks (add layers, reparametrize weights), before the optimizers are built;
        ``gan-lab eval`` and ``sample`` call it too, before loading a checkpoint's weights."""

    def setup(self, task: nn.Module) -> None:
        """Once, after every trick's :meth:`modify` and before the first step."""

    def after_d_step(self, task: nn.Module) -> None:
        """After every discriminator optimizer step."""

    def after_g_step(self, task: nn.Module) -> None:
        """After every generator optimizer step."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""


class Penalty(Trick):
    """Terms added to the discriminator's and/or the generator's loss, each logged under its name.

    The task hands each term what D computed in that step (``gan_lab.models.noise.CriticPass``), so a
    term on D's outputs or features reuses them; only a term on other inputs (interpolates, inputs that
    need a gradient) runs D itself. Subclasses set ``name`` and implement :meth:`penalty` (one D term,
    ``penalty/<name>``), or override :meth:`d_terms` and :meth:`g_terms`. ``uses_features = True``
    asks the task for D's features in the pass; D must then expose ``features(x, *cond)`` and
    ``from_features(features)`` with ``D(x, *cond) == D.from_features(D.features(x, *cond))``."""

    name: str
    uses_features = False

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

    def d_terms(self, task: nn.Module, seen: CriticPass) -> dict[str, torch.Tensor]:
        """Named terms of D's loss; ``seen.fake`` is detached."""
        return {f"penalty/{self.name}": self.penalty(task.D, seen)}

    def g_terms(self, task: nn.Module, seen: CriticPass) -> dict[str, torch.Tensor]:
        """Named terms of G's loss; ``seen.fake`` carries G's graph, ``seen.real`` is None."""
        return {}

    def penalty(self, D: nn.Module, seen: CriticPass) -> torch.Tensor:
        raise NotImplementedError


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
