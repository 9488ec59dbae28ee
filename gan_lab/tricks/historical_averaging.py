"""Historical averaging (Salimans et al. 2016, "Improved Techniques for Training GANs", §3.3):
each player's cost gets the term ||theta - (1/t) sum_{i=1..t} theta[i]||^2, the squared distance
of its parameters from their average over the past, which damps the oscillations of gradient
descent in games that fictitious play would settle (the paper's motivation).

The average includes the parameters after the latest optimizer step and is treated as a
constant; it starts at the parameters of the first step, so the term is 0 there. The paper
writes the term without a weight and the authors' code (openai/improved-gan) does not use
historical averaging, so ``weight`` defaults to 1."""

from __future__ import annotations

import torch
from torch import nn

from gan_lab.models.terms import CriticPass
from gan_lab.tricks.base import Penalty, positive


class RunningMean:
    """The mean of a network's parameters over the optimizer steps seen so far (empty until the first)."""

    def __init__(self):
        self.mean: dict[str, torch.Tensor] = {}
        self.count = 0

    @torch.no_grad()
    def start(self, net: nn.Module) -> None:
        if not self.count:
            self.mean = {n: p.detach().clone() for n, p in net.named_parameters()}
            self.count = 1

    def distance(self, net: nn.Module) -> torch.Tensor:
        """sum over parameters of ||p - mean||^2, differentiable in the parameters."""
        self.start(net)
        return sum((p - self.mean[n]).square().sum() for n, p in net.named_parameters())

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        self.start(net)
        self.count += 1
        for n, p in net.named_parameters():
            self.mean[n].lerp_(p, 1.0 / self.count)  # mean += (p - mean) / t

    def state_dict(self) -> dict:
        return {"count": self.count, "mean": dict(self.mean)}

    def load_state_dict(self, state: dict, device: torch.device) -> None:
        self.count = int(state["count"])
        self.mean = {n: m.to(device, copy=True) for n, m in state["mean"].items()}


class HistoricalAveraging(Penalty):
    """``weight * ||theta - mean||^2`` added to D's loss (D's parameters) and to G's (G's)."""

    name = "historical_averaging"

    def __init__(self, weight: float = 1.0):
        self.weight = positive(weight, "tricks.historical_averaging.weight")
        self.means = {"G": RunningMean(), "D": RunningMean()}
        self.device = torch.device("cpu")  # the networks' device, where a loaded mean goes

    def setup(self, task: nn.Module) -> None:
        self.register(task)  # without Penalty.setup's batch-norm warning, which concerns input-gradient penalties
        self.device = task.device

    def _term(self, task: nn.Module, net: str) -> dict[str, torch.Tensor]:
        return {f"penalty/{self.name}_{net}": self.weight * self.means[net].distance(getattr(task, net))}

    def d_terms(self, task: nn.Module, seen: CriticPass) -> dict[str, torch.Tensor]:
        return self._term(task, "D")  # on the parameters: nothing from D's pass

    def g_terms(self, task: nn.Module, seen: CriticPass) -> dict[str, torch.Tensor]:
        return self._term(task, "G")

    def after_phase(self, task: nn.Module, player: str, step: int) -> None:
        if player in self.means:
            self.means[player].update(getattr(task, player))

    def state_dict(self) -> dict:
        return {net: mean.state_dict() for net, mean in self.means.items()}

    def load_state_dict(self, state: dict) -> None:
        for net, mean in self.means.items():
            mean.load_state_dict(state[net], self.device)
