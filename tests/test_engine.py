"""The engine's mechanisms: n_critic, clipping, schedules, EMA, precision, rendering."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from gan_lab.config import HardwareSchema
from gan_lab.data.base import BatchSampler
from gan_lab.engine import schedules
from gan_lab.engine.loop import render_samples, train_step
from gan_lab.engine.precision import Hardware
from gan_lab.train import setup
from gan_lab.tricks.ema import EMA
from tests.conftest import TINY, compose_train


def _hw(**values):
    return OmegaConf.merge(OmegaConf.structured(HardwareSchema), values)


def _setup(*overrides):
    cfg = compose_train([*TINY, "dataset.count=64", *overrides])
    state, data, hw = setup(cfg)
    return cfg, state, data, hw, BatchSampler(len(data), cfg.train.batch_size, cfg.seed)


def test_n_critic_draws_fresh_batches_per_d_step():
    cfg, state, data, hw, sampler = _setup("train.n_critic=3")
    d_steps = []
    state.task.after_d_step = lambda: d_steps.append(state.batches)
    for _ in range(2):
        train_step(state, data, sampler, hw, cfg.train)
    assert d_steps == [1, 2, 3, 4, 5, 6] and state.step == 2 and state.images_seen == 2 * 3 * 8


def test_gradient_clipping_bounds_the_update_norm():
    cfg, state, data, hw, sampler = _setup("train.clip_grad_D=1e-3", "optim.D._target_=torch.optim.SGD",
                                           "~optim.D.betas", "optim.D.lr=1.0")
    before = [p.detach().clone() for p in state.task.D.parameters()]
    train_step(state, data, sampler, hw, cfg.train)
    # With SGD(lr=1) the D step moves D's weights by exactly the clipped gradient;
    # the G step that follows leaves D alone (D is frozen while G trains).
    delta = torch.cat([(p.detach() - b).flatten() for p, b in zip(state.task.D.parameters(), before)])
    assert 0 < delta.norm().item() <= 1e-3 * 1.0001


def test_schedules_are_pure_functions_of_the_step():
    decay = schedules.LinearDecay(start=0.5)
    assert [decay(s, 100) for s in (0, 49, 50, 75, 100)] == [1.0, 1.0, 1.0, 0.5, 0.0]
    cosine = schedules.Cosine(warmup=10, floor=0.1)
    assert cosine(0, 100) == pytest.approx(0.1) and cosine(9, 100) == pytest.approx(1.0)
    assert cosine(100, 100) == pytest.approx(0.1)
    assert schedules.Constant()(12345, 10) == 1.0


def test_schedule_drives_the_optimizer_learning_rate():
    cfg, state, data, hw, sampler = _setup("schedule._target_=gan_lab.engine.schedules.LinearDecay",
                                           "+schedule.start=0.0", "train.steps=4")
    lrs = []
    for _ in range(4):
        train_step(state, data, sampler, hw, cfg.train)
        lrs.append(state.optimizers["G"].param_groups[0]["lr"])
    assert lrs == pytest.approx([2e-4 * f for f in (0.75, 0.5, 0.25, 0.0)])


def _ema_task() -> nn.Module:
    task = nn.Module()
    task.G = nn.Linear(3, 3)
    return task


def test_ema_is_the_exponential_average():
    task = _ema_task()
    ema = EMA(decay=0.9, rampup=None)
    ema.setup(task)
    start = task.G.weight.detach().clone()
    with torch.no_grad():
        task.G.weight.add_(1.0)
    ema.after_g_step(task)
    assert torch.allclose(ema.module.weight, 0.9 * start + 0.1 * task.G.weight)
    with pytest.raises(ValueError, match="decay"):
        EMA(decay=1.5)
    with pytest.raises(ValueError, match="rampup"):
        EMA(rampup=0.0)


def test_ema_rampup_forgets_the_initial_weights():
    # a constant live G after t updates: the initial weights keep prod(beta_1..t) of the average
    task = _ema_task()
    ramped, fixed = EMA(decay=0.999, rampup=0.05), EMA(decay=0.999, rampup=None)
    for ema in (ramped, fixed):
        ema.setup(task)
    start = task.G.weight.detach().clone()
    with torch.no_grad():
        task.G.weight.add_(1.0)
    for _ in range(1500):
        ramped.after_g_step(task)
        fixed.after_g_step(task)
    left = {name: (ema.module.weight - task.G.weight).abs().max().item() for name, ema in
            (("ramped", ramped), ("fixed", fixed))}
    assert left["fixed"] == pytest.approx(0.999 ** 1500, rel=1e-3)  # 22% of the start is left
    assert left["ramped"] < 1e-6
    assert ramped.beta(1) < 1e-5 and ramped.beta(100) == pytest.approx(0.5 ** 0.2)
    assert ramped.beta(10 ** 6) == 0.999  # capped by decay
    state = ramped.state_dict()
    again = EMA(decay=0.999, rampup=0.05)
    again.setup(_ema_task())
    again.load_state_dict(state)
    assert again.updates == 1500 and torch.equal(again.module.weight, ramped.module.weight)


def test_bf16_autocast_on_cpu():
    hw = Hardware(_hw(precision="bf16"), torch.device("cpu"))
    conv = nn.Conv2d(3, 4, 3)
    with hw.autocast():
        assert conv(torch.randn(1, 3, 8, 8)).dtype == torch.bfloat16
    assert not hw.scalers["G"].is_enabled()


def test_bf16_run_trains(tmp_path):
    cfg, state, data, hw, sampler = _setup("hardware.precision=bf16")
    stats = train_step(state, data, sampler, hw, cfg.train)
    assert torch.isfinite(torch.stack([torch.as_tensor(v, dtype=torch.float32) for v in stats.values()])).all()


def test_fp16_on_cpu_is_refused():
    from gan_lab.errors import ConfigError

    with pytest.raises(ConfigError, match="fp16 needs CUDA"):
        Hardware(_hw(precision="fp16"), torch.device("cpu"))


def test_cpu_flushes_denormals():
    Hardware(_hw(flush_denormal=True), torch.device("cpu"))
    assert torch.tensor(1e-40).item() == 0.0  # a subnormal float32 reads as zero
    Hardware(_hw(flush_denormal=False), torch.device("cpu"))
    assert torch.tensor(1e-40).item() != 0.0


@pytest.mark.parametrize("model", ["dcgan", "pix2pix", "cgan"])
def test_rendering_does_not_change_training(tmp_path, model):
    from gan_lab.engine.recorder import Recorder

    cfg, state, data, hw, sampler = _setup(f"model={model}")
    state.fixed = state.task.fixed_inputs(data.batch(torch.arange(8)), 8)
    train_step(state, data, sampler, hw, cfg.train)
    weights = {k: v.clone() for k, v in state.task.state_dict().items()}
    rng = torch.get_rng_state()
    recorder = Recorder(tmp_path)
    render_samples(state, data, recorder)
    recorder.close()
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(v, weights[k]) for k, v in state.task.state_dict().items())
    assert state.task.G.training and state.task.D.training
