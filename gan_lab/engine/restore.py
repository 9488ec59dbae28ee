"""Rebuild a trained model from a checkpoint and the config stored inside it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from gan_lab import config as config_lib
from gan_lab.engine import checkpoint
from gan_lab.engine.build import build_task
from gan_lab.engine.state import load_task_state
from gan_lab.errors import CheckpointError, GanLabError
from gan_lab.models.base import GANTask


@dataclass
class Restored:
    task: GANTask
    generator: torch.nn.Module  # task.G_ema when the run kept one (and use_ema), else task.G; in eval mode
    config: DictConfig
    path: Path
    step: int


def restore(path: str | Path, device: torch.device, use_ema: bool = True) -> Restored:
    """The task of a checkpoint (or run directory) with its weights, on ``device``."""
    file = checkpoint.resolve(path)
    state = checkpoint.load(file, map_location=device)
    config_lib.register()
    cfg = OmegaConf.merge(OmegaConf.structured(config_lib.TrainAppSchema), state["config"])
    try:
        task, _ = build_task(cfg, device)
    except GanLabError as err:
        raise CheckpointError(f"{file} was written for model {cfg.model.get('_target_')!r}, which this "
                              f"gan-lab cannot build: {err}") from None
    try:
        load_task_state(task, state)
    except RuntimeError as err:
        raise CheckpointError(f"{file}: the weights do not fit the stored model config: "
                              f"{str(err).splitlines()[0]}") from None
    task.eval()
    return Restored(task, task.sampling_generator(use_ema), cfg, file, int(state["step"]))
