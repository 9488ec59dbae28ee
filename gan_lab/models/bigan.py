"""BiGAN of Donahue, Krähenbühl and Darrell 2017, "Adversarial Feature Learning" (ICLR, arXiv 1605.09782), and
ALI of Dumoulin et al. 2017, "Adversarially Learned Inference" (ICLR, arXiv 1606.00704): a GAN that also learns
the inverse map, an encoder E from data to latents.

The discriminator judges joint pairs: (x, E(x)) for data x, labelled real, against (G(z), z) for prior draws z,
labelled fake. ALI §2, Eq. 1: V(D, E, G) = E_x log D(x, E(x)) + E_z log(1 - D(G(z), z)); ALI §3 (and BiGAN §3,
as recalled, not re-read) show that at the optimum the two joint distributions match and E inverts G. E and G
play together against D with flipped labels, the non-saturating form of ALI Algorithm 1 (§2.3):
L_EG = -mean log(1 - D(x, E(x))) - mean log D(G(z), z); the BiGAN code adds the joint discriminator's
``opp_loss_real`` to E and ``opp_loss_gen`` to G (jeffdonahue/bigan ``train_gan.py``). For any loss whose D cost
is unchanged by swapping the pairs' labels and negating D's output (the cross-entropy games, Wasserstein, hinge),
flipping the labels is ``loss.g_loss(-D(x, E(x)))``, which is how E's cost is computed here.

E is a third player (``players()``: G, E, D; ``optim.E``, ``train.clip_grad.E``). The engine steps one player's
optimizer per phase, so a step is: D, then E on the same batch, then G on the D step's sample. This is the joint
E/G update of Algorithm 1 exactly: E appears only in the real pair's term and G only in the fake pair's, and D
does not move between the E and G phases, so each phase's gradient is that of L_EG (tests/test_bigan.py checks
it); Adam is per parameter, so two Adams with the same settings are one. A single "G" player holding both networks
would also fit the contract, but then G_ema, the tricks that wrap G and every sampling site would see a
generator that is not one.

Encoders (``model.encoder``): BiGAN's deterministic E (its MNIST prior z ~ U[-1, 1]^50 with E's output squashed
into it: the code's 2 sigmoid(h) - 1 = tanh(h / 2), written tanh(h) here), or ALI's stochastic
q(z | x) = N(mu(x), sigma(x)^2), sampled as z = mu + sigma * eps with eps ~ N(0, I) from the latent stream
(ALI §2, "reparametrization trick"; ``GaussianConditional`` in the ALI code outputs mu and log sigma).

Networks: the image branch of E and D is a conv stack (the DCGAN discriminator's blocks, for 32/64 px) or an MLP
(BiGAN's permutation-invariant MNIST ``mnist_mlp``: 1024-1024 LeakyReLU). D joins an x branch, a z branch and a
joint head, ALI's D(x), D(z) and D(x, z) (ALI appendix tables); BiGAN's MNIST D adds a linear map of z to its
second layer, which is an empty z branch and a one-layer joint head here. Departures: images in [-1, 1] with a
tanh G (BiGAN: sigmoid on [0, 1], ALI: sigmoid), no maxout or dropout in the conv D unless asked
(``model.discriminator.dropout``), N(0, 0.02) initialisation of E, D and the conv G (ALI: N(0, 0.01)); the MLP G
keeps ``gan_lab.models.gan``'s U(-0.05, 0.05). BiGAN's code also normalises E's and G's costs by their number of
terms and alternates D and E/G updates on separate batches; here D, E and G step on one batch per step.
"""

from __future__ import annotations

import copy
import functools

import torch
from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.losses.adversarial import AdversarialLoss, Hinge, Wasserstein
from gan_lab.models.base import GANTask, Grid, LossOut, Phase, square_columns
from gan_lab.models import dcgan, gan
from gan_lab.models.blocks import NORMS, conv_block, dcgan_init, dense, numel
from gan_lab.models.dcgan import _widths
from gan_lab.models.noise import check_prior, draw_latent, latent_path

ARCHS = ("conv", "mlp")
# Losses whose D cost is symmetric under (real, fake) -> (-fake, -real): E's flipped-label cost is g_loss(-out).
LABEL_SYMMETRIC = (AdversarialLoss, Wasserstein, Hinge)


def generator(out_shape: list[int], z_dim: int = 50, arch: str = "conv", width: int = 32,
              hidden: list[int] = (1024, 1024), batch_norm: bool = True) -> nn.Module:
    """G with the same ``arch`` switch as E and D: DCGAN's generator (``conv``, 32/64 px) or the MLP generator of
    ``gan_lab.models.gan`` with ``hidden`` units (``mlp``; BiGAN's MNIST G: 1024-1024, batch norm, ReLU)."""
    if arch not in ARCHS:
        raise ConfigError(f"model.generator.arch={arch!r}: choose one of {', '.join(ARCHS)}")
    if arch == "conv":
        return dcgan.Generator(z_dim, image_size=int(out_shape[-1]), channels=int(out_shape[0]), width=width)
    return gan.Generator(out_shape, z_dim, list(hidden), batch_norm=batch_norm)


def image_branch(in_shape: list[int], arch: str, width: int, hidden: list[int], norm: str,
                 key: str) -> tuple[nn.Sequential, int]:
    """(images (B, C, H, W) -> features (B, F), F): DCGAN discriminator blocks down to 4x4 (``conv``: ``width``
    channels first, doubling, ``norm`` after the first) or a LeakyReLU MLP of ``hidden`` units (``mlp``)."""
    if arch not in ARCHS:
        raise ConfigError(f"{key}.arch={arch!r}: choose one of {', '.join(ARCHS)}")
    if arch == "mlp":
        sizes = [numel(in_shape), *hidden]
        return nn.Sequential(nn.Flatten(), *(dense(a, b, act="lrelu") for a, b in zip(sizes, sizes[1:]))), sizes[-1]
    if norm not in NORMS:
        raise ConfigError(f"{key}.norm={norm!r}: choose one of {', '.join(NORMS)}")
    channels, size = int(in_shape[0]), int(in_shape[-1])
    ch = _widths(size, width)
    return nn.Sequential(conv_block(channels, ch[0], norm=None, act="lrelu"),
                         *(conv_block(a, b, norm=norm, act="lrelu") for a, b in zip(ch, ch[1:])),
                         nn.Flatten()), ch[-1] * 16


class Encoder(nn.Module):
    """Images (B, C, H, W) -> (B, z_dim) raw codes, or (B, 2 z_dim) = (mu, log sigma) when ``stochastic`` (ALI's
    q(z | x)). The task maps them into the prior's space (:meth:`BiGANTask.encode`)."""

    def __init__(self, in_shape: list[int], z_dim: int = 50, arch: str = "conv", width: int = 32,
                 hidden: list[int] = (1024, 1024), norm: str = "batch", stochastic: bool = False):
        super().__init__()
        if not isinstance(stochastic, bool):
            raise ConfigError(f"model.encoder.stochastic must be true or false, got {stochastic!r}")
        self.z_dim, self.stochastic = z_dim, stochastic
        self.body, features = image_branch(in_shape, arch, width, list(hidden), norm, "model.encoder")
        self.head = nn.Linear(features, z_dim * (2 if stochastic else 1))
        self.apply(dcgan_init)

    def reset(self) -> None:
        """Fresh random weights and batch-norm statistics, drawn as at construction (from the global RNG)."""
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()
        self.apply(dcgan_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class JointDiscriminator(nn.Module):
    """(images (B, C, H, W), latents (B, z_dim)) -> one logit per pair (B,): ALI's D(x) (``image_branch``), D(z)
    (a LeakyReLU MLP of ``z_hidden`` units; empty: z itself) and D(x, z) (``joint_hidden`` units on the
    concatenation, then a linear output). ``dropout``: on the inputs of the z and joint layers (ALI: 0.2 / 0.5).
    ``joint_norm``: batch norm before the joint layers' activations, as the BiGAN code's MNIST D (``apply_cond``
    then batch norm), which also takes away the trivial cue of a batch's latent scale."""

    def __init__(self, in_shape: list[int], z_dim: int = 50, arch: str = "conv", width: int = 32,
                 hidden: list[int] = (1024,), norm: str = "batch", z_hidden: list[int] = (512,),
                 joint_hidden: list[int] = (512,), joint_norm: bool = False, dropout: float = 0.0):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"model.discriminator.dropout must be in [0, 1), got {dropout}")
        self.z_dim = z_dim
        self.x_branch, x_features = image_branch(in_shape, arch, width, list(hidden), norm, "model.discriminator")
        z_sizes = [z_dim, *z_hidden]
        self.z_branch = nn.Sequential(*(dense(a, b, act="lrelu", input_dropout=dropout)
                                        for a, b in zip(z_sizes, z_sizes[1:])))
        joint = [x_features + z_sizes[-1], *joint_hidden]
        self.joint = nn.Sequential(*(self._joint_layer(a, b, joint_norm, dropout) for a, b in zip(joint, joint[1:])),
                                   dense(joint[-1], 1, input_dropout=dropout))
        self.apply(dcgan_init)

    @staticmethod
    def _joint_layer(a: int, b: int, norm: bool, dropout: float) -> nn.Sequential:
        if not norm:
            return dense(a, b, act="lrelu", input_dropout=dropout)
        return nn.Sequential(*([nn.Dropout(dropout)] if dropout else []), nn.Linear(a, b, bias=False),
                             nn.BatchNorm1d(b), nn.LeakyReLU(0.2, inplace=True))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.joint(torch.cat([self.x_branch(x), self.z_branch(z)], 1)).view(-1)


class BiGANTask(GANTask):
    """G (any noise-to-image generator with ``z_dim``), E (:class:`Encoder`) and the joint D
    (:class:`JointDiscriminator`) under a label-symmetric ``loss``; ``prior``: ``uniform`` (BiGAN) or ``normal``
    (ALI, required by a stochastic encoder). ``reuse_fake``: the D step hands G(z) to the G step (one G forward
    per step, and the same z in both, as ALI Algorithm 1).

    The sample grids: ``fixed`` (G on fixed prior draws) and ``reconstructions`` (rows of real images, each above
    its G(E(x)))."""

    fixed_examples = ("real",)

    def __init__(self, generator: nn.Module, encoder: Encoder, discriminator: JointDiscriminator, loss: nn.Module,
                 prior: str = "uniform", reuse_fake: bool = True):
        super().__init__(generator, discriminator, loss, reuse_fake)
        check_prior(prior)
        if not isinstance(loss, LABEL_SYMMETRIC):
            raise ConfigError(f"loss={type(loss).__name__}: E's cost flips the labels of D's game, which here is "
                              "negating D's output; that holds for nonsaturating, minimax, maxlikelihood, "
                              "wasserstein and hinge")
        self.z_dim = generator.z_dim
        for key, net in (("model.encoder.z_dim", encoder), ("model.discriminator.z_dim", discriminator)):
            if net.z_dim != self.z_dim:
                raise ConfigError(f"{key}={net.z_dim} differs from model.generator.z_dim={self.z_dim}")
        if encoder.stochastic and prior != "normal":
            raise ConfigError("model.encoder.stochastic=true is ALI's Gaussian q(z|x), which needs "
                              f"model.prior=normal (got {prior})")
        self.E = encoder
        self.prior = prior

    def players(self) -> dict[str, nn.Module]:
        return {"G": self.G, "E": self.E, "D": self.D}

    def phases(self, step: int, n_critic: int) -> list[Phase]:
        return [Phase("D", self.d_loss, repeats=n_critic, hand_off="G" if self.reuse_fake else None),
                Phase("E", self.e_loss, fresh_batch=False),
                Phase("G", self.g_loss, fresh_batch=False)]

    # -- latents --

    def draw_z(self, n: int) -> torch.Tensor:
        """``n`` latents from the prior, drawn from the latent stream."""
        return self.draw_rows(functools.partial(draw_latent, self.prior), n, self.z_dim)

    def encode(self, x: torch.Tensor, E: nn.Module | None = None, sample: bool = True) -> torch.Tensor:
        """E(x) in the prior's space: tanh of the codes (uniform prior), the codes (normal prior), or for a
        stochastic E mu + sigma * eps, eps from the latent stream (``sample=False``: mu)."""
        E = self.E if E is None else E
        h = E(x)
        if E.stochastic:
            mu, log_sigma = h.chunk(2, dim=1)
            if not sample:
                return mu
            eps = self.draw_rows(torch.randn, len(mu), *mu.shape[1:], dtype=mu.dtype)
            return mu + log_sigma.exp() * eps
        return torch.tanh(h) if self.prior == "uniform" else h

    def random_encoder(self, seed: int) -> Encoder:
        """A copy of E with fresh random weights (seeded; the global RNG is left as it was), in eval mode: the
        random-feature baseline of the linear probe."""
        fresh = copy.deepcopy(self.E)
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            fresh.reset()
        return fresh.eval()

    # -- the three phases --

    def d_loss(self, batch: dict[str, torch.Tensor], carry=None) -> LossOut:
        """D: (x, E(x)) real, (G(z), z) fake; neither E nor G gets a gradient (G's graph is kept only to be
        handed to the G step)."""
        x = batch["real"]
        z = self.draw_z(len(x))
        fake = self.G(z)
        real_logits = self.D(x, self.encode(x).detach())
        fake_logits = self.D(fake.detach(), z)
        loss = self.loss.d_loss(real_logits, fake_logits)
        return LossOut(loss, self.loss.d_stats(loss, real_logits, fake_logits),
                       (z, fake) if fake.requires_grad else None)

    def e_loss(self, batch: dict[str, torch.Tensor], carry=None) -> LossOut:
        """E: the real pair labelled fake (-log(1 - D(x, E(x))) for the cross-entropy games); passes the D
        step's hand-off on to the G step."""
        x = batch["real"]
        loss = self.loss.g_loss(-self.D(x, self.encode(x)))
        return LossOut(loss, {"loss/E": loss.detach()}, carry)

    def g_loss(self, batch: dict[str, torch.Tensor], carry=None) -> LossOut:
        """G: the fake pair labelled real (-log D(G(z), z)), on the D step's z and G(z) when handed off."""
        if carry is None:
            z = self.draw_z(len(batch["real"]))
            carry = (z, self.G(z))
        z, fake = carry
        loss = self.loss.g_loss(self.D(fake, z))
        return LossOut(loss, {"loss/G": loss.detach()})

    # -- sampling --

    def fixed_inputs(self, batch: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
        return {"real": batch["real"][:n], "z": self.draw_z(n)}

    def sample(self, n: int, G: nn.Module, **given) -> dict[str, torch.Tensor]:
        """``{"samples": G(z), "z": z}``; ``z=`` fixes the latents."""
        z = given.get("z")
        z = self.draw_z(n) if z is None else z
        return {"samples": G(z), "z": z}

    def reconstruct(self, x: torch.Tensor, G: nn.Module, E: nn.Module | None = None) -> torch.Tensor:
        """G(E(x)) with E in eval mode (its mode restored after) and a stochastic E's mean."""
        E = self.E if E is None else E
        mode = E.training
        try:
            E.eval()
            return G(self.encode(x, E, sample=False))
        finally:
            E.train(mode)

    def visuals(self, fixed: dict[str, torch.Tensor], G: nn.Module) -> dict[str, Grid]:
        z, real = fixed["z"], fixed["real"]
        cols = min(square_columns(len(z)), len(real))
        rows = max(1, len(real) // (2 * cols))
        real = real[:rows * cols]
        pairs = torch.stack([real.view(rows, cols, *real.shape[1:]),
                             self.reconstruct(real, G).view(rows, cols, *real.shape[1:])], 1)
        return {"fixed": Grid(G(z), square_columns(len(z))), "reconstructions": Grid(pairs.flatten(0, 2), cols)}

    def interpolation(self, rows: int, steps: int) -> dict[str, torch.Tensor]:
        """Straight lines between two prior draws per row (uniform prior), great circles for the normal prior."""
        a, b = self.draw_z(rows), self.draw_z(rows)
        return {"z": latent_path(self.prior, a, b, torch.linspace(0, 1, steps, device=self.device)).flatten(0, 1)}
