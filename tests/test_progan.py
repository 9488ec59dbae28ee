"""Progressive GAN (Karras et al. 2018): the fade-in of G, D and the real images, the phase schedule, equalized
learning rate, pixel norm, the drift term, exact resume in the middle of a fade, and a CLI run through every
resolution."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from gan_lab.engine import checkpoint
from gan_lab.engine.loop import FiniteGuard, train_step
from gan_lab.engine.restore import restore
from gan_lab.errors import ConfigError
from gan_lab.models import blocks
from gan_lab.models.terms import CriticPass
from gan_lab.models.progan import (Discriminator, EqualizedConv2d, EqualizedLinear, Generator, PixelNorm,
                                   fade_reals, phase_at)
from gan_lab.train import setup
from gan_lab.tricks.drift import Drift
from gan_lab.tricks.gradient_penalty import GradientPenalty
from tests.conftest import TINY, compose_train, flat_model
from tests.test_resume import stop_and_resume

NARROW = ["model.generator.width=8", "model.discriminator.width=8", "dataset.count=64"]


def up(x, factor):
    return F.interpolate(x, scale_factor=factor, mode="nearest")


def at(net, level, alpha):
    net.set_phase(level, alpha)
    return net


# ---------------------------------------------------------------- growing networks


@torch.no_grad()
def test_generator_fades_the_new_block_over_the_upsampled_previous_output():
    torch.manual_seed(0)
    G = Generator(z_dim=8, image_size=16, channels=3, width=8)
    z = torch.randn(4, 8)
    previous = at(G, 1, 1.0)(z)  # 8x8, nearest-upsampled to 16x16
    assert previous.shape == (4, 3, 16, 16)
    torch.testing.assert_close(previous, up(previous[..., ::2, ::2], 2), rtol=0, atol=0)
    torch.testing.assert_close(at(G, 2, 0.0)(z), previous)
    new = at(G, 2, 1.0)(z)  # the new block's toRGB output, at full size
    torch.testing.assert_close(new, G.torgb[2](G.blocks[2](G.blocks[1](G.blocks[0](z)))))
    torch.testing.assert_close(at(G, 2, 0.3)(z), torch.lerp(previous, new, 0.3))  # the blend is linear in alpha
    G.torgb[1].weight.add_(1.0)  # the previous toRGB no longer matters once the fade is over
    torch.testing.assert_close(at(G, 2, 1.0)(z), new)
    assert not torch.allclose(at(G, 2, 0.5)(z), torch.lerp(previous, new, 0.5))


@torch.no_grad()
def test_discriminator_fades_the_new_fromrgb_path_over_the_downsampled_previous_one():
    torch.manual_seed(0)
    D = Discriminator(image_size=16, channels=3, width=8)
    x = torch.randn(8, 3, 16, 16)
    previous = at(D, 1, 1.0)(x)
    assert previous.shape == (8,)
    torch.testing.assert_close(at(D, 2, 0.0)(x), previous)
    new = at(D, 2, 1.0)(x)
    half = at(D, 2, 0.5)(x)
    assert not torch.allclose(half, previous) and not torch.allclose(half, new)
    D.fromrgb[1][0].weight.add_(1.0)  # the previous fromRGB no longer matters once the fade is over
    torch.testing.assert_close(at(D, 2, 1.0)(x), new)
    # D reads its full-size input average-pooled to the current resolution
    torch.testing.assert_close(at(D, 1, 1.0)(x), D(up(F.avg_pool2d(x, 2), 2)))


def test_real_images_fade_like_the_networks():
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    torch.testing.assert_close(fade_reals(x, 2, 1.0), x)
    torch.testing.assert_close(fade_reals(x, 1, 1.0), up(F.avg_pool2d(x, 2), 2))
    torch.testing.assert_close(fade_reals(x, 2, 0.0), fade_reals(x, 1, 1.0))
    at_4, at_8 = up(F.avg_pool2d(x, 4), 4), up(F.avg_pool2d(x, 2), 2)
    torch.testing.assert_close(fade_reals(x, 1, 0.25), torch.lerp(at_4, at_8, 0.25))


def test_phase_is_a_pure_function_of_the_step():
    # 2 stabilising steps per resolution, then 4 steps of fade-in; 16 px = 2 doublings
    phases = [phase_at(step, 2, 2, 4) for step in range(1, 16)]
    assert phases[:8] == [(0, 1.0), (0, 1.0), (1, 0.0), (1, 0.25), (1, 0.5), (1, 0.75), (1, 1.0), (1, 1.0)]
    assert phases[8:12] == [(2, 0.0), (2, 0.25), (2, 0.5), (2, 0.75)]
    assert set(phases[12:]) == {(2, 1.0)}  # the last resolution trains on
    long = [phase_at(step, 3, 10, 30) for step in range(1, 200)]
    assert [lv for lv, _ in long] == sorted(lv for lv, _ in long)
    for level in (1, 2, 3):  # alpha rises linearly from 0 within each fade
        alphas = [a for lv, a in long if lv == level and a < 1]
        assert len(alphas) == 30 and alphas[0] == 0.0
        assert all(b - a == pytest.approx(1 / 30) for a, b in zip(alphas, alphas[1:]))
    assert phase_at(1, 3, 0, 0) == (3, 1.0)  # no schedule: full size from the start


def test_begin_step_sets_the_phase_of_every_network_as_python_numbers():
    cfg = compose_train([*TINY, *NARROW, "model=progan", "model.stabilize_steps=1", "model.fade_steps=4",
                         "tricks=[ema]"])
    state, _, _ = setup(cfg)
    task = state.task
    # step 1 at 4x4, steps 2-5 fade in 8x8, step 6 at 8x8, step 7 fades in 16x16
    assert [task.begin_step(step) for step in range(1, 8)] == [False, True, False, False, False, True, True]
    task.begin_step(4)
    assert task.G.phase() == task.D.phase() == task.G_ema.phase() == (1, 0.5)
    assert type(task.G.level) is int and type(task.G.alpha) is float  # no tensor: no device sync per forward
    assert not any(name.endswith(("level", "alpha")) for name, _ in task.named_buffers())
    saved = task.state_dict()
    assert saved["G._extra_state"] == saved["G_ema._extra_state"] == {"level": 1, "alpha": 0.5}
    task.begin_step(1)
    task.load_state_dict(saved)
    assert task.G.phase() == task.D.phase() == task.G_ema.phase() == (1, 0.5)


# ---------------------------------------------------------------- layers


def test_equalized_layers_have_unit_variance_weights_and_the_he_scale():
    torch.manual_seed(0)
    conv, linear = EqualizedConv2d(64, 128, 3, gain=1.0), EqualizedLinear(512, 256)
    for layer, fan_in, gain in ((conv, 64 * 9, 1.0), (linear, 512, math.sqrt(2))):
        w = layer.weight.detach()
        assert abs(w.mean()) < 0.01 and abs(w.std() - 1) < 0.01
        assert layer.scale == pytest.approx(gain / math.sqrt(fan_in))
        assert (layer.bias == 0).all()
    x = torch.randn(16, 64, 8, 8)
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight * conv.scale, conv.bias, padding=1))
    y = linear(torch.randn(4096, 512))  # He's constant: unit-variance inputs give outputs of variance gain^2 = 2
    assert y.var().item() == pytest.approx(2.0, rel=0.05)


def test_pixel_norm_gives_unit_mean_square_per_pixel():
    x = torch.randn(4, 16, 5, 5) * torch.rand(4, 1, 5, 5).mul(10).add(0.1)  # a different scale at every pixel
    torch.testing.assert_close(PixelNorm()(x).square().mean(1), torch.ones(4, 5, 5))


def test_networks_follow_the_paper():
    G, D = Generator(z_dim=16, image_size=32, width=16), Discriminator(image_size=32, width=16)
    assert sum(isinstance(m, blocks.MinibatchStddev) for m in D.modules()) == 1
    assert isinstance(D.blocks[0][0], blocks.MinibatchStddev)  # before the 4x4 block's first layer
    assert {m.negative_slope for m in (*G.modules(), *D.modules()) if isinstance(m, torch.nn.LeakyReLU)} == {0.2}
    plain = (torch.nn.Conv2d, torch.nn.Linear, torch.nn.BatchNorm2d)  # every layer is equalized, no batch norm
    assert not any(isinstance(m, plain) for m in (*G.modules(), *D.modules()))
    assert sum(isinstance(m, PixelNorm) for m in G.modules()) == 1 + 2 * 4  # the latent and every conv of G
    assert [G.channels(s) for s in range(6)] == [16] * 6 and Generator(8, 4, width=512).channels(9) == 16  # Table 2
    with pytest.raises(ConfigError, match="dataset.image_size=48"):
        Generator(image_size=48)


# ---------------------------------------------------------------- drift


def test_drift_is_eps_times_the_mean_squared_real_score():
    seen = CriticPass(real_logits=torch.tensor([2.0, -4.0]))  # D's scores of the real batch
    torch.testing.assert_close(Drift().penalty(None, seen), torch.tensor(0.001 * (4 + 16) / 2))
    torch.testing.assert_close(Drift(eps_drift=0.5).penalty(None, seen), torch.tensor(0.5 * 10))
    with pytest.raises(ValueError, match=r"tricks\.drift\.eps_drift"):
        Drift(eps_drift=0.0)


def test_drift_reuses_the_critics_scores_of_the_real_batch():
    state, data, _ = setup(compose_train([*TINY, *NARROW, "model=progan"]))
    scores = []
    state.task.D.register_forward_hook(lambda module, args, out: scores.append(out.detach()))
    out = state.task.d_loss(data.batch(torch.arange(8)))
    assert len(scores) == 3  # the real batch, the generated one, the gradient penalty's interpolates
    torch.testing.assert_close(out.stats["penalty/drift"], 0.001 * scores[0].square().mean())


def test_paper_defaults():
    cfg = compose_train(["model=progan"])
    assert cfg.loss._target_.endswith("Wasserstein") and cfg.train.n_critic == 1
    assert cfg.tricks.gradient_penalty.lambda_ == 10 and cfg.tricks.drift.eps_drift == 0.001
    for net in ("G", "D"):
        assert cfg.optim[net].lr == 1e-3 and list(cfg.optim[net].betas) == [0.0, 0.99] and cfg.optim[net].eps == 1e-8
    assert set(compose_train(["model=progan", "tricks=[ema]"]).tricks) == {"gradient_penalty", "drift", "ema"}
    state, _, _ = setup(compose_train([*TINY, *NARROW, "model=progan"]))
    assert [type(p) for p in state.task.penalties] == [GradientPenalty, Drift]
    with pytest.raises(ConfigError, match="model.fade_steps"):
        setup(compose_train([*TINY, *NARROW, "model=progan", "model.fade_steps=-1"]))
    with pytest.raises(ConfigError, match="model.discriminator.mbstd_group=4 must divide train.batch_size=6"):
        setup(compose_train([*TINY, *NARROW, "model=progan", "train.batch_size=6"]))


# ---------------------------------------------------------------- training


def test_each_new_stage_starts_with_fresh_adam_moments():
    # stage boundaries of stabilize 2 / fade 2: step 3 (fade in 8x8) and step 5 (train at 8x8)
    cfg = compose_train([*TINY, *NARROW, "model=progan", "model.stabilize_steps=2", "model.fade_steps=2"])
    state, data, hw = setup(cfg)
    counts = []
    for _ in range(5):
        train_step(state, data, hw, cfg, FiniteGuard())
        counts.append(int(next(iter(state.optimizers["G"].state.values()))["step"]))
    assert counts == [1, 2, 1, 2, 1]


def test_stop_mid_fade_and_resume_equals_uninterrupted(tmp_path):
    # step 1 at 4x4, steps 2-5 fade in 8x8 (alpha 0, .25, .5, .75), step 6 at 8x8: the stop after step 3 is mid-fade
    a, _ = stop_and_resume(tmp_path, [*TINY, *NARROW, "model=progan", "model.stabilize_steps=1",
                                      "model.fade_steps=4", "tricks=[ema]"])
    assert flat_model(a)["G._extra_state"] == flat_model(a)["G_ema._extra_state"] == {"level": 1, "alpha": 1.0}
    # eval/sample of the mid-fade checkpoint generate at its phase (EMA included)
    stopped = restore(tmp_path / "part" / "checkpoints" / "step_0000003.pt", torch.device("cpu"))
    assert stopped.generator is not stopped.task.G and stopped.generator.phase() == stopped.task.D.phase() == (1, 0.25)
    assert stopped.generator(torch.randn(2, stopped.generator.z_dim)).shape == (2, 3, 32, 32)


def test_cli_run_grows_through_every_resolution(tmp_path):
    # 1 step per stage: 4x4 at step 1, then each doubling fades in (alpha 0) and stabilises: 32x32 from step 6
    cmd = [sys.executable, "-m", "gan_lab", "train", "model=progan", "train.steps=7", "model.stabilize_steps=1",
           "model.fade_steps=1", *TINY[1:], *NARROW, f"hydra.run.dir={tmp_path}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    log = (tmp_path / "train.log").read_text()
    for size in (8, 16, 32):
        assert f"fading in {size}x{size}" in log and f"training at {size}x{size}" in log
    state = checkpoint.load(tmp_path / "checkpoints" / "last.pt")
    flat = flat_model(state)
    assert state["step"] == 7 and flat["G._extra_state"]["level"] == flat["D._extra_state"]["level"] == 3
    assert state["last_losses"]["progan/resolution"] == 32 and "penalty/drift" in state["last_losses"]
