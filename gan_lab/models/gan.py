"""The MLP generator and maxout discriminator of Goodfellow et al. 2014, "Generative
Adversarial Nets", §5 (Experiments), sized as in the authors' MNIST configuration
(goodfeli/adversarial ``mnist.yaml``): G 100 -> 1200 ReLU -> 1200 ReLU -> output,
D maxout 240x5 -> maxout 240x5 -> 1 logit, trained with dropout.

Both networks also serve 2-D toy data: ``out_shape=[2]`` gives point samples.
"""

from __future__ import annotations

import torch
from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.models.blocks import Maxout, dense, numel, uniform_init

# The paper's G ended in a sigmoid because its data were in [0, 1]; gan-lab images
# are in [-1, 1], the range of tanh. Points are unbounded, so they get no squashing.
_OUTPUTS = {"tanh": "tanh", "linear": None}


class Generator(nn.Module):
    """z -> ReLU MLP -> a sample of shape ``out_shape`` ([C, H, W] or [D]).

    ``out_activation``: "tanh" or "linear"; ``None`` picks tanh for images and
    linear for points. ``batch_norm``: batch norm before each hidden ReLU (BiGAN's MNIST generator,
    Donahue et al. 2017; the 2014 paper's G has none)."""

    def __init__(self, out_shape: list[int], z_dim: int = 100, hidden: list[int] = (1200, 1200),
                 out_activation: str | None = None, batch_norm: bool = False):
        super().__init__()
        self.out_shape = tuple(int(s) for s in out_shape)
        self.z_dim = z_dim
        if out_activation is None:
            out_activation = "tanh" if len(self.out_shape) == 3 else "linear"
        if out_activation not in _OUTPUTS:
            raise ConfigError(f"model.generator.out_activation={out_activation}: must be one of {list(_OUTPUTS)}")
        sizes = [z_dim, *hidden]
        hidden_layers = (
            nn.Sequential(nn.Linear(a, b, bias=False), nn.BatchNorm1d(b), nn.ReLU(inplace=True)) if batch_norm
            else dense(a, b, act="relu") for a, b in zip(sizes, sizes[1:]))
        self.net = nn.Sequential(
            *hidden_layers,
            dense(sizes[-1], numel(self.out_shape), act=_OUTPUTS[out_activation]),
        )
        uniform_init(self, 0.05)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(len(z), *self.out_shape)


class Discriminator(nn.Module):
    """Flattened sample -> maxout layers -> one logit per sample.

    Dropout as in the reference: inputs kept with probability .8, hidden units with .5."""

    def __init__(self, in_shape: list[int], units: list[int] = (240, 240), pieces: int = 5,
                 input_dropout: float = 0.2, dropout: float = 0.5):
        super().__init__()
        sizes = [numel(in_shape), *units]
        drops = [input_dropout] + [dropout] * len(units)
        self.body = nn.Sequential(
            *(Maxout(a, b, pieces, input_dropout=p) for a, b, p in zip(sizes, sizes[1:], drops)),
            nn.Dropout(drops[-1]),  # the output layer's input dropout
        )
        self.head = nn.Linear(sizes[-1], 1)
        uniform_init(self, 0.005)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last maxout layer's units (B, units[-1])."""
        return self.body(x.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).view(-1)
