"""One context for every place that samples from a generator (grids, eval, sample, FID in training)."""

from __future__ import annotations

import contextlib

import torch
from torch import nn


@contextlib.contextmanager
def inference(G: nn.Module, device: torch.device):
    """``G`` in eval mode under ``no_grad`` on a forked RNG; every module's mode is restored after.

    Forking keeps the training RNG where it was, so sampling never changes a run's trajectory."""
    modes = [(m, m.training) for m in G.modules()]
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            G.eval()
            yield G
    finally:
        for module, mode in modes:
            module.train(mode)
