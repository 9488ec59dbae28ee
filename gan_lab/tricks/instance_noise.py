"""Instance noise (Sønderby et al. 2017, "Amortised MAP Inference for Image Super-resolution",
§3.2; Arjovsky & Bottou 2017, "Towards Principled Methods for Training GANs", §3): Gaussian noise
added to every sample the discriminator sees, real and generated, in D's and G's steps. The
noise spreads both distributions over the whole space, so they overlap even where the data lie
on a low-dimensional manifold, and D cannot separate them perfectly. Its standard deviation is
annealed linearly to 0, so the model is trained on the clean data at the end."""

from __future__ import annotations

import torch
from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.tricks.base import Trick, positive, positive_int


class InstanceNoise(Trick):
    """x -> x + sigma_t * N(0, I) for every input of D, sigma_t = std * max(0, 1 - t / anneal_steps)
    after t steps. ``std`` is in data units ([-1, 1] for images); the noise is drawn from the global
    torch RNG (``randn_like`` takes no generator; latents and data have streams of their own, so the
    noise changes neither), and sigma is a function of the engine's step, so a resumed run continues
    the same schedule."""

    def __init__(self, std: float = 0.1, anneal_steps: int = 2000):
        self.std = positive(std, "tricks.instance_noise.std")
        self.anneal_steps = positive_int(anneal_steps, "tricks.instance_noise.anneal_steps")
        self.step = 0  # steps done before the current one

    def std_at(self, step: int) -> float:
        """The noise level after ``step`` generator steps."""
        return self.std * max(0.0, 1.0 - step / self.anneal_steps)

    def setup(self, task: nn.Module) -> None:
        if not hasattr(task, "d_input"):
            raise ConfigError(f"tricks.instance_noise: {type(task).__name__} has no d_input, so instance noise "
                              "cannot apply to this model")
        task.d_input.append(self.add_noise)

    def add_noise(self, x: torch.Tensor) -> torch.Tensor:
        std = self.std_at(self.step)
        return x + std * torch.randn_like(x) if std > 0 else x

    def begin_step(self, task: nn.Module, step: int) -> None:
        self.step = step - 1
