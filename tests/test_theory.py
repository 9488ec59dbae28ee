"""`gan-lab theory` (issue 16): the closed forms its figures stand on, and the figures at small sizes."""

from __future__ import annotations

import json
import math

import pytest
import torch
from omegaconf import OmegaConf

from gan_lab.theory import closed_form as cf
from gan_lab.theory.critic import d_loss_on, load_loss, loss_names, toy_critic, train_critic, unbounded
from gan_lab.theory.games import play
from tests.test_cli import gan_lab


def test_js_of_disjoint_supports_is_log_2():
    f64 = dict(dtype=torch.float64)
    p, q = torch.tensor([0.5, 0.5, 0.0, 0.0], **f64), torch.tensor([0.0, 0.0, 0.25, 0.75], **f64)
    assert cf.js(p, q) == pytest.approx(math.log(2), abs=1e-12)
    assert cf.kl(p, q) == math.inf
    assert cf.js(p, p) == 0.0
    overlap = torch.tensor([0.25, 0.25, 0.5, 0.0], **f64)
    assert 0 < cf.js(p, overlap) < math.log(2)


@pytest.mark.parametrize("theta", [-1.0, -0.3, 0.0, 0.5])
def test_parallel_lines_w1_is_abs_theta(theta):
    """Against the exact optimal transport between 300 independent samples of each line (scipy's assignment
    solver): every pair is |theta| apart across, so W1 >= |theta|; and W1 <= |theta| + the samples' own W1 along
    the lines (sqrt(theta^2 + d^2) <= |theta| + d), which goes to 0 with more samples."""
    linear_sum_assignment = pytest.importorskip("scipy.optimize").linear_sum_assignment
    closed = cf.parallel_lines(theta)
    assert closed["W1"] == abs(theta)
    assert closed["JS"] == (math.log(2) if theta else 0.0) and closed["KL"] == (math.inf if theta else 0.0)

    def w1(theta: float) -> float:
        a, b = cf.parallel_lines_sample(theta, 300, torch.Generator().manual_seed(1))
        cost = torch.cdist(a.double(), b.double())
        rows, cols = linear_sum_assignment(cost.numpy())
        return float(cost[rows, cols].mean())

    along = w1(0.0)
    assert along < 0.05
    assert abs(theta) - 1e-9 <= w1(theta) <= abs(theta) + along + 1e-9


def test_optimal_d_of_two_gaussians():
    data, gen = (0.0, 1.0), (2.0, 1.0)
    x = torch.tensor([-1.0, 0.0, 1.0, 2.0, 5.0], dtype=torch.float64)
    # equal stds: p_data / p_g = exp(2 - 2x), so D* is the sigmoid of the log-ratio 2 - 2x
    assert torch.allclose(cf.optimal_d(x, data, gen), torch.sigmoid(2 - 2 * x))
    assert float(cf.optimal_d(torch.tensor([1.0]), data, gen)) == pytest.approx(0.5)  # the midpoint
    assert cf.js_gaussians(data, data) == pytest.approx(0.0, abs=1e-12)
    assert cf.js_gaussians((0.0, 0.1), (50.0, 0.1)) == pytest.approx(math.log(2), abs=1e-9)


@pytest.mark.parametrize("lr", [0.05, 0.1, 0.3])
def test_xy_simultaneous_steps_grow_the_radius_by_sqrt_1_plus_lr2(lr):
    path = play("simultaneous", lr, 20, (0.6, -0.8))
    radii = path.norm(dim=1)
    assert torch.allclose(radii[1:] / radii[:-1], torch.full((20,), math.sqrt(1 + lr**2), dtype=torch.float64),
                          rtol=1e-12)
    extra = play("extragradient", lr, 20, (0.6, -0.8)).norm(dim=1)
    assert torch.allclose(extra[1:] / extra[:-1], torch.full((20,), cf.xy_growth(lr, "extragradient"),
                                                             dtype=torch.float64), rtol=1e-12)
    alternating = play("alternating", lr, 200, (0.6, -0.8)).norm(dim=1)
    assert alternating.max() < 1 + lr and alternating.min() > 1 - lr  # bounded: it circles
    assert play("simultaneous", lr, 200, (0.6, -0.8), gamma=1.0)[-1].norm() < 0.5  # R1 damps it


def test_unbounded_losses_are_the_critic_games():
    flagged = {name for name in loss_names() if unbounded(load_loss(name, "loss"))}
    assert {"wasserstein", "energy"} <= flagged
    assert not flagged & {"minimax", "nonsaturating", "maxlikelihood", "hinge", "leastsquares"}


def test_saturation_draws_a_new_loss_and_lists_one_it_cannot_run(tmp_path, monkeypatch):
    """A loss added to configs/loss is drawn without new code; one the toy cannot build is listed with its reason."""
    pytest.importorskip("matplotlib")
    from gan_lab.theory import critic, games

    group = tmp_path / "loss"
    group.mkdir()
    (group / "minimax.yaml").write_text((critic.LOSSES / "minimax.yaml").read_text())
    (group / "smoothed.yaml").write_text("_target_: gan_lab.losses.adversarial.NonSaturating\nreal_target: 0.9\n")
    (group / "needs_more.yaml").write_text("_target_: gan_lab.losses.adversarial.EnergyMargin\nmargin: -1\n")
    monkeypatch.setattr(critic, "LOSSES", group)
    cfg = OmegaConf.create({"data": [4.0, 0.5], "steps": 4, "every": 2, "batch": 32, "lr": 1e-3, "penalty": 10.0,
                            "seed": 0})
    line = games.saturation(cfg, tmp_path / "out")
    numbers = json.loads((tmp_path / "out" / "saturation.json").read_text())
    assert set(numbers["curves"]) == {"minimax", "smoothed"}
    assert "loss.margin must be positive" in numbers["skipped"]["needs_more"]
    assert "skipped: needs_more" in line


def test_critics_estimate_w1_and_js_of_the_parallel_lines():
    """The lab's WGAN-GP critic and cross-entropy D on theta = 0.5: W1 ~ 0.5, JS ~ log 2."""
    torch.manual_seed(0)
    rng = torch.Generator().manual_seed(0)
    real = lambda n: cf.parallel_lines_sample(0.0, n, rng)[0]  # noqa: E731
    fake = lambda n: cf.parallel_lines_sample(0.5, n, rng)[1]  # noqa: E731
    w_loss, js_loss = load_loss("wasserstein", "w"), load_loss("minimax", "js")
    critic, d = toy_critic(2), toy_critic(2)
    train_critic(critic, w_loss, real, fake, 300, penalty=10.0)
    train_critic(d, js_loss, real, fake, 300)
    assert -d_loss_on(critic, w_loss, real, fake) == pytest.approx(0.5, abs=0.05)
    assert math.log(2) - d_loss_on(d, js_loss, real, fake) / 2 == pytest.approx(math.log(2), abs=0.02)


@pytest.mark.parametrize("name, settings", [
    ("xy_game", ["xy_game.steps=30"]),
    ("optimal_d", ["optimal_d.steps=300"]),
    ("saturation", ["saturation.steps=200", "saturation.every=100"]),
    ("mode_collapse", ["mode_collapse.steps=20", "mode_collapse.every=10", "mode_collapse.points=64"]),
])
def test_theory_command_writes_figure_and_numbers(tmp_path, name, settings):
    pytest.importorskip("matplotlib")
    out = gan_lab("theory", name, *settings, f"out={tmp_path / 'figs'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "figs" / f"{name}.png").stat().st_size > 5000
    numbers = json.loads((tmp_path / "figs" / f"{name}.json").read_text())
    assert f"{name}:" in out.stdout + out.stderr
    if name == "optimal_d":  # even a short run is close to D* and to the closed-form value of the game
        assert numbers["max_abs_D_minus_Dstar"] < 0.1
        assert numbers["game_value"] == pytest.approx(numbers["closed_form_value"], abs=0.03)
    if name == "saturation":  # every loss of configs/loss is drawn or listed as skipped
        drawn = {label.split(" ")[0] for label in numbers["curves"]}
        assert drawn | set(numbers["skipped"]) == set(loss_names())
        ends = {label.split(" ")[0]: curve[-1]["grad_G"] for label, curve in numbers["curves"].items()}
        assert ends["minimax"] < ends["nonsaturating"] / 10  # minimax saturates
    if name == "mode_collapse":  # the run's own scatter plots, and the modes of its checkpoints
        assert numbers["steps"] == [10, 20] and len(numbers["modes_covered"]) == 2 and numbers["modes"] == 8
        assert (tmp_path / "figs" / "mode_collapse_run" / "samples" / "fixed_0000020.png").exists()
    assert not (tmp_path / "outputs").exists()  # out= is the run directory


def test_bad_figure_name_and_bad_loss_are_one_line_errors(tmp_path):
    for args in ([], ["nope"]):
        none = gan_lab("theory", *args, cwd=tmp_path)
        assert none.returncode == 1 and "name a figure first" in none.stderr and "xy_game" in none.stderr
    bad = gan_lab("theory", "name=nope", cwd=tmp_path)
    assert bad.returncode == 1 and "name=nope: choose one of" in bad.stdout + bad.stderr
    assert "Traceback" not in bad.stderr
    loss = gan_lab("theory", "optimal_d", "optimal_d.loss=hinge", f"out={tmp_path}", cwd=tmp_path)
    assert loss.returncode == 1 and "optimal_d.loss=hinge" in loss.stdout + loss.stderr
