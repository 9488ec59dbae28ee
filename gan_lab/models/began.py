"""BEGAN of Berthelot, Schumm and Metz 2017, "BEGAN: Boundary Equilibrium Generative Adversarial Networks"
(arXiv 1703.10717).

D is an auto-encoder and its energy is the pixel-wise reconstruction loss L(v) = |v - D(v)|^eta, eta = 1 (the
mean absolute error per pixel, as the reference port). §3.1-3.2: D minimises L(x) - L(G(z_D)), a lower bound of
the Wasserstein distance between the two loss distributions, and G minimises L(G(z_G)). §3.3-3.4: equilibrium
E[L(G(z))] = gamma E[L(x)] (gamma, the diversity ratio: lower gives sharper, less varied samples) is kept by
proportional control,

    L_D = L(x) - k_t L(G(z_D)),   L_G = L(G(z_G)),
    k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z_G))), 0, 1),   k_0 = 0, lambda_k = 0.001,

and §3.4.1 reads convergence off M_global = L(x) + |gamma L(x) - L(G(z_G))|. k is a buffer (checkpointed, no
gradient), updated in :meth:`BEGANTask.end_step` from the step's own L(x) (the D phase's "D(x)") and L(G(z_G))
(the G phase's "loss/G"); ``began/k`` (after the update) and ``began/M_global`` are logged with the step's losses.
§3.5: both halves of D and the generator are 3x3 convolutions with ELUs, no batch norm; the encoder's blocks grow
linearly (n, 2n, 3n, ...) and down-sample by stride-2 convolutions, a linear map (no non-linearity) gives the
code h in R^{N_h}; the decoder maps h linearly to 8x8xn and up-samples by nearest neighbour; G has the decoder's
architecture with its own weights, fed z ~ U[-1, 1]^{N_z}. The optional skip connections of §3.5 (h copied into
each up-sampling stage) are left out.

The equations and constants are checked against the reference port (carpedm20/BEGAN-tensorflow, "BG-T"): its
loss and k update (trainer.py), its networks (models.py: a first conv n + ELU, per block two convs + ELU and a
stride-2 conv + ELU with the block's width after every block but the last, Glorot-uniform weights, zero biases)
and its defaults (config.py: n = 128, N_z = N_h = 64, gamma 0.5, lambda_k 0.001, batch 16, Adam lr 8e-5 for G and
D, halved every 100,000 steps down to 2e-5). Its ``--beta1 0.5`` is never passed to ``tf.train.AdamOptimizer``, so
BG-T trains with TensorFlow's betas (0.9, 0.999), which configs/model/began.yaml uses. BG-T computes D's and G's
losses in one graph before either update; here the G phase measures L(G(z_G)) on the same z after D's update
(the lab's sequential phases). The paper's section numbers and its learning-rate rule (halved when M_global
stalls; not built: it is not a pure function of the step) are as recalled, not verified against the PDF.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.losses.adversarial import CriticLoss
from gan_lab.models.blocks import conv_block
from gan_lab.models.noise import NoiseToImage


def equilibrium_step(k: torch.Tensor, real_loss: torch.Tensor, fake_loss: torch.Tensor, gamma: float,
                     lambda_k: float) -> torch.Tensor:
    """k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z_G))), 0, 1) (§3.4)."""
    return (k + lambda_k * (gamma * real_loss - fake_loss)).clamp(0.0, 1.0)


def convergence_measure(real_loss: torch.Tensor, fake_loss: torch.Tensor, gamma: float) -> torch.Tensor:
    """M_global = L(x) + |gamma L(x) - L(G(z_G))| (§3.4.1)."""
    return real_loss + (gamma * real_loss - fake_loss).abs()


def _repeats(image_size: int) -> int:
    """Blocks between 8x8 and the image: log2(image_size) - 2 (BG-T's ``repeat_num``)."""
    if image_size < 8 or image_size & (image_size - 1):
        raise ConfigError(f"dataset.image_size={image_size}: BEGAN's networks work on powers of two from 8 px")
    return image_size.bit_length() - 3


def _conv(in_ch: int, out_ch: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution (stride 1 keeps the size, 2 halves it) with a bias and an ELU."""
    return conv_block(in_ch, out_ch, kernel=3, stride=stride, padding=1, norm=None, act="elu")


@torch.no_grad()
def _glorot(module: nn.Module) -> None:
    """Glorot-uniform weights, zero biases: TensorFlow slim's defaults, which BG-T keeps."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)


class Decoder(nn.Module):
    """A code (B, in_dim) -> images (B, channels, image_size, image_size), linear output (§3.5): a linear map to
    8x8 x ``width``, then per block two 3x3 convs with ELUs, nearest-neighbour x2 up-sampling between blocks, and
    a last 3x3 conv to ``channels``."""

    def __init__(self, in_dim: int, image_size: int = 32, channels: int = 3, width: int = 64):
        super().__init__()
        repeats = _repeats(image_size)
        layers: list[nn.Module] = [nn.Linear(in_dim, width * 64), nn.Unflatten(1, (width, 8, 8))]
        for i in range(repeats):
            layers += [_conv(width, width), _conv(width, width)]
            if i < repeats - 1:
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        layers.append(nn.Conv2d(width, channels, 3, padding=1))
        self.net = nn.Sequential(*layers)
        self.apply(_glorot)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.net(code)


class Generator(Decoder):
    """G: z (B, z_dim) -> images; the decoder's architecture with its own weights (§3.5)."""

    def __init__(self, z_dim: int = 64, image_size: int = 32, channels: int = 3, width: int = 64):
        super().__init__(z_dim, image_size, channels, width)
        self.z_dim = z_dim


class Encoder(nn.Module):
    """Images -> codes h (B, code_dim) (§3.5): a 3x3 conv to ``width``, then block i (i = 0..repeats-1) of two
    3x3 convs with ``width * (i + 1)`` channels, each block but the last followed by a stride-2 3x3 conv, then a
    linear map of the 8x8 maps to h with no non-linearity."""

    def __init__(self, image_size: int = 32, channels: int = 3, width: int = 64, code_dim: int = 64):
        super().__init__()
        repeats = _repeats(image_size)
        layers: list[nn.Module] = [_conv(channels, width)]
        previous = width
        for i in range(repeats):
            ch = width * (i + 1)
            layers += [_conv(previous, ch), _conv(ch, ch)]
            if i < repeats - 1:
                layers.append(_conv(ch, ch, stride=2))
            previous = ch
        layers += [nn.Flatten(), nn.Linear(previous * 64, code_dim)]
        self.net = nn.Sequential(*layers)
        self.apply(_glorot)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class AutoencoderDiscriminator(nn.Module):
    """Images (B, C, S, S) -> energies (B,): L(v) = mean |v - D(v)| over each image's pixels (eta = 1)."""

    def __init__(self, image_size: int = 32, channels: int = 3, width: int = 64, code_dim: int = 64):
        super().__init__()
        self.encoder = Encoder(image_size, channels, width, code_dim)
        self.decoder = Decoder(code_dim, image_size, channels, width)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(self.reconstruct(x), x, reduction="none").flatten(1).mean(1)


class BoundaryEquilibrium(CriticLoss):
    """BEGAN's objective on D's energies: D minimises mean L(x) - k mean L(G(z_D)), G minimises mean L(G(z_G));
    ``k`` is a buffer moved by :meth:`update`. Its logged "D(x)" and "D(G(z))" are the mean losses L(x) and
    L(G(z_D)). Built by :class:`BEGANTask` from ``model.gamma``, ``model.lambda_k``, ``model.k0``."""

    def __init__(self, gamma: float = 0.5, lambda_k: float = 0.001, k0: float = 0.0):
        super().__init__()
        self.gamma, self.lambda_k = gamma, lambda_k
        self.register_buffer("k", torch.tensor(float(k0)))

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        return real_out.mean() - self.k * fake_out.mean()

    def g_loss(self, fake_out: torch.Tensor) -> torch.Tensor:
        return fake_out.mean()

    @torch.no_grad()
    def update(self, real_loss: torch.Tensor, fake_loss: torch.Tensor) -> None:
        self.k.copy_(equilibrium_step(self.k, real_loss.float(), fake_loss.float(), self.gamma, self.lambda_k))


class BEGANTask(NoiseToImage):
    """The BEGAN game (see the module docstring). Its objective is its own, so the config has no ``loss``
    group (``loss=...`` is refused by name); ``prior`` is the paper's uniform z unless set."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module, gamma: float = 0.5, lambda_k: float = 0.001,
                 k0: float = 0.0, prior: str = "uniform", reuse_fake: bool = True, loss: nn.Module | None = None):
        if loss is not None:
            raise ConfigError(f"loss={type(loss).__name__}: model=began trains on its own objective (L_D = L(x) - "
                              "k_t L(G(z)), L_G = L(G(z)), set by model.gamma, model.lambda_k, model.k0); leave the "
                              "loss group out")
        if not 0 < gamma <= 1:
            raise ConfigError(f"model.gamma must be in (0, 1], got {gamma}")
        if not lambda_k >= 0:
            raise ConfigError(f"model.lambda_k must be >= 0, got {lambda_k}")
        if not 0 <= k0 <= 1:
            raise ConfigError(f"model.k0 must be in [0, 1], got {k0}")
        super().__init__(generator, discriminator, BoundaryEquilibrium(gamma, lambda_k, k0), reuse_fake, prior)

    def end_step(self, step: int, stats: dict[str, torch.Tensor]) -> None:
        """k's update from this step's L(x) and L(G(z_G)); adds ``began/M_global`` and ``began/k`` to the stats."""
        real_loss, fake_loss = stats["D(x)"], stats["loss/G"]
        stats["began/M_global"] = convergence_measure(real_loss, fake_loss, self.loss.gamma)
        self.loss.update(real_loss, fake_loss)
        stats["began/k"] = self.loss.k.clone()
