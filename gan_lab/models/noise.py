"""The noise-to-sample task of the original GAN (Goodfellow et al. 2014, Algorithm 1),
shared by the MLP GAN (images or 2-D points) and DCGAN; cGAN extends it with labels."""

from __future__ import annotations

import math

import torch
from torch import nn

from gan_lab.models.base import GANTask, LossOut


class NoiseToImage(GANTask):
    """D learns real ``batch["real"]`` against G(z), z ~ N(0, I); G learns to fool D.

    ``g_loss`` reuses the generator output of the preceding ``d_loss`` (G is not
    updated in between, so it is the same sample): one generator forward per step
    instead of two, as the reference DCGAN code (soumith/dcgan.torch) does.
    Subclasses add conditioning through :meth:`sample_inputs` and :meth:`condition`.

    Tricks (``gan_lab.tricks``) plug in through three attributes:

    - ``penalties``: ``gan_lab.tricks.base.Penalty`` objects whose terms ``d_loss`` adds to D's
      loss and ``g_loss`` to G's (gradient penalties, R1, historical averaging), each logged;
    - ``d_input``: functions applied to every sample D sees, real or generated (instance noise);
    - ``g_objective``: an object whose ``g_loss(task, batch, fake, inputs)`` replaces the
      adversarial generator loss (feature matching); None keeps ``loss.g_loss``.
    """

    data_kinds = ("image", "points")

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: nn.Module):
        super().__init__(generator, discriminator, loss)
        self._last = None  # (generator inputs, G output) of the last D step
        self.penalties: list = []
        self.d_input: list = []
        self.g_objective = None

    def sample_inputs(self, n: int) -> dict[str, torch.Tensor]:
        """Generator inputs for ``n`` samples, drawn from the global torch RNG."""
        return {"z": torch.randn(n, self.G.z_dim, device=self.device)}

    def condition(self, source: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Extra arguments of G and D taken from a batch or from generator inputs."""
        return ()

    def grid_columns(self, n: int) -> int:
        """Samples per grid row: a square grid."""
        return max(1, math.isqrt(n))

    def d_loss(self, batch: dict[str, torch.Tensor]) -> LossOut:
        real = batch["real"]
        real_cond = self.condition(batch)
        inputs = self.sample_inputs(len(real))
        fake = self.G(inputs["z"], *self.condition(inputs))
        self._last = (inputs, fake)
        fake = fake.detach()  # no gradient reaches G
        real_logits = self.D(self.d_view(real), *real_cond)
        fake_logits = self.D(self.d_view(fake), *self.condition(inputs))
        loss = self.loss.d_loss(real_logits, fake_logits)
        terms = {}
        for penalty in self.penalties:
            terms.update(penalty.d_terms(self, real, fake, real_cond))
        loss = sum(terms.values(), loss)
        stats = self.loss.d_stats(loss, real_logits, fake_logits)
        return LossOut(loss, {**stats, **{name: term.detach() for name, term in terms.items()}})

    def g_loss(self, batch: dict[str, torch.Tensor]) -> LossOut:
        inputs, fake = self._last or (self.sample_inputs(len(batch["real"])), None)
        self._last = None
        if fake is None or fake.grad_fn is None:  # no D step before, or G was frozen during it
            fake = self.G(inputs["z"], *self.condition(inputs))
        if self.g_objective is not None:
            loss = self.g_objective.g_loss(self, batch, fake, inputs)
        else:
            loss = self.loss.g_loss(self.D(self.d_view(fake), *self.condition(inputs)))
        terms = {}
        for penalty in self.penalties:
            terms.update(penalty.g_terms(self, fake, inputs))
        stats = {"loss/G": loss.detach(), **{name: term.detach() for name, term in terms.items()}}
        return LossOut(sum(terms.values(), loss), stats)

    def d_view(self, x: torch.Tensor) -> torch.Tensor:
        """A sample as D sees it: after the ``d_input`` functions (instance noise)."""
        for fn in self.d_input:
            x = fn(x)
        return x

    def fixed_inputs(self, batch: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
        return {"z": torch.randn(n, self.G.z_dim, device=self.device)}

    @torch.no_grad()
    def render(self, fixed: dict[str, torch.Tensor], G: nn.Module) -> tuple[torch.Tensor, int]:
        G.eval()  # BatchNorm running statistics: samples do not depend on the grid's other rows
        out = G(fixed["z"], *self.condition(fixed))
        if out.dim() == 2:  # points
            return out, 0
        return out, self.grid_columns(len(out))
