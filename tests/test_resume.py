"""Exact resume: 2N steps in one go equal N steps, a stop, and N more (same seed, CPU)."""

from __future__ import annotations

import pytest
import torch

from gan_lab.engine import checkpoint
from gan_lab.errors import CheckpointError, ConfigError
from gan_lab.train import run
from tests.conftest import TINY, compose_train

STEPS = ["train.log_every=1", "train.sample_every=3", "train.ckpt_every=3"]


def _losses(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb"))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in ("loss/G", "loss/D", "D(x)")}


@pytest.mark.parametrize("model", ["dcgan", "pix2pix", "wgan_gp"])
def test_stop_and_resume_equals_uninterrupted(tmp_path, model):
    base = [*TINY, f"model={model}", *STEPS, "dataset.count=64"]
    full = tmp_path / "full"
    run(compose_train([*base, "train.steps=6"]), full)

    part = tmp_path / "part"
    run(compose_train([*base, "train.steps=3"]), part)  # stops at 3 ...
    cfg = compose_train([*base, f"resume={part}", "train.steps=6"])
    run(cfg, part, overrides=[f"resume={part}", "train.steps=6"])  # ... and continues to 6

    assert _losses(part) == _losses(full)
    a, b = checkpoint.load(full / "checkpoints" / "last.pt"), checkpoint.load(part / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 6
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key


def test_resume_refuses_to_change_the_model(tmp_path):
    run(compose_train([*TINY, "train.steps=2", "dataset.count=32"]), tmp_path)
    cfg = compose_train([*TINY, f"resume={tmp_path}", "loss=minimax"])
    with pytest.raises(ConfigError, match="loss=minimax"):
        run(cfg, tmp_path, overrides=[f"resume={tmp_path}", "loss=minimax"])


def test_resume_from_missing_or_corrupt_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        run(compose_train([*TINY, f"resume={tmp_path}"]), tmp_path)
    (tmp_path / "bad.pt").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="corrupt"):
        run(compose_train([*TINY, f"resume={tmp_path / 'bad.pt'}"]), tmp_path)


def test_new_run_refuses_an_existing_run_dir(tmp_path):
    run(compose_train([*TINY, "train.steps=2", "dataset.count=32"]), tmp_path)
    with pytest.raises(ConfigError, match="already holds a run"):
        run(compose_train([*TINY, "train.steps=2", "dataset.count=32"]), tmp_path)
