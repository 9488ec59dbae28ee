"""bfloat16 autocast on the CPU (``hardware.precision=bf16``) for every model: the loss of the first phase is
fp32's within bf16's rounding, and a short run trains and keeps fp32 checkpoints. ``hardware.precision=auto``
picks bf16 only where the CPU has native bf16 and says why."""

from __future__ import annotations

import contextlib

import pytest
import torch

from gan_lab.engine import checkpoint
from gan_lab.engine.precision import Hardware
from gan_lab.train import run, setup
from tests.conftest import TINY, compose_train
from tests.test_train import MODELS

# bf16 keeps 8 bits of mantissa (2^-8 ~ 0.4% per rounding); over a network the first losses differed by at most
# 0.93% (wgan_div, whose |grad|^6 penalty amplifies it; most models 0.01-0.5%), so 2% with room to spare.
RTOL = 2e-2


def _bf16(model: str) -> list[str]:
    return [*TINY, f"model={model}", "dataset.count=64", "hardware.precision=bf16"]


@pytest.mark.parametrize("model", MODELS)
def test_first_loss_under_bf16_autocast_is_fp32_within_rounding(model):
    """The same weights, batch and draws (latent stream and global RNG reset alike), with and without autocast."""
    cfg = compose_train(_bf16(model))
    state, data, hw = setup(cfg)
    task = state.task
    batch = hw.batch(data.batch_at(0, cfg.train.batch_size, cfg.seed))
    phase = task.phases(1, cfg.train.n_critic)[0]
    latent, rng = task.latent.get_state(), torch.get_rng_state()
    losses = []
    for autocast in (False, True):
        task.latent.set_state(latent)
        torch.set_rng_state(rng)
        with hw.autocast() if autocast else contextlib.nullcontext():
            losses.append(phase.loss(batch, None).loss.detach().float())
    fp32, bf16 = losses
    assert torch.isfinite(bf16)
    torch.testing.assert_close(bf16, fp32, rtol=RTOL, atol=1e-6)


@pytest.mark.parametrize("model", MODELS)
def test_every_model_trains_under_bf16_and_keeps_fp32_checkpoints(tmp_path, model):
    loss_g = run(compose_train(_bf16(model)), tmp_path)
    assert torch.isfinite(torch.tensor(loss_g))
    state = checkpoint.load(tmp_path / "checkpoints" / "last.pt")
    assert state["step"] == 4
    floats = {v.dtype for weights in state["models"].values() for v in weights.values()
              if torch.is_tensor(v) and v.is_floating_point()}
    assert floats == {torch.float32}


@pytest.mark.parametrize("amx, avx512_bf16, expected, reason", [
    (True, True, "bf16", "AMX"), (False, True, "bf16", "AVX512-BF16"), (False, False, "fp32", "neither")])
def test_auto_precision_picks_bf16_only_where_the_cpu_has_it(monkeypatch, amx, avx512_bf16, expected, reason):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    hw = Hardware(compose_train(["hardware=auto"]).hardware, torch.device("cpu"))
    assert hw.precision == expected and hw.dtype == (torch.bfloat16 if expected == "bf16" else None)
    assert hw.why.startswith("hardware.precision=auto: ") and reason in hw.why
    explicit = Hardware(compose_train(["hardware=auto", "hardware.precision=fp32"]).hardware, torch.device("cpu"))
    assert (explicit.precision, explicit.dtype, explicit.why) == ("fp32", None, "hardware.precision=fp32")
