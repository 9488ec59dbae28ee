"""The contract between a model family and the training engine.

A *task* owns the networks of one GAN family and knows how to turn a batch into
losses. It never touches optimizers, gradient scalers or ``backward``: the
engine (``gan_lab.engine.loop``) owns optimisation, so mixed precision, gradient
clipping and ``n_critic`` exist in one place for every model.

Batches are dicts of tensors already on the run's device (see
``gan_lab.data.base``):

- ``kind = "image"``:  ``{"real": (B, C, H, W) in [-1, 1], "label": (B,) int64}``
  (``"label"`` only for labelled datasets);
- ``kind = "points"``: ``{"real": (B, D)}``;
- ``kind = "paired"``: ``{"input": (B, Ci, H, W), "target": (B, Co, H, W)}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class LossOut:
    """A loss to minimise and the scalars to log with it (TensorBoard tags)."""

    loss: torch.Tensor
    stats: dict[str, torch.Tensor | float] = field(default_factory=dict)


class GANTask(nn.Module):
    """Base class of every model family.

    Subclasses set ``data_kinds`` (the batch kinds they can train on) and
    implement :meth:`d_loss`, :meth:`g_loss`, :meth:`fixed_inputs` and
    :meth:`render`. ``self.G`` and ``self.D`` are the networks the engine
    optimises with ``optim.G`` and ``optim.D``.
    """

    data_kinds: tuple[str, ...] = ("image",)

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: nn.Module):
        super().__init__()
        self.G = generator
        self.D = discriminator
        self.loss = loss

    @property
    def device(self) -> torch.device:
        return next(self.G.parameters()).device

    def d_loss(self, batch: dict[str, torch.Tensor]) -> LossOut:
        """Discriminator (critic) loss on one batch; G's output is detached."""
        raise NotImplementedError

    def g_loss(self, batch: dict[str, torch.Tensor]) -> LossOut:
        """Generator loss; ``batch`` is the last batch the D step saw."""
        raise NotImplementedError

    def use_data(self, data) -> None:
        """Hook called once with the training dataset (``gan_lab.data.base.TensorDataset``) before
        the first step and before a checkpoint is loaded: a task that keeps examples of its own
        (the labelled subset of semi-supervised training) picks them here, as buffers."""

    def begin_step(self, step: int) -> bool:
        """Hook before generator step ``step`` (1-based) and its D steps: a task whose networks
        change with training progress (Progressive GAN's resolution and fade-in) sets them here,
        as a pure function of ``step``, so a resumed run continues the same schedule. Returns True
        when the optimizers should start afresh (their moments cleared) at this step."""
        return False

    def after_d_step(self) -> None:
        """Hook after each D optimizer step (WGAN weight clipping, ...)."""

    def fixed_inputs(self, batch: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
        """Inputs for the sample grid, drawn once at the start of a run and kept
        in the checkpoint so every grid of a run (and of a resumed run) is comparable.
        ``batch`` is a batch of at least ``n`` real examples (the paired tasks use it)."""
        raise NotImplementedError

    @torch.no_grad()
    def render(self, fixed: dict[str, torch.Tensor], G: nn.Module) -> tuple[torch.Tensor, int]:
        """Samples from ``G`` (the live generator or its EMA copy) for ``fixed``.

        Returns ``(images in [-1, 1] of shape (N, C, H, W), nrow)`` for an image
        grid; for ``points`` data, ``(points (N, D), 0)``."""
        raise NotImplementedError
