"""The one way a task is built from a config, for training, eval and sample alike."""

from __future__ import annotations

from collections.abc import Callable

import torch
from omegaconf import DictConfig
from torch import nn

from gan_lab import config as config_lib
from gan_lab.models.base import GANTask


def build_task(cfg: DictConfig, device: torch.device, data=None,
               prepare: Callable[[nn.Module], None] | None = None) -> tuple[GANTask, dict]:
    """The task of ``cfg`` on ``device`` with its tricks applied: the loss injected (when the config
    has one), ``use_data(data)`` when training, the latent stream seeded from ``cfg.seed``, the tricks'
    network changes (``modify``), each player ``prepare``d (layout, compile), then every trick's
    ``setup`` (which may add ``G_ema``)."""
    loss = {"loss": config_lib.instantiate_group(cfg.loss, "loss")} if cfg.get("loss") is not None else {}
    task = config_lib.instantiate_group(cfg.model, "model", **loss)
    if data is not None:
        task.use_data(data)
    task.to(device)
    task.seed_latent(cfg.seed)
    tricks = config_lib.instantiate_tricks(cfg.tricks, task)  # may change the networks: before the optimizers
    if prepare is not None:
        for net in task.players().values():
            prepare(net)
    for trick in tricks.values():
        trick.setup(task)
    task.to(device)
    return task, tricks
