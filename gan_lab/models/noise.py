"""The noise-to-sample task of the original GAN (Goodfellow et al. 2014, Algorithm 1),
shared by the MLP GAN (images or 2-D points) and DCGAN; cGAN extends it with labels."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from gan_lab.models.base import GANTask, LossOut


@dataclass(kw_only=True)
class CriticPass:
    """What D computed in one step of a :class:`NoiseToImage` task, handed to the penalties
    (``Penalty.d_terms`` / ``g_terms``) so that none of them runs D again for it.

    - ``fake`` = G(``inputs``): detached in the D step, with G's graph in the G step;
    - ``real``, ``cond``: the D step's real batch and D's extra arguments for it (the cGAN labels);
      None and () in the G step;
    - ``real_logits``, ``fake_logits``: D's outputs on them as D saw them (after ``task.d_input``),
      with D's graph; ``fake_logits`` is None in a G step whose loss a ``g_objective`` replaces;
    - ``real_features``, ``fake_features``: D's features (``D.features``) from the same forward
      passes; None unless a penalty uses them (``Penalty.uses_features``).

    ``real`` and ``fake`` themselves are the samples as the data and G gave them, before ``d_input``."""

    fake: torch.Tensor | None = None
    inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    fake_logits: torch.Tensor | None = None
    fake_features: torch.Tensor | None = None
    real: torch.Tensor | None = None
    cond: tuple = ()
    real_logits: torch.Tensor | None = None
    real_features: torch.Tensor | None = None


class NoiseToImage(GANTask):
    """D learns real ``batch["real"]`` against G(z), z ~ N(0, I); G learns to fool D.

    ``g_loss`` reuses the generator output of the preceding ``d_loss`` (G is not
    updated in between, so it is the same sample): one generator forward per step
    instead of two, as the reference DCGAN code (soumith/dcgan.torch) does.
    Subclasses add conditioning through :meth:`sample_inputs` and :meth:`condition`.

    Tricks (``gan_lab.tricks``) plug in through three attributes:

    - ``penalties``: ``gan_lab.tricks.base.Penalty`` objects whose terms ``d_loss`` adds to D's
      loss and ``g_loss`` to G's (gradient penalties, R1, drift, historical averaging, InfoGAN's
      information term), each logged; both hand them the step's :class:`CriticPass`;
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
        real, cond = batch["real"], self.condition(batch)
        inputs = self.sample_inputs(len(real))
        fake = self.G(inputs["z"], *self.condition(inputs))
        self._last = (inputs, fake)
        seen = CriticPass(real=real, cond=cond, fake=fake.detach(), inputs=inputs)  # no gradient reaches G
        seen.real_logits, seen.real_features = self.critic(real, cond)
        seen.fake_logits, seen.fake_features = self.critic(seen.fake, self.condition(inputs))
        loss = self.loss.d_loss(seen.real_logits, seen.fake_logits)
        terms = {}
        for penalty in self.penalties:
            terms.update(penalty.d_terms(self, seen))
        loss = sum(terms.values(), loss)
        stats = self.loss.d_stats(loss, seen.real_logits, seen.fake_logits)
        return LossOut(loss, {**stats, **{name: term.detach() for name, term in terms.items()}})

    def g_loss(self, batch: dict[str, torch.Tensor]) -> LossOut:
        inputs, fake = self._last or (self.sample_inputs(len(batch["real"])), None)
        self._last = None
        if fake is None or fake.grad_fn is None:  # no D step before, or G was frozen during it
            fake = self.G(inputs["z"], *self.condition(inputs))
        seen = CriticPass(fake=fake, inputs=inputs)
        adversarial = self.g_objective is None
        seen.fake_logits, seen.fake_features = self.critic(fake, self.condition(inputs), logits=adversarial)
        if adversarial:
            loss = self.loss.g_loss(seen.fake_logits)
        else:
            loss = self.g_objective.g_loss(self, batch, fake, inputs)
        terms = {}
        for penalty in self.penalties:
            terms.update(penalty.g_terms(self, seen))
        stats = {"loss/G": loss.detach(), **{name: term.detach() for name, term in terms.items()}}
        return LossOut(sum(terms.values(), loss), stats)

    def critic(self, x: torch.Tensor, cond: tuple,
               logits: bool = True) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(D's output on ``x`` as D sees it (:meth:`d_view`), D's features from the same forward pass).
        The features are computed (``D.features``, then ``D.from_features``) only when a penalty uses
        them, else None; ``logits=False`` leaves out the output, and D then runs only for features."""
        features_used = any(penalty.uses_features for penalty in self.penalties)
        if not (logits or features_used):
            return None, None
        x = self.d_view(x)
        if not features_used:
            return self.D(x, *cond), None
        features = self.D.features(x, *cond)
        return (self.D.from_features(features) if logits else None), features

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
