"""Feature matching (Salimans et al. 2016, "Improved Techniques for Training GANs", §3.1).

G stops maximising D's output and matches the statistics of real data on an intermediate layer
of D instead: it minimises ||E_x f(x) - E_z f(G(z))||_2^2, with f the discriminator's features
(the last hidden layer, as in the authors' code, openai/improved-gan) and the expectations
taken over the batch. D trains as before. §5 trains the semi-supervised GAN's G this way.
"""

from __future__ import annotations

import torch
from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.tricks.base import Trick, feature_discriminator


class FeatureMatching(Trick):
    """Replaces the generator's adversarial loss (``task.g_objective``)."""

    def setup(self, task: nn.Module) -> None:
        feature_discriminator(task, "feature_matching")
        if not hasattr(task, "g_objective"):
            raise ConfigError(f"tricks.feature_matching: {type(task).__name__} has no replaceable generator "
                              "loss, so feature matching cannot apply to this model")
        if task.g_objective is not None:
            raise ConfigError(f"tricks.feature_matching: the generator loss is already replaced by "
                              f"{type(task.g_objective).__name__}; choose one")
        task.g_objective = self

    def g_loss(self, task: nn.Module, batch: dict[str, torch.Tensor], fake: torch.Tensor,
               inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():  # the real statistics are a target, not a path for gradients
            real = task.D.features(task.d_view(batch["real"]), *task.condition(batch)).mean(0)
        return matching_loss(real, task.D.features(task.d_view(fake), *task.condition(inputs)).mean(0))


def matching_loss(real_mean: torch.Tensor, fake_mean: torch.Tensor) -> torch.Tensor:
    """Squared L2 distance between two feature means (§3.1)."""
    return (real_mean.float() - fake_mean.float()).square().sum()
