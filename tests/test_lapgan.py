"""LAPGAN (Denton et al. 2015): the Laplacian pyramid round trip, level sizes, coarse-to-fine sampling through the
upsampled coarser level, independent levels, class conditioning at every level, visuals, config checks and a CLI
run with `gan-lab sample`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from gan_lab.engine.inference import inference
from gan_lab.errors import ConfigError
from gan_lab.losses.adversarial import NonSaturating
from gan_lab.models.lapgan import (LaplacianTask, PyramidDiscriminator, PyramidGenerator, down, gaussian_pyramid,
                                   laplacian_pyramid, reconstruct, up)
from gan_lab.train import setup
from tests.conftest import TINY, compose_train


def lapgan_task(levels=3, channels=3, num_classes=0, image_size=32):
    conditional = num_classes > 0
    G = PyramidGenerator(image_size, channels, levels, z_dim=8, hidden=16, width=4, num_classes=num_classes,
                         conditional=conditional)
    D = PyramidDiscriminator(image_size, channels, levels, hidden=16, width=4, num_classes=num_classes,
                             conditional=conditional)
    task = LaplacianTask(G, D, NonSaturating(), conditional=conditional)
    task.seed_latent(0)
    return task


def batch(n=6, channels=3, num_classes=0):
    out = {"real": torch.rand(n, channels, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1}
    if num_classes:
        out["label"] = torch.arange(n) % num_classes
    return out


# ---------------------------------------------------------------- the pyramid


@pytest.mark.parametrize("levels", [2, 3, 4])  # K = 1..3
@pytest.mark.parametrize("dtype,tolerance", [(torch.float32, 1e-6), (torch.float64, 1e-12)])
def test_reconstruct_returns_the_image(levels, dtype, tolerance):
    image = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(levels), dtype=dtype) * 2 - 1
    pyramid = laplacian_pyramid(image, levels)
    assert len(pyramid) == levels
    assert (reconstruct(pyramid) - image).abs().max() <= tolerance
    assert pyramid[0].abs().max() > 0.1  # a real band-pass image, not a trivial split


def test_level_sizes_and_the_coarsest_coefficient_is_the_gaussian_level():
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    pyramid, gaussian = laplacian_pyramid(image, 3), gaussian_pyramid(image, 3)
    assert [h.shape[-1] for h in pyramid] == [32, 16, 8]
    assert torch.equal(pyramid[-1], gaussian[-1]) and torch.equal(gaussian[-1], down(down(image)))
    assert torch.equal(pyramid[0], image - up(gaussian[1]))  # h_k = I_k - u(I_{k+1})


def test_down_is_antialiased_and_both_keep_constants():
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None]) % 2 * 2.0 - 1  # the highest frequency
    assert down(checker.view(1, 1, 32, 32)).abs().max() < 0.2  # filtered out, not aliased to a pattern
    flat = torch.full((1, 3, 16, 16), 0.3)
    torch.testing.assert_close(down(flat), flat[..., :8, :8])
    torch.testing.assert_close(up(flat), torch.full((1, 3, 32, 32), 0.3))


def test_bad_levels_are_config_errors_naming_the_key():
    with pytest.raises(ConfigError, match="model.generator.levels=4"):
        PyramidGenerator(32, 3, levels=4)  # 32 -> 16 -> 8 -> 4: the coarsest would be 4 px
    with pytest.raises(ConfigError, match="model.generator.levels"):
        PyramidGenerator(32, 3, levels=0)
    with pytest.raises(ConfigError, match="model.conditional"):
        PyramidGenerator(32, 3, conditional=True, num_classes=0)


# ---------------------------------------------------------------- sampling coarse to fine


@torch.no_grad()
def test_each_finer_level_adds_its_residual_to_the_upsampled_coarser_sample():
    task = lapgan_task()
    for level in task.G.levels[:-1]:  # zero generators at the finer levels
        last = level.net[-1][0]
        last.weight.zero_()
        last.bias.zero_()
    task.G.levels[-1].net[-1][0].bias.fill_(0.2)  # a coarse sample with values inside [-1, 1] after clamping
    out = task.sample(5, task.G)
    coarse = task.G.levels[-1](out["z"])
    assert coarse.shape == (5, 3, 8, 8)
    torch.testing.assert_close(out["samples"], up(up(coarse)).clamp(-1, 1), rtol=0, atol=0)


@torch.no_grad()
def test_sampling_feeds_each_level_the_upsampled_sample_above_it_and_clamps_only_the_final_image():
    task = lapgan_task()
    task.G.levels[-1].net[-1][0].bias.fill_(3.0)  # a coarse sample far outside [-1, 1]
    inputs = task.sample_inputs(4)
    images = task.generate(task.G, inputs)
    assert [x.shape[-1] for x in images] == [8, 16, 32] and images[0].max() > 1  # intermediate levels unclamped
    for k, (coarse, fine) in zip((1, 0), zip(images, images[1:])):
        torch.testing.assert_close(fine, up(coarse) + task.G.levels[k](inputs[f"noise{k}"], up(coarse)))
    out = task.sample(4, task.G, **inputs)["samples"]
    torch.testing.assert_close(out, images[-1].clamp(-1, 1))
    assert out.max() <= 1 and out.min() >= -1


def test_noise_is_uniform_from_the_latent_stream_and_given_inputs_are_kept():
    task = lapgan_task()
    inputs = task.sample_inputs(256)
    assert inputs["z"].shape == (256, 8) and inputs["noise0"].shape == (256, 1, 32, 32)
    assert inputs["noise1"].shape == (256, 1, 16, 16)
    assert -1 <= inputs["z"].min() < -0.95 and 0.95 < inputs["z"].max() <= 1  # U[-1, 1]
    task.seed_latent(0)
    assert torch.equal(task.sample_inputs(256)["noise0"], inputs["noise0"])  # drawn from the seeded stream
    with inference(task, task.G):
        a = task.sample(3, task.G)
        b = task.sample(3, task.G, z=a["z"], noise0=a["noise0"], noise1=a["noise1"])
    assert torch.equal(a["samples"], b["samples"])


# ---------------------------------------------------------------- independent levels


def _gradients(loss, modules):
    params = [p for m in modules for p in m.parameters()]
    grads = torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)
    return [sum(0.0 if g is None else float(g.abs().sum()) for g, p in zip(grads, params) if p in set(m.parameters()))
            for m in modules]


def test_each_level_trains_on_the_real_pyramid():
    task = lapgan_task()
    real = batch()["real"]
    levels = task.real_levels(real)
    for k, (target, coarse) in enumerate(levels[:-1]):  # l_k = u(d(I_k)) of the real image, h_k = I_k - l_k
        fine = gaussian_pyramid(real, 3)[k]
        torch.testing.assert_close(coarse, up(down(fine)), rtol=0, atol=0)
        torch.testing.assert_close(target + coarse, fine)
    assert levels[-1][1] is None and torch.equal(levels[-1][0], down(down(real)))


def test_a_level_loss_reaches_only_its_own_level():
    task = lapgan_task()
    losses, stats, carry = task.d_level_losses(batch())
    assert len(losses) == 3 and {"level0/D_accuracy", "level2/loss/D", "loss/D", "D(x)"} <= stats.keys()
    for k, loss in enumerate(losses):
        reached = _gradients(loss, list(task.D.levels))
        assert reached[k] > 0 and all(r == 0 for j, r in enumerate(reached) if j != k)
        assert all(g == 0 for g in _gradients(loss, list(task.G.levels)))  # D's loss never reaches G
    g_losses, g_stats = task.g_level_losses(batch(), carry)
    assert {"level0/loss/G", "level1/loss/G", "level2/loss/G"} <= g_stats.keys()
    for k, loss in enumerate(g_losses):
        reached = _gradients(loss, list(task.G.levels))
        assert reached[k] > 0 and all(r == 0 for j, r in enumerate(reached) if j != k)


def test_summed_loss_trains_each_level_as_if_alone():
    """The phase loss is the sum of the levels' losses; its gradient on level k is level k's own gradient, so a
    per-parameter optimizer step moves each level exactly as training that level alone would."""
    task = lapgan_task()
    losses, _, _ = task.d_level_losses(batch())
    total = sum(losses)
    params = list(task.D.parameters())
    together = dict(zip(map(id, params), torch.autograd.grad(total, params, retain_graph=True)))
    for k, loss in enumerate(losses):
        own = list(task.D.levels[k].parameters())
        alone = torch.autograd.grad(loss, own, retain_graph=True)
        for p, g in zip(own, alone):
            torch.testing.assert_close(together[id(p)], g, rtol=0, atol=0)


def test_one_engine_step_moves_every_level_and_logs_each_levels_accuracy(tmp_path):
    from gan_lab.engine.loop import FiniteGuard, train_step

    cfg = compose_train([*TINY, "model=lapgan", "dataset.count=64", "model.generator.width=4",
                         "model.discriminator.width=4", "model.generator.hidden=16", "model.discriminator.hidden=16"])
    state, data, hw = setup(cfg)
    before = {k: v.clone() for k, v in state.task.state_dict().items()}
    stats = train_step(state, data, hw, cfg, FiniteGuard())
    after = state.task.state_dict()
    for player in ("G", "D"):
        for k in range(3):
            keys = [key for key in before if key.startswith(f"{player}.levels.{k}.")]
            assert keys and any(not torch.equal(before[key], after[key]) for key in keys), (player, k)
    assert all(0 <= float(stats[f"level{k}/D_accuracy"]) <= 1 for k in range(3))


# ---------------------------------------------------------------- class conditioning


@torch.no_grad()
def test_class_conditioning_reaches_every_level():
    task = lapgan_task(num_classes=4)
    inputs = task.sample_inputs(2, label=torch.tensor([0, 0]))
    other = {**inputs, "label": torch.tensor([1, 3])}
    coarse = torch.rand(2, 3, 16, 16) * 2 - 1  # l_1 (16 px); l_0 = u(l_1)
    for k, level in enumerate(task.G.levels):
        args = (inputs["z"],) if k == 2 else (inputs[f"noise{k}"], up(coarse) if k == 0 else coarse)
        a, b = level(*args, inputs["label"]), level(*args, other["label"])
        assert not torch.allclose(a, b), k
    task.D.eval()
    real = task.real_levels(batch(n=2)["real"])
    for k, (target, cond) in enumerate(real):
        assert not torch.allclose(task.D(k, target, cond, inputs["label"]), task.D(k, target, cond, other["label"])), k
    with pytest.raises(ConfigError, match="label"):
        task.d_loss({"real": batch()["real"]})


def test_conditional_run_shows_one_class_per_column(tmp_path):
    task = lapgan_task(num_classes=4)
    fixed = task.fixed_inputs(batch(num_classes=4), 8)
    assert fixed["label"].tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    with inference(task, task.G):
        visuals = task.visuals(fixed, task.G)
    assert visuals["fixed"].nrow == 4


# ---------------------------------------------------------------- visuals, config, CLI


def test_pyramid_visual_shows_every_level():
    task = lapgan_task()
    fixed = task.fixed_inputs(batch(), 16)
    with inference(task, task.G):
        visuals = task.visuals(fixed, task.G)
    assert visuals["fixed"].images.shape == (16, 3, 32, 32) and visuals["fixed"].nrow == 4
    pyramid = visuals["pyramid"]
    assert pyramid.nrow == 7  # the coarse sample, then (input, residual, result) for each of two finer levels
    assert pyramid.images.shape == (8 * 7, 3, 32, 32) and pyramid.images.abs().max() <= 1
    with inference(task, task.G):
        images = task.generate(task.G, fixed)
    torch.testing.assert_close(pyramid.images[6], images[-1][0].clamp(-1, 1))  # row 0 ends with the final image


def test_interpolation_walks_the_coarsest_z_and_holds_the_rest():
    task = lapgan_task()
    given = task.interpolation(rows=2, steps=5)
    z = given["z"].view(2, 5, -1)
    torch.testing.assert_close(z[:, 2], (z[:, 0] + z[:, 4]) / 2)  # a straight line
    assert torch.equal(given["noise0"][0], given["noise0"][4]) and not torch.equal(given["noise0"][0], given["noise0"][5])
    with inference(task, task.G):
        assert task.sample(10, task.G, **given)["samples"].shape == (10, 3, 32, 32)


def test_config_composes_with_paper_sizes_and_mnist():
    cfg = compose_train(["model=lapgan"])
    assert cfg.model.generator.hidden == 1200 and cfg.model.discriminator.hidden == 600
    assert cfg.model.generator.z_dim == 100 and cfg.model.discriminator.levels == 3
    assert cfg.optim.G._target_ == "torch.optim.SGD" and cfg.optim.D.lr == 0.02 and cfg.optim.G.momentum == 0.5
    mnist = compose_train(["experiment=lapgan_mnist"])
    assert mnist.dataset.image_size == 32 and mnist.model._target_.endswith("LaplacianTask")
    conditional = compose_train(["model=lapgan", "model.conditional=true"])
    assert conditional.model.generator.conditional and conditional.model.discriminator.num_classes == 4


def test_cli_trains_conditional_and_samples(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run_dir = tmp_path / "run"
    small = ["model.generator.width=4", "model.discriminator.width=4", "model.generator.hidden=16",
             "model.discriminator.hidden=16", "dataset.count=64"]
    subprocess.run([sys.executable, "-m", "gan_lab", "train", *TINY, "model=lapgan", "model.conditional=true", *small,
                    f"hydra.run.dir={run_dir}"], check=True, env=env, capture_output=True)
    assert (run_dir / "samples" / "pyramid_0000004.png").exists()
    for name, extra in (("grid", []), ("walk", ["interpolate=true"])):
        subprocess.run([sys.executable, "-m", "gan_lab", "sample", f"ckpt={run_dir}", "n=8",
                        f"out={tmp_path / name}.png", *extra], check=True, env=env, capture_output=True)
    assert {p.name for p in tmp_path.glob("*.png")} == {"grid-fixed.png", "grid-pyramid.png", "walk.png"}
