"""The Wasserstein family and its tricks: gradient penalties in closed form on linear critics (Gulrajani et al.
2017; Wu et al. 2018; Mescheder et al. 2018), weight clipping (Arjovsky et al. 2017), the trick hooks, and the
wgan / wgan_gp / wgan_div / lsgan configs training on their default data."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gan_lab.engine import checkpoint
from gan_lab.engine.loop import FiniteGuard, train_step
from gan_lab.errors import ConfigError
from gan_lab.losses import penalties
from gan_lab.losses.adversarial import Wasserstein
from gan_lab.models import dcgan
from gan_lab.models.noise import NoiseToImage
from gan_lab.train import run, setup
from gan_lab.tricks.gradient_penalty import GradientPenalty
from gan_lab.tricks.r1 import R1
from gan_lab.tricks.weight_clipping import WeightClipping
from gan_lab.tricks.wgan_div import WassersteinDivergence
from tests.conftest import TINY, compose_train

NEW_MODELS = ["wgan", "wgan_gp", "wgan_div", "lsgan"]
SHAPE = (3, 4, 4)


class LinearCritic(nn.Module):
    """D(x) = <w_y, x> + b: its input gradient is w_y everywhere (one w per class when labelled)."""

    def __init__(self, norms):
        super().__init__()
        w = torch.randn(len(norms), *SHAPE, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        w *= torch.tensor(norms, dtype=torch.float64).view(-1, 1, 1, 1) / w.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        self.w = nn.Parameter(w)
        self.b = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, x, label=None):
        w = self.w[0].expand_as(x) if label is None else self.w[label]
        return (w * x).flatten(1).sum(1) + self.b


def batch(n=16):
    """(real, fake) in [-1, 1]."""
    x = torch.rand(2, n, *SHAPE, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    return x[0], x[1]


# ---------------------------------------------------------------- penalties in closed form


def test_gradient_penalty_vanishes_for_a_unit_gradient_critic_and_is_positive_otherwise():
    real, fake = batch()
    assert penalties.gradient_penalty(LinearCritic([1.0]), real, fake).abs() < 1e-6
    torch.testing.assert_close(penalties.gradient_penalty(LinearCritic([3.0]), real, fake),
                               torch.tensor(10.0 * (3.0 - 1.0) ** 2, dtype=torch.float64))
    torch.testing.assert_close(penalties.gradient_penalty(LinearCritic([0.5]), real, fake, lambda_=2.0, center=0.0),
                               torch.tensor(2.0 * 0.25, dtype=torch.float64))


def test_gradient_penalty_gradient_reaches_the_critic_weights():
    real, fake = batch()
    D = LinearCritic([3.0])
    penalties.gradient_penalty(D, real, fake).backward()
    w = D.w.detach()
    # d/dw lambda (||w|| - 1)^2 = 2 lambda (||w|| - 1) w / ||w||: double backprop through grad_x D = w
    torch.testing.assert_close(D.w.grad, 2 * 10.0 * (3.0 - 1.0) * w / 3.0)
    # ... and to every weight of a real critic (convolutions, layer-norm scales, the output layer)
    critic = dcgan.Discriminator(image_size=32, channels=3, width=4, norm="layer")
    penalties.gradient_penalty(critic, torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)).backward()
    assert all(p.grad.abs().sum() > 0 for n, p in critic.named_parameters() if n.endswith("weight"))


def test_interpolates_take_one_uniform_eps_per_sample():
    torch.manual_seed(0)
    x = penalties.interpolates(torch.ones(1000, *SHAPE), torch.zeros(1000, *SHAPE))  # x = eps
    eps = x.flatten(1)
    assert (eps == eps[:, :1]).all() and 0 <= eps.min() and eps.max() <= 1
    assert eps[:, 0].mean().item() == pytest.approx(0.5, abs=0.03) and eps[:, 0].std() > 0.25


def test_wgan_div_penalty_is_k_times_the_gradient_norm_to_the_p():
    real, fake = batch()
    torch.testing.assert_close(penalties.wgan_div_penalty(LinearCritic([1.5]), real, fake),
                               torch.tensor(2.0 * 1.5**6, dtype=torch.float64))
    torch.testing.assert_close(penalties.wgan_div_penalty(LinearCritic([0.7]), real, fake, k=3.0, p=3.0),
                               torch.tensor(3.0 * 0.7**3, dtype=torch.float64))


def test_r1_is_half_gamma_times_the_squared_gradient_norm_on_real_data():
    real, _ = batch()
    torch.testing.assert_close(penalties.r1_penalty(LinearCritic([2.0]), real, gamma=10.0),
                               torch.tensor(5.0 * 4.0, dtype=torch.float64))


def test_penalties_evaluate_the_critic_at_the_real_labels():
    real, fake = batch(4)
    labels = torch.tensor([0, 1, 1, 1])
    D = LinearCritic([1.0, 3.0])  # class 0 has a unit gradient, class 1 a gradient of norm 3
    expected = 10.0 * (0 + 3 * (3.0 - 1.0) ** 2) / 4
    torch.testing.assert_close(penalties.gradient_penalty(D, real, fake, (labels,)),
                               torch.tensor(expected, dtype=torch.float64))
    torch.testing.assert_close(penalties.r1_penalty(D, real, (labels,), gamma=2.0),
                               torch.tensor((1.0 + 3 * 9.0) / 4, dtype=torch.float64))


# ---------------------------------------------------------------- tricks and their hooks


def critic_task():
    return NoiseToImage(dcgan.Generator(z_dim=8, image_size=32, channels=3, width=4),
                        dcgan.Discriminator(image_size=32, channels=3, width=4, norm="layer"), Wasserstein())


@pytest.mark.parametrize("trick, tag", [(GradientPenalty(), "penalty/gp"), (WassersteinDivergence(), "penalty/wgan_div"),
                                        (R1(gamma=1.0), "penalty/r1")])
def test_penalty_tricks_add_a_logged_term_to_the_d_loss(trick, tag):
    torch.manual_seed(0)
    task = critic_task()
    trick.setup(task)
    out = task.d_loss({"real": torch.rand(4, 3, 32, 32) * 2 - 1})
    stats = out.stats
    assert stats[tag] > 0 and stats["loss/D"] == out.loss.detach()
    # loss/D = the Wasserstein critic loss E D(G(z)) - E D(x) plus the penalty
    torch.testing.assert_close(stats["loss/D"], -stats["wasserstein_estimate"] + stats[tag])
    out.loss.backward()
    assert all(p.grad is None for p in task.G.parameters())  # the penalty sees the detached fakes


def test_weight_clipping_keeps_every_critic_weight_in_the_box():
    cfg = compose_train([*TINY, "model=wgan", "dataset.count=64"])
    c = cfg.tricks.weight_clipping.c
    assert c == 0.01 and cfg.train.n_critic == 5
    state, data, hw = setup(cfg)
    D, G = state.task.D, state.task.G
    assert all(p.abs().max() <= c for p in D.parameters())  # clipped at setup already
    before = [p.detach().clone() for p in D.parameters()]
    for _ in range(3):
        train_step(state, data, hw, cfg, FiniteGuard())
    assert any(not torch.equal(p, b) for p, b in zip(D.parameters(), before))  # the critic trained ...
    assert all(p.abs().max() <= c for p in D.parameters())  # ... and stayed in [-c, c]
    assert any((p.abs() == c).any() for p in D.parameters())  # clipping was active
    assert any(p.abs().max() > c for p in G.parameters())  # the generator is not clipped


def test_weight_clipping_hook_clamps_the_critic_only():
    task = critic_task()
    clip = WeightClipping(c=0.05)
    with torch.no_grad():
        next(task.D.parameters()).fill_(1.0)
        next(task.G.parameters()).fill_(1.0)
    clip.after_phase(task, "G", 1)  # a generator step leaves the critic alone
    assert next(task.D.parameters()).max() == 1.0
    clip.after_phase(task, "D", 1)
    assert next(task.D.parameters()).max() == 0.05 and next(task.G.parameters()).max() == 1.0


def test_model_tricks_are_kept_when_the_command_line_adds_tricks():
    assert set(compose_train(["model=wgan", "tricks=[ema]"]).tricks) == {"weight_clipping", "ema"}
    assert set(compose_train(["model=wgan_gp", "tricks=[ema]"]).tricks) == {"gradient_penalty", "ema"}
    assert set(compose_train(["model=wgan_div"]).tricks) == {"wgan_div"}
    assert compose_train(["model=wgan_gp", "tricks.gradient_penalty.lambda_=5"]).tricks.gradient_penalty.lambda_ == 5


def test_penalty_tricks_are_refused_by_tasks_without_penalties():
    with pytest.raises(ConfigError, match="Pix2PixTask takes no loss terms from tricks"):
        setup(compose_train([*TINY, "model=pix2pix", "tricks=[r1]", "dataset.count=16"]))


@pytest.mark.parametrize("make, key", [(lambda: GradientPenalty(lambda_=0), "tricks.gradient_penalty.lambda_"),
                                       (lambda: WassersteinDivergence(p=1), "tricks.wgan_div.p"),
                                       (lambda: WeightClipping(c=-1), "tricks.weight_clipping.c"),
                                       (lambda: dcgan.Discriminator(norm="spectral"), "model.discriminator.norm")])
def test_bad_trick_and_norm_values_name_the_key(make, key):
    with pytest.raises((ValueError, ConfigError), match=key.replace(".", r"\.")):
        make()


def test_discriminator_norm_option():
    def norms(D):
        return {type(m) for m in D.modules() if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm))}

    assert norms(dcgan.Discriminator(image_size=32, width=4)) == {nn.BatchNorm2d}
    layer = dcgan.Discriminator(image_size=32, width=4, norm="layer")
    assert norms(layer) == {nn.GroupNorm} and all(m.num_groups == 1 for m in layer.modules() if isinstance(m, nn.GroupNorm))
    assert norms(dcgan.Discriminator(image_size=32, width=4, norm="none")) == set()
    # one sample's output does not depend on the rest of the batch, so input gradients are per sample
    x = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(layer(x)[:1], layer(x[:1]))


# ---------------------------------------------------------------- the model configs


@pytest.mark.parametrize("model", NEW_MODELS)
def test_new_model_trains_on_its_default_dataset(tmp_path, model):
    loss_g = run(compose_train([*TINY, f"model={model}", "train.steps=2", "dataset.count=64"]), tmp_path)
    assert torch.isfinite(torch.tensor(loss_g))
    state = checkpoint.load(tmp_path / "checkpoints" / "last.pt")
    assert state["step"] == 2 and set(state["tricks"]) == set(state["config"]["tricks"])
    losses = state["last_losses"]
    if model != "lsgan":
        assert "wasserstein_estimate" in losses
    if model in ("wgan_gp", "wgan_div"):
        assert f"penalty/{'gp' if model == 'wgan_gp' else 'wgan_div'}" in losses


def test_paper_defaults():
    gp = compose_train(["model=wgan_gp"])
    assert (gp.loss._target_.endswith("Wasserstein") and gp.model.discriminator.norm == "layer"
            and gp.tricks.gradient_penalty.lambda_ == 10 and gp.train.n_critic == 5
            and gp.optim.D.lr == 1e-4 and list(gp.optim.D.betas) == [0.0, 0.9])
    div = compose_train(["model=wgan_div"])
    assert div.tricks.wgan_div.k == 2 and div.tricks.wgan_div.p == 6 and div.loss._target_.endswith("Wasserstein")
    wgan = compose_train(["model=wgan"])
    assert wgan.optim.D._target_ == "torch.optim.RMSprop" and wgan.optim.D.lr == 5e-5
    assert compose_train(["model=lsgan"]).loss._target_.endswith("LeastSquares")
