"""InfoGAN of Chen et al. 2016, "InfoGAN: Interpretable Representation Learning by Information
Maximizing Generative Adversarial Nets".

§4: G's input is split into incompressible noise z and latent codes c, and the game becomes
min_{G,Q} max_D V(D, G) - lambda L_I(G, Q), where (§5, eq. 5-6)

    L_I(G, Q) = E_{c ~ P(c), x ~ G(z, c)} [log Q(c | x)] + H(c)  <=  I(c; G(z, c))

is a variational lower bound of the mutual information between the codes and the samples.
Q(c | x) shares every layer of D but its last (§5): a softmax over the values of each
categorical code and a factored Gaussian over the continuous codes (Appendix C). -lambda L_I
is added to D's loss, so Q (part of D's parameters, as in the reference code openai/InfoGAN)
learns on the detached samples of the D step, and to G's loss, through the frozen Q. Q reads the
features of D's own passes over the generated samples (the adversarial loss's), so it costs only its
own two layers.

Appendix C.1 (MNIST), with ``width`` = 64 the paper's:
D: 4x4 conv 64 lReLU s2, 4x4 conv 128 s2 BN lReLU, FC 1024 BN lReLU, FC -> the logit;
Q: FC 128 BN lReLU on D's FC 1024 features, FC -> the codes' parameters;
G: FC 1024 BN ReLU, FC (s/4)(s/4)128 BN ReLU, 4x4 upconv 64 s2 BN ReLU, 4x4 upconv s2 -> image.
Leaky ReLUs leak 0.1 (Appendix C; the reference code uses 0.01); G ends in tanh for data in
[-1, 1] (the reference's sigmoid is for pixels in [0, 1]). The latent follows the reference
MNIST launcher: 62 noise dimensions and the continuous codes uniform on [-1, 1], one 10-way
categorical code, two continuous codes whose Gaussian in Q has its standard deviation fixed
at 1; ``learn_std=True`` gives the exp-parametrized one of Appendix C instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.models.blocks import conv_block, dcgan_init, one_hot
from gan_lab.models.noise import NoiseToImage
from gan_lab.models.terms import CriticPass, LossTerm

LEAK = 0.1  # Appendix C: "leaky rectified linear units (lRELU) with leaky rate 0.1"


class LatentCodes:
    """Layout of G's input ``[z | one-hot c_1 | ... | continuous codes]``, the reference code's order.

    The codes are named c1, c2, ... in that order, categorical ones first: with the MNIST
    defaults c1 is the 10-way code (the digit, paper Fig. 2a) and c2, c3 are continuous."""

    def __init__(self, noise: int, categorical: Sequence[int], continuous: int):
        self.noise, self.continuous = int(noise), int(continuous)
        self.categorical = tuple(int(k) for k in categorical)
        if self.noise < 0 or self.continuous < 0 or any(k < 2 for k in self.categorical):
            raise ConfigError(f"model.generator: noise_dim={noise} and continuous={continuous} must be >= 0 "
                              f"and every categorical code needs >= 2 values, got categorical={list(categorical)}")
        if not self.categorical and not self.continuous:
            raise ConfigError("model.generator: InfoGAN needs at least one latent code "
                              "(categorical=[...] or continuous > 0)")
        self.dim = self.noise + sum(self.categorical) + self.continuous
        self.names = [f"c{i + 1}" for i in range(len(self.categorical) + self.continuous)]

    def describe(self) -> str:
        kinds = [f"categorical, {k} values" for k in self.categorical] + ["continuous"] * self.continuous
        return ", ".join(f"{name} ({kind})" for name, kind in zip(self.names, kinds))

    def sample(self, n: int, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` latents from the prior: z and the continuous codes U(-1, 1), each categorical uniform;
        drawn from ``generator`` (None: the global torch RNG)."""
        z = torch.rand(n, self.noise, device=device, generator=generator) * 2 - 1
        cats = [one_hot(torch.randint(k, (n,), device=device, generator=generator), k) for k in self.categorical]
        cont = torch.rand(n, self.continuous, device=device, generator=generator) * 2 - 1
        return torch.cat([z, *cats, cont], 1)

    def split(self, latent: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """(z, the categorical codes as indices (B,), the continuous codes (B, continuous))."""
        parts = latent.split([self.noise, *self.categorical, self.continuous], 1)
        return parts[0], [p.argmax(1) for p in parts[1:-1]], parts[-1]

    def index(self, name: str) -> int:
        """Position of code ``name`` in :attr:`names`; ValueError listing the codes if there is none."""
        if name not in self.names:
            raise ValueError(f"no latent code {name!r}; this model's codes are {self.describe()}")
        return self.names.index(name)

    def assign(self, latent: torch.Tensor, name: str, values: torch.Tensor) -> torch.Tensor:
        """A copy of ``latent`` with code ``name`` set to ``values``, one per row (indices for a
        categorical code, reals for a continuous one)."""
        i, out = self.index(name), latent.clone()
        if i < len(self.categorical):
            start, k = self.noise + sum(self.categorical[:i]), self.categorical[i]
            out[:, start:start + k] = one_hot(values.long(), k)
        else:
            out[:, self.dim - self.continuous + i - len(self.categorical)] = values
        return out


def _fc(in_features: int, out_features: int, act: nn.Module) -> nn.Sequential:
    """FC, batch norm, activation (Appendix C.1's "FC. 1024 RELU. batchnorm", in the reference
    code's order). No bias: the norm's shift replaces it."""
    return nn.Sequential(nn.Linear(in_features, out_features, bias=False), nn.BatchNorm1d(out_features), act)


def _check_size(image_size: int) -> int:
    if image_size % 4:
        raise ConfigError(f"dataset.image_size={image_size}: InfoGAN's networks have two stride-2 layers, "
                          "so the image size must be divisible by 4 (the paper's MNIST is 28)")
    return image_size // 4


class Generator(nn.Module):
    """Latents (B, z_dim) laid out by ``self.codes`` -> images (B, channels, image_size, image_size)."""

    def __init__(self, noise_dim: int = 62, categorical: Sequence[int] = (10,), continuous: int = 2,
                 image_size: int = 28, channels: int = 1, width: int = 64):
        super().__init__()
        self.codes = LatentCodes(noise_dim, categorical, continuous)
        self.z_dim = self.codes.dim  # the whole input, codes included
        s = _check_size(image_size)
        self.net = nn.Sequential(
            _fc(self.z_dim, 16 * width, nn.ReLU(inplace=True)),
            _fc(16 * width, 2 * width * s * s, nn.ReLU(inplace=True)),
            nn.Unflatten(1, (2 * width, s, s)),
            conv_block(2 * width, width, transpose=True, act="relu"),
            conv_block(width, channels, transpose=True, norm=None, act="tanh"),
        )
        self.apply(dcgan_init)  # N(0, 0.02), the reference code's initialisation

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Discriminator(nn.Module):
    """Images -> one logit per image (B,); :meth:`posterior` gives Q's parameters for the codes from
    D's :meth:`features`.

    ``categorical`` and ``continuous`` must match G's codes (the config interpolates them)."""

    def __init__(self, categorical: Sequence[int], continuous: int, learn_std: bool = False,
                 image_size: int = 28, channels: int = 1, width: int = 64):
        super().__init__()
        self.categorical, self.continuous = tuple(int(k) for k in categorical), int(continuous)
        self.learn_std = learn_std
        s = _check_size(image_size)
        self.body = nn.Sequential(
            conv_block(channels, width, norm=None), nn.LeakyReLU(LEAK, inplace=True),
            conv_block(width, 2 * width), nn.LeakyReLU(LEAK, inplace=True),
            nn.Flatten(),
            _fc(2 * width * s * s, 16 * width, nn.LeakyReLU(LEAK, inplace=True)),
        )
        self.head = nn.Linear(16 * width, 1)
        q_out = sum(self.categorical) + self.continuous * (2 if learn_std else 1)
        self.q = nn.Sequential(_fc(16 * width, 2 * width, nn.LeakyReLU(LEAK, inplace=True)),
                               nn.Linear(2 * width, q_out))
        self.apply(dcgan_init)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The FC 1024 layer (B, 16 * width) that D's head and Q share."""
        return self.body(x)

    def from_features(self, features: torch.Tensor) -> torch.Tensor:
        """D's logits (B,) from its :meth:`features`."""
        return self.head(features).view(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.from_features(self.features(x))

    def posterior(self, features: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor | None]:
        """Q(c | x) from D's :meth:`features` of x: logits per categorical code, means of the continuous
        codes, and their log standard deviations (None when fixed at 1)."""
        sizes = [*self.categorical, self.continuous, self.continuous if self.learn_std else 0]
        *logits, mean, log_std = self.q(features).split(sizes, 1)
        return logits, mean, log_std if self.learn_std else None


def information_bound(codes: LatentCodes, posterior: tuple, latent: torch.Tensor) -> dict[str, torch.Tensor]:
    """L_I (eq. 5) of the categorical and of the continuous codes, batch means in nats.

    ``posterior`` is :meth:`Discriminator.posterior` of D's features of G(``latent``). H(c) is log k
    for a k-way code and log 2 for U(-1, 1), so L_I reaches log k for a categorical code that Q recovers."""
    logits, mean, log_std = posterior
    _, cats, cont = codes.split(latent)
    bounds = {}
    if codes.categorical:
        bounds["categorical"] = sum(math.log(k) - F.cross_entropy(lg.float(), c)
                                    for k, lg, c in zip(codes.categorical, logits, cats))
    if codes.continuous:
        mean = mean.float()
        log_std = torch.zeros_like(mean) if log_std is None else log_std.float()
        log_q = -0.5 * ((cont - mean) * torch.exp(-log_std)).square() - log_std - 0.5 * math.log(2 * math.pi)
        bounds["continuous"] = codes.continuous * math.log(2) + log_q.sum(1).mean()
    return bounds


class InformationTerm(LossTerm):
    """-lambda L_I added to D's loss (logged as ``loss/info_<kind>``) and to G's (``loss/G_info_<kind>``),
    from Q on D's features of the generated samples in each step's pass."""

    uses_features = True

    def __init__(self, lambda_categorical: float, lambda_continuous: float):
        self.lambdas = {"categorical": lambda_categorical, "continuous": lambda_continuous}

    def d_terms(self, task: InfoGANTask, seen: CriticPass) -> dict:
        return self._terms(task, seen, "loss/info")

    def g_terms(self, task: InfoGANTask, seen: CriticPass) -> dict:
        return self._terms(task, seen, "loss/G_info")

    def _terms(self, task: InfoGANTask, seen: CriticPass, prefix: str) -> dict:
        bounds = information_bound(task.codes, task.D.posterior(seen.fake_features), seen.inputs["z"])
        return {f"{prefix}_{kind}": -self.lambdas[kind] * bound for kind, bound in bounds.items()}


class InfoGANTask(NoiseToImage):
    """The GAN game on noise-and-codes latents, with the information term on both sides.

    Sample grids show one value of the first categorical code per row, each column one draw
    of everything else; :meth:`traversal` varies any one code (paper Fig. 2)."""

    data_kinds = ("image",)

    def __init__(self, generator: Generator, discriminator: Discriminator, loss: nn.Module,
                 lambda_categorical: float = 1.0, lambda_continuous: float = 1.0):
        super().__init__(generator, discriminator, loss)
        self.codes = codes = generator.codes
        if (discriminator.categorical, discriminator.continuous) != (codes.categorical, codes.continuous):
            raise ConfigError("model.discriminator.categorical/continuous must equal model.generator's: Q "
                              f"predicts G's codes ({codes.describe()})")
        for key, value in (("lambda_categorical", lambda_categorical), ("lambda_continuous", lambda_continuous)):
            if not value >= 0:
                raise ConfigError(f"model.{key} must be >= 0, got {value}")
        self.penalties.append(InformationTerm(lambda_categorical, lambda_continuous))

    def sample_inputs(self, n: int, **given) -> dict[str, torch.Tensor]:
        z = given.get("z")
        return {"z": z if z is not None else self.draw_rows(self.codes.sample, n)}

    def fixed_inputs(self, batch: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
        codes = self.codes
        if not codes.categorical:
            return self.sample_inputs(n)
        k, columns = codes.categorical[0], max(1, n // codes.categorical[0])
        latent = codes.sample(columns, self.device, self.latent).repeat(k, 1)  # row r: the same draws, with c1 = r
        return {"z": codes.assign(latent, "c1", torch.arange(k, device=self.device).repeat_interleave(columns))}

    def grid_columns(self, n: int) -> int:
        codes = self.codes
        return max(1, n // codes.categorical[0]) if codes.categorical else super().grid_columns(n)

    def interpolation(self, rows: int, steps: int) -> dict[str, torch.Tensor]:
        raise ConfigError("interpolate=true walks a Gaussian latent, but InfoGAN's latent holds uniform noise and "
                          "codes: use traverse=<code> instead")

    def traversal(self, name: str, n: int, steps: int, span: tuple[float, float]) -> tuple[dict, int]:
        """Inputs for rows that vary code ``name`` and hold everything else at one draw per row:
        a categorical code through its values, a continuous one over ``steps`` values from
        ``span[0]`` to ``span[1]`` (Fig. 2 goes from -2 to 2, beyond the training range).
        Returns (inputs of about ``n`` samples, samples per row); ValueError for an unknown code."""
        codes = self.codes
        i = codes.index(name)
        if i < len(codes.categorical):
            values = torch.arange(codes.categorical[i], device=self.device)
        else:
            values = torch.linspace(span[0], span[1], steps, device=self.device)
        rows = max(1, n // len(values))
        latent = codes.sample(rows, self.device, self.latent).repeat_interleave(len(values), 0)
        return {"z": codes.assign(latent, name, values.repeat(rows))}, len(values)
