"""bfloat16 autocast on the CPU (``hardware.precision=bf16``) for every model: the loss of the first phase is
fp32's within bf16's rounding, and 4 steps train, keep fp32 checkpoints and track fp32's losses.
``hardware.precision=auto`` picks bf16 only where the CPU has native bf16 and says why."""

from __future__ import annotations

import contextlib

import pytest
import torch

from gan_lab.engine import checkpoint
from gan_lab.engine.precision import Hardware
from gan_lab.train import run, setup
from tests.conftest import TINY, compose_train
from tests.test_resume import _losses
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
    """4 steps in bf16 track 4 in fp32 from the same seed: every loss at every step within 25% + 0.05. Training
    amplifies the first step's rounding (measured worst: musegan's loss/G 1.41 vs 1.18 at step 3; infogan's
    small info loss 0.050 vs 0.023), so the bound only catches a model that bf16 breaks, not drift."""
    loss_g = run(compose_train([*_bf16(model), "train.log_every=1"]), tmp_path / "bf16")
    assert torch.isfinite(torch.tensor(loss_g))
    state = checkpoint.load(tmp_path / "bf16" / "checkpoints" / "last.pt")
    assert state["step"] == 4
    floats = {v.dtype for weights in state["models"].values() for v in weights.values()
              if torch.is_tensor(v) and v.is_floating_point()}
    assert floats == {torch.float32}
    run(compose_train([*_bf16(model), "train.log_every=1", "hardware.precision=fp32"]), tmp_path / "fp32")
    bf16, fp32 = (_losses(tmp_path / p) for p in ("bf16", "fp32"))
    assert bf16.keys() == fp32.keys()
    for tag in (t for t in fp32 if t.startswith("loss/")):
        assert [s for s, _ in bf16[tag]] == [s for s, _ in fp32[tag]] == [1, 2, 3, 4]
        torch.testing.assert_close(torch.tensor([v for _, v in bf16[tag]]), torch.tensor([v for _, v in fp32[tag]]),
                                   rtol=0.25, atol=0.05, msg=lambda m, tag=tag: f"{tag}: {m}")


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
