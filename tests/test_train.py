"""Every model trains on its default data; what a run writes; how it stops."""

from __future__ import annotations

import pytest
from hydra.utils import get_class
import torch

from gan_lab.engine import checkpoint
from gan_lab.errors import ConfigError, NonFiniteLossError
from gan_lab.train import run
from tests.conftest import REPO, TINY, compose_train, flat_model

MODELS = sorted(p.stem for p in (REPO / "configs" / "model").glob("*.yaml"))


@pytest.mark.parametrize("model", MODELS)
def test_model_trains_on_its_default_dataset(tmp_path, model):
    loss_g = run(compose_train([*TINY, f"model={model}", "dataset.count=64"]), tmp_path)
    assert torch.isfinite(torch.tensor(loss_g))
    state = checkpoint.load(tmp_path / "checkpoints" / "last.pt")
    assert state["step"] == 4 and state["config"]["train"]["steps"] == 4
    # one PNG per visual of the task (translators: AtoB and BtoA; a task may add its own) at each sample step
    names = ("AtoB", "BtoA") if "unpaired" in get_class(state["config"]["model"]["_target_"]).data_kinds else ("fixed",)
    pngs = sorted(p.name for p in (tmp_path / "samples").glob("*.png"))
    names = {*names, *(png.rsplit("_", 1)[0] for png in pngs)}
    assert pngs == sorted(f"{name}_{step:07d}.png" for name in names for step in (2, 4))
    assert (tmp_path / "config.yaml").exists()


def test_training_changes_the_weights(tmp_path):
    cfg = compose_train([*TINY, "dataset.count=64"])
    run(cfg, tmp_path)
    state = checkpoint.load(tmp_path / "checkpoints" / "last.pt")
    first = checkpoint.load(tmp_path / "checkpoints" / "step_0000002.pt")
    changed = [k for k, v in flat_model(state).items() if v.dtype.is_floating_point and not torch.equal(v, flat_model(first)[k])]
    assert any(k.startswith("G.") for k in changed) and any(k.startswith("D.") for k in changed)


def test_tensorboard_has_scalars_and_images(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run(compose_train([*TINY, "dataset.count=64"]), tmp_path)
    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    for tag in ("loss/G", "loss/D", "D(x)", "D(G(z))", "lr/G", "lr/D", "perf/images_per_sec"):
        assert tag in tags["scalars"], tag
        assert [e.step for e in acc.Scalars(tag)] == [2, 4]
    assert [e.step for e in acc.Images("samples/fixed")] == [2, 4]


def test_ema_generator_is_checkpointed(tmp_path):
    run(compose_train([*TINY, "dataset.count=64", "tricks=[ema]"]), tmp_path)
    state = checkpoint.load(tmp_path / "checkpoints" / "last.pt")
    ema, live = state["models"]["G_ema"], {k[2:]: v for k, v in flat_model(state).items() if k.startswith("G.")}
    assert ema.keys() == live.keys()
    weights = [k for k in ema if k.endswith("weight")]
    assert any(not torch.equal(ema[k], live[k]) for k in weights), "EMA weights must lag the live ones"


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    cfg = compose_train([*TINY, "dataset.count=64", "train.steps=6"])
    from gan_lab.losses import adversarial

    original = adversarial.NonSaturating.d_loss
    calls = {"n": 0}

    def poisoned(self, real, fake):
        calls["n"] += 1
        loss = original(self, real, fake)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(adversarial.NonSaturating, "d_loss", poisoned)
    with pytest.raises(NonFiniteLossError, match="step 3"):
        run(cfg, tmp_path)
    state = checkpoint.load(tmp_path / "checkpoints" / "last.pt")
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in flat_model(state).values() if v.dtype.is_floating_point)


@pytest.mark.parametrize("override, key", [
    ("train.batch_size=0", "train.batch_size"),
    ("optim.D.lr=-1", "optim.D.lr"),
    ("dataset.image_size=48", "dataset.image_size"),
    ("train.steps=0", "train.steps"),
])
def test_invalid_values_name_the_key(tmp_path, override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        run(compose_train([*TINY, override]), tmp_path)
    assert not (tmp_path / "checkpoints").exists(), "nothing may start before the config is checked"


def test_unpaired_data_for_pix2pix_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="dataset=shapes provides image data|paired"):
        run(compose_train([*TINY, "model=pix2pix", "dataset=shapes"]), tmp_path)


def test_batch_larger_than_dataset(tmp_path):
    with pytest.raises((ConfigError, ValueError), match="batch_size"):
        run(compose_train([*TINY, "dataset.count=4"]), tmp_path)


def test_toy2d_runs_draw_scatter_plots(tmp_path):
    from PIL import Image

    run(compose_train([*TINY, "model=gan", "dataset=toy2d", "dataset.count=256"]), tmp_path)
    image = torch.from_numpy(__import__("numpy").array(Image.open(tmp_path / "samples" / "fixed_0000004.png")))
    assert image.shape == (256, 256, 3)
    blue = (image[..., 2] > 150) & (image[..., 0] < 100)  # generated points
    grey = (image[..., 0] == image[..., 2]) & (image[..., 0] > 150) & (image[..., 0] < 200)  # the real ring
    assert blue.sum() > 0 and grey.sum() > 0
