"""One context for every place that samples from a generator (grids, eval, sample, FID in training)."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from gan_lab.models.base import GANTask


@contextlib.contextmanager
def inference(task: GANTask, G: nn.Module):
    """``G`` (one of ``task``'s generators) in eval mode under ``no_grad``, on a forked global RNG and
    latent stream, drawing whole (unsharded) batches on every rank; every module's mode, ``task.latent``
    and ``task.shard`` are restored after.

    Sampling inside may draw or reseed (``task.seed_latent``) freely: the training streams stay where
    they were, so sampling never changes a run's trajectory."""
    modes = [(m, m.training) for m in G.modules()]
    device = task.device
    devices = [device] if device.type == "cuda" else []
    latent, shard = task.latent, task.shard
    latent_state = latent.get_state() if latent is not None else None
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            G.eval()
            task.shard = (0, 1)
            yield G
    finally:
        task.latent, task.shard = latent, shard
        if latent is not None:
            latent.set_state(latent_state)
        for module, mode in modes:
            module.train(mode)
