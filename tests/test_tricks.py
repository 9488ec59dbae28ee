"""Every trick of configs/tricks/ trains with the default model (DCGAN) and lands in its checkpoint."""

from __future__ import annotations

import pytest
import torch

from gan_lab.engine import checkpoint
from gan_lab.train import run
from tests.conftest import REPO, TINY, compose_train

TRICKS = sorted(p.stem for p in (REPO / "configs" / "tricks").glob("*.yaml"))


@pytest.mark.parametrize("trick", TRICKS)
def test_trick_trains_with_the_default_model(tmp_path, trick):
    cfg = compose_train([*TINY, "train.steps=2", "dataset.count=64", f"tricks=[{trick}]"])
    assert torch.isfinite(torch.tensor(run(cfg, tmp_path)))
    state = checkpoint.load(tmp_path / "checkpoints" / "last.pt")
    assert state["step"] == 2
    assert set(state["tricks"]) == set(cfg.tricks)  # ttur is a config preset, not a trick object
    if trick == "ttur":
        assert [state["config"]["optim"][n]["lr"] for n in ("G", "D")] == [1e-4, 4e-4]
    else:
        assert trick in state["tricks"]
