"""Rebuild a trained model from a checkpoint and the config stored inside it."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from gan_lab import config as config_lib
from gan_lab.engine import checkpoint
from gan_lab.errors import CheckpointError
from gan_lab.models.base import GANTask


@dataclass
class Restored:
    task: GANTask
    generator: torch.nn.Module  # the EMA generator when the run kept one, else task.G; in eval mode
    config: DictConfig
    path: Path
    step: int
    fixed: dict[str, torch.Tensor]


def restore(path: str | Path, device: torch.device, use_ema: bool = True) -> Restored:
    """The task of a checkpoint (or run directory) with its weights, on ``device``."""
    file = checkpoint.resolve(path)
    state = checkpoint.load(file, map_location=device)
    config_lib.register()
    cfg = OmegaConf.merge(OmegaConf.structured(config_lib.TrainAppSchema), state["config"])
    try:
        task = instantiate(cfg.model, loss=instantiate(cfg.loss))
    except InstantiationException as err:
        raise CheckpointError(f"{file} was written for model {cfg.model.get('_target_')!r}, which this "
                              f"gan-lab cannot build: {err.__cause__ or err}") from None
    config_lib.instantiate_tricks(cfg.tricks, task)  # the network changes the weights were trained with
    try:
        task.load_state_dict(state["model"])
    except RuntimeError as err:
        raise CheckpointError(f"{file}: the weights do not fit the stored model config: "
                              f"{str(err).splitlines()[0]}") from None
    task.to(device).eval()
    generator = task.G
    ema = state.get("tricks", {}).get("ema")
    if use_ema and ema is not None:
        generator = copy.deepcopy(task.G)
        generator.load_state_dict(ema["generator"])
    fixed = {k: v.to(device) for k, v in state.get("fixed", {}).items()}
    return Restored(task, generator.eval(), cfg, file, int(state["step"]), fixed)
