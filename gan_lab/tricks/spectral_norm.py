"""Spectral normalization (Miyato et al. 2018, "Spectral Normalization for Generative Adversarial
Networks", §2.1-2.2 and Algorithm 1): every convolution and linear weight W is used as W / sigma(W),
sigma(W) its largest singular value, so each layer is 1-Lipschitz. sigma is estimated by power
iteration, one step per training forward pass (n_power_iterations = 1, Algorithm 1), whose vectors u, v
carry over from step to step. A convolution's weight counts as the matrix (out, in * kh * kw) (§2.2).

Miyato et al. normalise the discriminator; SAGAN (Zhang et al. 2019, §4) normalises both networks.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from gan_lab.errors import ConfigError
from gan_lab.tricks.base import Trick, positive_int

NETWORKS = ("G", "D")
LAYERS = (nn.modules.conv._ConvNd, nn.Linear)  # every (transposed) convolution and linear layer


class SpectralNorm(Trick):
    """Reparametrize the weights of every convolution and linear layer of ``networks`` as W / sigma(W).

    torch's parametrization keeps u and v as buffers of the network (``...parametrizations.weight.0._u``),
    so checkpoints, exact resume and the EMA copy of G carry them with the weights; in eval mode
    (sampling) they are not updated."""

    def __init__(self, networks: list[str] = ("D",), n_power_iterations: int = 1):
        networks = list(networks)
        if not networks or any(n not in NETWORKS for n in networks) or len(set(networks)) < len(networks):
            raise ValueError(f"tricks.spectral_norm.networks must list G and/or D, got {networks}")
        self.networks = networks
        self.n_power_iterations = positive_int(n_power_iterations, "tricks.spectral_norm.n_power_iterations")

    def modify(self, task: nn.Module) -> None:
        for name in self.networks:
            net = getattr(task, name)
            layers = [m for m in net.modules() if isinstance(m, LAYERS)]
            if not layers:
                raise ConfigError(f"tricks.spectral_norm.networks: {name} ({type(net).__name__}) has no "
                                  "convolution or linear layer whose weight could be normalised")
            for layer in layers:
                spectral_norm(layer, n_power_iterations=self.n_power_iterations)
