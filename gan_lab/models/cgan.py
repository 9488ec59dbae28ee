"""Conditional GAN of Mirza & Osindero 2014, "Conditional Generative Adversarial Nets".

§3.2: the class label y is an extra input of both G and D. §4.1 (MNIST): in G,
z (100) -> 200 ReLU and one-hot y -> 1000 ReLU, joined -> 1200 ReLU -> the sample;
in D, x -> maxout 240 units x 5 pieces and y -> maxout 50 x 5, joined -> maxout
240 x 4 -> the logit; "dropout with probability of 0.5 was applied to both the
generator and discriminator". The paper's output sigmoid becomes tanh for data in
[-1, 1]; initial weights follow the authors' pylearn2 code (see ``gan.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.models.blocks import Maxout, dense, numel, one_hot, uniform_init
from gan_lab.models.noise import NoiseToImage


class Generator(nn.Module):
    """(z (B, z_dim), label (B,)) -> images (B, *out_shape) in [-1, 1]."""

    def __init__(self, out_shape: list[int], num_classes: int, z_dim: int = 100, z_units: int = 200,
                 y_units: int = 1000, hidden: int = 1200, dropout: float = 0.5):
        super().__init__()
        self.out_shape = tuple(int(s) for s in out_shape)
        self.num_classes, self.z_dim = num_classes, z_dim
        self.z_branch = dense(z_dim, z_units, act="relu")
        self.y_branch = dense(num_classes, y_units, act="relu")
        self.joint = nn.Sequential(
            dense(z_units + y_units, hidden, act="relu", input_dropout=dropout),
            dense(hidden, numel(self.out_shape), act="tanh", input_dropout=dropout),
        )
        uniform_init(self, 0.05)

    def forward(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        h = torch.cat([self.z_branch(z), self.y_branch(one_hot(label, self.num_classes))], 1)
        return self.joint(h).view(len(z), *self.out_shape)


class Discriminator(nn.Module):
    """(images (B, *in_shape), label (B,)) -> one logit per image (B,)."""

    def __init__(self, in_shape: list[int], num_classes: int, x_units: int = 240, x_pieces: int = 5,
                 y_units: int = 50, y_pieces: int = 5, joint_units: int = 240, joint_pieces: int = 4,
                 dropout: float = 0.5):
        super().__init__()
        self.num_classes = num_classes
        self.x_branch = Maxout(numel(in_shape), x_units, x_pieces)
        self.y_branch = Maxout(num_classes, y_units, y_pieces)
        self.joint = nn.Sequential(
            Maxout(x_units + y_units, joint_units, joint_pieces, input_dropout=dropout),
            dense(joint_units, 1, input_dropout=dropout),
        )
        uniform_init(self, 0.005)

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        h = torch.cat([self.x_branch(x.flatten(1)), self.y_branch(one_hot(label, self.num_classes))], 1)
        return self.joint(h).view(-1)


class ConditionalTask(NoiseToImage):
    """The GAN game on (image, label) pairs: real pairs from the batch, fake pairs
    G(z, y) with y drawn uniformly over the classes. Sample grids show one class per row."""

    data_kinds = ("image",)

    def __init__(self, generator: Generator, discriminator: Discriminator, loss: nn.Module, reuse_fake: bool = True):
        super().__init__(generator, discriminator, loss, reuse_fake)
        self.num_classes = generator.num_classes

    def sample_inputs(self, n: int, **given) -> dict[str, torch.Tensor]:
        """z and classes drawn uniformly; ``label=`` fixes the classes."""
        inputs = super().sample_inputs(n, **given)
        label = given.get("label")
        if label is None:
            label = self.draw_labels(self.num_classes, n)
        inputs["label"] = label
        return inputs

    def interpolation(self, rows: int, steps: int) -> dict[str, torch.Tensor]:
        """The latent paths of :class:`NoiseToImage`, one class per row (row r: class r mod K)."""
        labels = torch.arange(rows, device=self.device) % self.num_classes
        return {**super().interpolation(rows, steps), "label": labels.repeat_interleave(steps)}

    def condition(self, source: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        if "label" not in source:
            raise ConfigError("model=cgan needs class labels, but the dataset's batches have no 'label': "
                              "choose a labelled dataset (e.g. dataset=shapes or dataset=mnist)")
        return (source["label"],)

    def fixed_inputs(self, batch: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
        self.condition(batch)  # an unlabelled dataset fails here, before the first step
        classes = self.num_classes
        columns = max(1, n // classes)
        return {
            "z": torch.randn(classes * columns, self.z_dim, device=self.device, generator=self.latent),
            "label": torch.arange(classes, device=self.device).repeat_interleave(columns),
        }

    def grid_columns(self, n: int) -> int:
        return max(1, n // self.num_classes)
