"""Virtual batch normalization (Salimans et al. 2016, "Improved Techniques for Training GANs",
§3.5): batch norm makes a generated example depend on the other examples of its batch; VBN
normalizes each example with the statistics of a reference batch, chosen once at the start of
training and kept fixed, together with the example's own. Used in the generator only, as in the
paper: it costs a forward pass over the reference batch with every generator call.

As in the authors' code (openai/improved-gan, ``imagenet/model.py``, class ``VBN``): the
reference batch goes through G with every batch; at each normalization layer its own statistics
(per channel, over the reference examples and positions) normalize it, and an example x uses
mean = 1/(R+1) mean(x) + R/(R+1) mean(reference), and the same mix of the mean squares, whose
difference is the variance; mean(x) is over x's positions. The reference inputs are drawn once
(the code keeps them as a non-trainable variable, 64 of them, its batch size) and kept as buffers
of G, so checkpoints, EMA copies and ``gan-lab eval``/``sample`` use the same reference batch."""

from __future__ import annotations

import torch
from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.tricks.base import Trick, positive_int


class VirtualBatchNorm(nn.Module):
    """Batch norm over (reference rows, examples): the input's first ``reference_size`` rows are the
    reference batch. Inputs (B, C) or (B, C, *positions); a scale and shift per channel."""

    def __init__(self, num_features: int, reference_size: int, eps: float = 1e-5, affine: bool = True):
        super().__init__()
        self.num_features, self.reference_size, self.eps = num_features, reference_size, eps
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None

    @classmethod
    def from_batchnorm(cls, bn: nn.modules.batchnorm._BatchNorm, reference_size: int) -> VirtualBatchNorm:
        """A VBN layer with ``bn``'s epsilon and affine parameters (values copied)."""
        vbn = cls(bn.num_features, reference_size, bn.eps, affine=False)
        if bn.affine:
            vbn.weight = nn.Parameter(bn.weight.detach().clone())
            vbn.bias = nn.Parameter(bn.bias.detach().clone())
        return vbn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.reference_size
        positions = tuple(range(2, x.dim()))
        xf = x.to(torch.promote_types(x.dtype, torch.float32))  # fp16/bf16 statistics in fp32, as batch norm
        ref, ex = xf[:r], xf[r:]
        ref_mean = ref.mean((0, *positions), keepdim=True)
        ref_sq = ref.square().mean((0, *positions), keepdim=True)
        ex_mean = ex.mean(positions, keepdim=True) if positions else ex  # (B, C): the example's own values
        ex_sq = ex.square().mean(positions, keepdim=True) if positions else ex.square()
        new = 1.0 / (r + 1)
        out = torch.cat([self._normalize(ref, ref_mean, ref_sq),
                         self._normalize(ex, new * ex_mean + (1 - new) * ref_mean, new * ex_sq + (1 - new) * ref_sq)])
        if self.weight is not None:
            shape = (1, -1) + (1,) * len(positions)
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_features}, reference_size={self.reference_size}, eps={self.eps}"

    def _normalize(self, x: torch.Tensor, mean: torch.Tensor, mean_sq: torch.Tensor) -> torch.Tensor:
        # var = E x^2 - (E x)^2 can round below 0
        return (x - mean) * torch.rsqrt((mean_sq - mean.square()).clamp_min(0) + self.eps)


class ReferenceBatchGenerator(nn.Module):
    """Runs ``generator`` on (reference inputs, inputs) and returns the rows of the inputs.

    The reference inputs are buffers ``reference_<i>``, one per positional argument of the generator."""

    def __init__(self, generator: nn.Module, reference: tuple[torch.Tensor, ...]):
        super().__init__()
        self.generator = generator
        self.reference_size = len(reference[0])
        for i, tensor in enumerate(reference):
            self.register_buffer(f"reference_{i}", tensor)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        joint = [torch.cat([getattr(self, f"reference_{i}"), x]) for i, x in enumerate(inputs)]
        return self.generator(*joint)[self.reference_size:]


class VirtualBatchNormTrick(Trick):
    """Replaces every batch norm of ``task.G`` by :class:`VirtualBatchNorm` and ``task.G`` by a
    :class:`ReferenceBatchGenerator` holding ``reference_size`` generator inputs drawn once."""

    def __init__(self, reference_size: int = 64):
        self.reference_size = positive_int(reference_size, "tricks.virtual_batchnorm.reference_size")

    def modify(self, task: nn.Module) -> None:
        if not (callable(getattr(task, "sample_inputs", None)) and callable(getattr(task, "condition", None))):
            raise ConfigError(f"tricks.virtual_batchnorm: {type(task).__name__} draws no generator inputs "
                              "(sample_inputs), so virtual batch norm cannot apply to this model")
        G = task.G
        norms = [name for name, m in G.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms:
            raise ConfigError(f"tricks.virtual_batchnorm: the generator {type(G).__name__} has no batch norm, "
                              "so virtual batch norm cannot apply to this model")
        for name in norms:
            parent, _, child = name.rpartition(".")
            G.get_submodule(parent).register_module(
                child, VirtualBatchNorm.from_batchnorm(G.get_submodule(name), self.reference_size))
        inputs = task.sample_inputs(self.reference_size)  # the latent stream: the run's seed fixes the reference
        task.G = ReferenceBatchGenerator(G, (inputs["z"], *task.condition(inputs)))
