"""The engine's mechanisms: phases, freezing and hand-off, clipping, schedules, EMA, precision, finiteness, rendering."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from gan_lab.config import HardwareSchema
from gan_lab.engine import schedules
from gan_lab.engine.loop import FiniteGuard, _mean_stats, render_samples, train_step
from gan_lab.engine.precision import Hardware, process_flags
from gan_lab.errors import NonFiniteLossError
from gan_lab.train import setup
from gan_lab.tricks.base import Trick
from gan_lab.tricks.ema import EMA
from gan_lab.ui import format_rate
from tests.conftest import TINY, compose_train


def _hw(**values):
    return OmegaConf.merge(OmegaConf.structured(HardwareSchema), values)


def _setup(*overrides):
    cfg = compose_train([*TINY, "dataset.count=64", *overrides])
    state, data, hw = setup(cfg)
    return cfg, state, data, hw


def _step(cfg, state, data, hw):
    return train_step(state, data, hw, cfg, FiniteGuard())


class _PhaseLog(Trick):
    """Records (player, step, batches drawn) after every optimizer step."""

    def __init__(self, state):
        self.state, self.seen = state, []

    def after_phase(self, task, player, step):
        self.seen.append((player, step, self.state.batches))


def test_n_critic_draws_fresh_batches_per_d_step():
    cfg, state, data, hw = _setup("train.n_critic=3")
    state.tricks["log"] = log = _PhaseLog(state)
    for _ in range(2):
        _step(cfg, state, data, hw)
    assert log.seen == [("D", 1, 1), ("D", 1, 2), ("D", 1, 3), ("G", 1, 3),
                        ("D", 2, 4), ("D", 2, 5), ("D", 2, 6), ("G", 2, 6)]
    assert state.step == 2


def _count_forwards(net, inputs=None):
    calls = []

    def hook(module, args, out):
        calls.append(out.requires_grad)
        if inputs is not None:
            inputs.append(args[0])

    net.register_forward_hook(hook)
    return calls


def test_hand_off_builds_g_graph_only_on_the_last_critic_step():
    cfg, state, data, hw = _setup("train.n_critic=3")
    calls = _count_forwards(state.task.G)
    _step(cfg, state, data, hw)
    # three D steps, the first two without G's graph; the G step reuses the last fake (DCGAN code)
    assert calls == [False, False, True]


def test_wasserstein_generator_draws_fresh_z():
    cfg, state, data, hw = _setup("model=wgan", "train.n_critic=2")
    z = []
    calls = _count_forwards(state.task.G, z)
    _step(cfg, state, data, hw)
    assert calls == [False, False, True]  # two critic steps without G's graph, then G's own draw (Algorithm 1)
    assert not torch.equal(z[1], z[2])


@pytest.mark.parametrize("model,trick", [("dcgan", "instance_noise"), ("dcgan", "gradient_penalty"),
                                         ("cgan", "instance_noise")])
def test_a_trick_that_draws_noise_leaves_the_latents_alone(model, trick):
    """Latents (z, cGAN labels) come from the task's own stream: the global RNG draws of a trick (instance
    noise, the penalty's interpolates) change none of the inputs G gets, step after step."""
    def generator_inputs(tricks):
        cfg, state, data, hw = _setup(f"model={model}", f"tricks=[{tricks}]")
        seen = []
        state.task.G.register_forward_pre_hook(lambda module, args: seen.append(args))
        for _ in range(3):
            _step(cfg, state, data, hw)
        return seen

    plain, noisy = generator_inputs(""), generator_inputs(trick)
    assert len(plain) == len(noisy) == 3  # one G forward per step: the D step hands its fake to the G step
    for a, b in zip(plain, noisy):
        assert len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def test_players_are_frozen_outside_their_phase():
    cfg, state, data, hw = _setup()
    seen = []
    task = state.task
    d_loss, g_loss = task.d_loss, task.g_loss

    def spy(loss):
        def run(batch, carry):
            seen.append({n: all(p.requires_grad for p in net.parameters()) for n, net in task.players().items()})
            return loss(batch, carry)
        return run

    task.d_loss, task.g_loss = spy(d_loss), spy(g_loss)
    task.reuse_fake = False
    _step(cfg, state, data, hw)
    assert seen == [{"G": False, "D": True}, {"G": True, "D": False}]


def test_gradient_clipping_bounds_the_update_norm():
    cfg, state, data, hw = _setup("train.clip_grad.D=1e-3", "optim.D._target_=torch.optim.SGD",
                                  "~optim.D.betas", "optim.D.lr=1.0")
    before = [p.detach().clone() for p in state.task.D.parameters()]
    _step(cfg, state, data, hw)
    # With SGD(lr=1) the D step moves D's weights by exactly the clipped gradient;
    # the G step that follows leaves D alone (D is frozen while G trains).
    delta = torch.cat([(p.detach() - b).flatten() for p, b in zip(state.task.D.parameters(), before)])
    assert 0 < delta.norm().item() <= 1e-3 * 1.0001


def test_schedules_are_pure_functions_of_the_step():
    decay = schedules.LinearDecay(100, start=0.5)
    assert [decay(s) for s in (0, 49, 50, 75, 100, 150)] == [1.0, 1.0, 1.0, 0.5, 0.0, 0.0]
    cosine = schedules.Cosine(100, warmup=10, floor=0.1)
    assert cosine(0) == pytest.approx(0.1) and cosine(9) == pytest.approx(1.0)
    assert cosine(100) == pytest.approx(0.1)
    assert schedules.Constant(10)(12345) == 1.0
    with pytest.raises(ValueError, match="schedule.total_steps"):
        schedules.LinearDecay(0)


def test_schedule_drives_the_optimizer_learning_rate():
    cfg, state, data, hw = _setup("schedule._target_=gan_lab.engine.schedules.LinearDecay",
                                  "+schedule.start=0.0", "train.steps=4")
    lrs = []
    for _ in range(4):
        _step(cfg, state, data, hw)
        lrs.append(state.optimizers["G"].param_groups[0]["lr"])
    assert lrs == pytest.approx([2e-4 * f for f in (0.75, 0.5, 0.25, 0.0)])


def test_finite_guard_names_the_first_bad_step(tmp_path):
    guard = FiniteGuard()
    guard.add(torch.tensor(1.0), "loss/D", 1)
    guard.add(torch.tensor(float("nan")), "loss/G", 2)
    guard.add(torch.tensor(float("inf")), "loss/D", 3)
    with pytest.raises(NonFiniteLossError, match="loss/G is nan at step 2"):
        guard.check(tmp_path)
    guard.check(tmp_path)  # checked losses are forgotten


def test_mean_stats_cover_terms_logged_on_some_steps_only():
    assert _mean_stats([{"a": torch.tensor(1.0)}, {"a": torch.tensor(3.0), "lazy": torch.tensor(5.0)}]) == \
        {"a": 2.0, "lazy": 5.0}


def test_rates_below_ten_keep_two_digits():
    assert [format_rate(r) for r in (0.26, 3.14159, 42.4, 1234.5)] == ["0.26", "3.1", "42", "1234"]


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
    ema.after_phase(task, "D", 1)  # only G steps move the average
    assert torch.equal(task.G_ema.weight, start)
    ema.after_phase(task, "G", 1)
    assert torch.allclose(task.G_ema.weight, 0.9 * start + 0.1 * task.G.weight)
    with pytest.raises(ValueError, match="decay"):
        EMA(decay=1.5)
    with pytest.raises(ValueError, match="rampup"):
        EMA(rampup=0.0)


def test_ema_rampup_forgets_the_initial_weights():
    # a constant live G after t updates: the initial weights keep prod(beta_1..t) of the average
    task = _ema_task()
    ramped, fixed = EMA(decay=0.999, rampup=0.05), EMA(decay=0.999, rampup=None)
    averages = {}
    for name, ema in (("ramped", ramped), ("fixed", fixed)):
        ema.setup(task)
        averages[name] = task.G_ema
    with torch.no_grad():
        task.G.weight.add_(1.0)
    for step in range(1, 1501):
        ramped.update(averages["ramped"], task.G, step)
        fixed.update(averages["fixed"], task.G, step)
    left = {name: (avg.weight - task.G.weight).abs().max().item() for name, avg in averages.items()}
    assert left["fixed"] == pytest.approx(0.999 ** 1500, rel=1e-3)  # 22% of the start is left
    assert left["ramped"] < 1e-6
    assert ramped.beta(1) < 1e-5 and ramped.beta(100) == pytest.approx(0.5 ** 0.2)
    assert ramped.beta(10 ** 6) == 0.999  # capped by decay: a function of the step, no state of its own
    assert ramped.state_dict() == {}


def test_bf16_autocast_on_cpu():
    hw = Hardware(_hw(precision="bf16"), torch.device("cpu"))
    conv = nn.Conv2d(3, 4, 3)
    with hw.autocast():
        assert conv(torch.randn(1, 3, 8, 8)).dtype == torch.bfloat16
    assert not hw.scalers(["G", "D"])["G"].is_enabled()


def test_bf16_run_trains(tmp_path):
    cfg, state, data, hw = _setup("hardware.precision=bf16")
    stats = _step(cfg, state, data, hw)
    assert torch.isfinite(torch.stack([torch.as_tensor(v, dtype=torch.float32) for v in stats.values()])).all()


@pytest.mark.parametrize("make, fused_optim, fused", [
    (partial(torch.optim.Adam, lr=1e-3), True, True),
    (partial(torch.optim.SGD, lr=0.1, momentum=0.5), True, True),
    (partial(torch.optim.RMSprop, lr=1e-3), True, None),  # no fused kernel: built as configured
    (partial(torch.optim.Adam, lr=1e-3, fused=False), True, False),  # the config's own choice wins
    (partial(torch.optim.Adam, lr=1e-3), False, None)])
def test_optimizers_are_fused_where_a_kernel_exists(make, fused_optim, fused):
    net = nn.Linear(3, 2)
    opt = Hardware(_hw(fused_optim=fused_optim), torch.device("cpu")).optimizer(make, net.parameters())
    assert opt.param_groups[0].get("fused") == fused
    net(torch.randn(4, 3)).sum().backward()
    before = net.weight.detach().clone()
    opt.step()
    assert not torch.equal(before, net.weight)


def test_fp16_on_cpu_is_refused():
    from gan_lab.errors import ConfigError

    with pytest.raises(ConfigError, match="fp16 needs CUDA"):
        Hardware(_hw(precision="fp16"), torch.device("cpu"))


def test_cpu_flushes_denormals_inside_the_app_only():
    with process_flags(_hw(flush_denormal=True), torch.device("cpu")):
        assert torch.tensor(1e-40).item() == 0.0  # a subnormal float32 reads as zero
    assert torch.tensor(1e-40).item() != 0.0  # restored: nothing leaks into later code
    with process_flags(_hw(flush_denormal=False), torch.device("cpu")):
        assert torch.tensor(1e-40).item() != 0.0


@pytest.mark.parametrize("model", ["dcgan", "pix2pix", "cgan"])
def test_rendering_does_not_change_training(tmp_path, model):
    from gan_lab.engine.recorder import Recorder

    cfg, state, data, hw = _setup(f"model={model}")
    state.draw_fixed(data, 8)
    _step(cfg, state, data, hw)
    weights = {k: v.clone() for k, v in state.task.state_dict().items()}
    rng, latent = torch.get_rng_state(), state.task.latent.get_state()
    recorder = Recorder(tmp_path)
    paths = render_samples(state, recorder)
    recorder.close()
    assert [p.name for p in paths] == ["fixed_0000001.png"]
    assert torch.equal(torch.get_rng_state(), rng) and torch.equal(state.task.latent.get_state(), latent)
    assert all(torch.equal(v, weights[k]) for k, v in state.task.state_dict().items())
    assert all(m.training for m in state.task.G.modules()) and state.task.D.training
