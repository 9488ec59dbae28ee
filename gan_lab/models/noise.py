"""The noise-to-sample task of the original GAN (Goodfellow et al. 2014, Algorithm 1),
shared by the MLP GAN (images or 2-D points) and DCGAN; cGAN extends it with labels."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.models.base import GANTask, Grid, LossOut, Points, square_columns
from gan_lab.models.terms import CriticPass

PRIORS = ("normal", "uniform")  # z ~ N(0, I), or U[-1, 1]^d (BEGAN, BiGAN, LAPGAN's coarsest level)


def check_prior(prior: str) -> str:
    """``prior`` when it is one of :data:`PRIORS`; a ConfigError naming ``model.prior`` otherwise."""
    if prior not in PRIORS:
        raise ConfigError(f"model.prior={prior!r}: choose one of {', '.join(PRIORS)}")
    return prior


def draw_latent(prior: str, *shape: int, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    """A tensor of ``shape`` from the prior: N(0, I) or U[-1, 1]."""
    if prior == "uniform":
        return torch.rand(*shape, device=device, generator=generator) * 2 - 1
    return torch.randn(*shape, device=device, generator=generator)


def latent_path(prior: str, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(len(a), len(t), dim) latents from rows of ``a`` to rows of ``b`` at fractions ``t``: the great circle for
    the Gaussian (:func:`slerp`), the straight segment for the uniform prior (a cube: the segment stays inside)."""
    if prior == "uniform":
        return torch.lerp(a[:, None], b[:, None], t[None, :, None])
    return slerp(a, b, t)


class NoiseToImage(GANTask):
    """D learns real ``batch["real"]`` against G(z), z from the ``prior`` (``normal``: N(0, I), ``uniform``:
    U[-1, 1]^d); G learns to fool D.

    With ``reuse_fake`` (the default) the last D step hands its generator output to the G step
    (G is not updated in between, so it is the same sample): one generator forward per step, as
    the reference DCGAN code (soumith/dcgan.torch) does. Without it G draws fresh z (WGAN's
    Algorithm 1). Subclasses add conditioning through :meth:`sample_inputs` and :meth:`condition`.

    Tricks (``gan_lab.tricks``) plug in through three attributes:

    - ``penalties``: :class:`gan_lab.models.terms.LossTerm` objects whose terms ``d_loss`` adds to
      D's loss and ``g_loss`` to G's, each logged; both hand them the step's :class:`CriticPass`;
    - ``d_input``: functions applied to every sample D sees, real or generated (instance noise);
    - ``g_objective``: an object whose ``g_loss(task, batch, fake, inputs)`` replaces the
      adversarial generator loss (feature matching); None keeps ``loss.g_loss``.
    """

    data_kinds = ("image", "points")

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: nn.Module, reuse_fake: bool = True,
                 prior: str = "normal"):
        super().__init__(generator, discriminator, loss, reuse_fake)
        self.prior = check_prior(prior)
        self.z_dim = generator.z_dim  # read here: a trick may wrap G (virtual batch norm)
        self.penalties: list = []
        self.d_input: list = []
        self.g_objective = None
        self.reference: torch.Tensor | None = None  # real points drawn under point samples

    def use_data(self, data) -> None:
        if data.kind == "points":
            self.reference = data.tensors["real"][:4096].clone()

    def sample_inputs(self, n: int, **given) -> dict[str, torch.Tensor]:
        """Generator inputs for ``n`` samples, drawn from the latent stream (``z=`` fixes them)."""
        z = given.get("z")
        return {"z": z if z is not None else self.draw_z(n)}

    def draw_z(self, *shape: int) -> torch.Tensor:
        """z of shape (*shape, z_dim) from the prior, drawn from the latent stream."""
        return self.draw_rows(functools.partial(draw_latent, self.prior), shape[0], *shape[1:], self.z_dim)

    def condition(self, source: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Extra arguments of G and D taken from a batch or from generator inputs."""
        return ()

    def grid_columns(self, n: int) -> int:
        """Samples per grid row: a square grid."""
        return square_columns(n)

    def generate(self, G: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return G(inputs["z"], *self.condition(inputs))

    def d_loss(self, batch: dict[str, torch.Tensor], carry=None) -> LossOut:
        real, cond = batch["real"], self.condition(batch)
        inputs = self.sample_inputs(len(real))
        fake = self.generate(self.G, inputs)  # with G's graph only when the engine hands it off
        seen = CriticPass(real=real, cond=cond, fake=fake.detach(), inputs=inputs)  # no gradient reaches G
        seen.real_logits, seen.real_features = self.critic(real, cond)
        seen.fake_logits, seen.fake_features = self.critic(seen.fake, self.condition(inputs))
        loss = self.loss.d_loss(seen.real_logits, seen.fake_logits)
        terms = {}
        for penalty in self.penalties:
            terms.update(penalty.d_terms(self, seen))
        loss = sum(terms.values(), loss)
        stats = self.loss.d_stats(loss, seen.real_logits, seen.fake_logits)
        hand_off = (inputs, fake) if fake.requires_grad else None
        return LossOut(loss, {**stats, **{name: term.detach() for name, term in terms.items()}}, hand_off)

    def g_loss(self, batch: dict[str, torch.Tensor], carry=None) -> LossOut:
        if carry is not None:
            inputs, fake = carry
        else:
            inputs = self.sample_inputs(len(batch["real"]))
            fake = self.generate(self.G, inputs)
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
        return self.sample_inputs(n)

    def sample(self, n: int, G: nn.Module, **given) -> dict[str, torch.Tensor]:
        """``{"samples": G(inputs), **inputs}``; ``given`` fixes inputs (``z=``, ``label=``)."""
        inputs = self.sample_inputs(n, **given)
        return {"samples": self.generate(G, inputs), **inputs}

    def interpolation(self, rows: int, steps: int) -> dict[str, torch.Tensor]:
        """z between two draws from the prior per row (:func:`latent_path`)."""
        ends = self.draw_z(2, rows)
        return {"z": latent_path(self.prior, ends[0], ends[1], torch.linspace(0, 1, steps, device=self.device))
                .flatten(0, 1)}

    def visuals(self, fixed: dict[str, torch.Tensor], G: nn.Module) -> dict[str, Grid | Points]:
        out = self.generate(G, fixed)
        if out.dim() == 2:
            return {"fixed": Points(out, self.reference)}
        return {"fixed": Grid(out, self.grid_columns(len(out)))}


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rows of ``a`` and ``b`` at fractions ``t`` (White 2016,
    "Sampling Generative Networks"): Gaussian latents concentrate on a sphere, so the path
    stays where the prior has mass. Returns (len(a), len(t), dim)."""
    cos = (F.normalize(a, dim=1) * F.normalize(b, dim=1)).sum(1).clamp(-1 + 1e-7, 1 - 1e-7)
    omega = torch.arccos(cos)[:, None, None]
    t = t[None, :, None]
    return (torch.sin((1 - t) * omega) * a[:, None] + torch.sin(t * omega) * b[:, None]) / torch.sin(omega)
