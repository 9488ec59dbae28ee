"""Shared fixtures: composing configs like the CLI does, tiny run settings, the real-data root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from gan_lab import config as config_lib

REPO = Path(__file__).resolve().parents[1]

# Small enough that every model trains a few steps in seconds on a 2-core CPU.
TINY = ["train.steps=4", "train.batch_size=8", "train.log_every=2", "train.sample_every=2",
        "train.ckpt_every=2", "train.grid_size=8", "train.progress=plain", "hardware=cpu"]


def data_root() -> Path:
    """Real datasets: $GAN_LAB_DATA, else the shared/data folder beside the repository."""
    return Path(os.environ.get("GAN_LAB_DATA", REPO.parent / "shared" / "data")).resolve()


def require_data(*parts: str) -> Path:
    path = data_root().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set GAN_LAB_DATA to the folder described in shared/data/README.md)")
    return path


def compose_train(overrides: list[str]) -> DictConfig:
    config_lib.register()
    with initialize_config_module("gan_lab.configs", version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=False)


@pytest.fixture
def compose_cfg():
    return compose_train


def flat_model(state: dict) -> dict:
    """A checkpoint's task state as one ``task.state_dict()``-style dict (``G.x``, ``D.y``, ``G_ema.z``, buffers)."""
    flat = dict(state["task"])
    for name, weights in state["models"].items():
        flat.update({f"{name}.{key}": value for key, value in weights.items()})
    return flat
