"""Defining properties of the adversarial losses (Goodfellow et al. 2014; Goodfellow 2016 tutorial §3.2;
Arjovsky et al. 2017; Lim & Ye 2017 / Miyato et al. 2018; Mao et al. 2017)."""

import math

import pytest
import torch

from gan_lab.losses.adversarial import Hinge, LeastSquares, MaxLikelihood, Minimax, NonSaturating, Wasserstein

LOSSES = [NonSaturating, Minimax, MaxLikelihood]


def naive_g(name, f):
    """The generator costs written with probabilities, as in the papers."""
    d = torch.sigmoid(f)
    return {
        "NonSaturating": -torch.log(d),
        "Minimax": torch.log(1 - d),
        "MaxLikelihood": -0.5 * d / (1 - d),  # exp(sigma^-1(d)) = d / (1 - d)
    }[name].mean()


def grad_of(fn, x):
    x = x.clone().requires_grad_(True)
    fn(x).backward()
    return x.grad


@pytest.mark.parametrize("loss_cls", LOSSES)
def test_equals_naive_formulas_for_moderate_logits(loss_cls):
    torch.manual_seed(0)
    r, f = torch.randn(64, dtype=torch.float64) * 3, torch.randn(64, dtype=torch.float64) * 3  # naive needs 1 - d
    loss = loss_cls()
    naive_d = -torch.log(torch.sigmoid(r)).mean() - torch.log(1 - torch.sigmoid(f)).mean()
    torch.testing.assert_close(loss.d_loss(r, f), naive_d)
    torch.testing.assert_close(loss.g_loss(f), naive_g(loss_cls.__name__, f))


@pytest.mark.parametrize("loss_cls", LOSSES)
def test_stable_for_extreme_logits(loss_cls):
    loss = loss_cls()
    extreme = torch.tensor([-100.0, 100.0])
    for r in extreme:
        for f in extreme:
            value = loss.d_loss(r.view(1), f.view(1))
            assert torch.isfinite(value)
            assert torch.isfinite(grad_of(lambda x: loss.d_loss(x, f.view(1)), r.view(1))).all()
    # The naive formula is already infinite here: log(sigmoid(-100)) underflows in float32.
    assert math.isinf((-torch.log(torch.sigmoid(torch.tensor(-100.0)))).item())
    assert loss.d_loss(torch.tensor([-100.0]), torch.tensor([100.0])).item() == pytest.approx(200.0)
    # G costs: the ML cost is exp(logit) and exceeds float32 above ~88 by nature, so test it below that.
    high = 80.0 if loss_cls is MaxLikelihood else 100.0
    f = torch.tensor([-100.0, high])
    assert torch.isfinite(loss.g_loss(f))
    assert torch.isfinite(grad_of(loss.g_loss, f)).all()


def test_minimax_gradient_vanishes_when_d_rejects_fakes_but_nonsaturating_does_not():
    rejected = torch.tensor([-10.0])  # D(G(z)) = 4.5e-5: D confidently rejects the fake
    minimax = grad_of(Minimax().g_loss, rejected).abs().item()
    nonsat = grad_of(NonSaturating().g_loss, rejected).abs().item()
    assert minimax < 1e-4
    assert nonsat > 0.99
    # Both push D(G(z)) up (negative gradient w.r.t. the logit).
    assert grad_of(Minimax().g_loss, rejected).item() < 0 and grad_of(NonSaturating().g_loss, rejected).item() < 0


def test_maxlikelihood_gradient_is_that_of_the_tutorial_cost():
    f = torch.linspace(-10, 5, 31)
    torch.testing.assert_close(grad_of(MaxLikelihood().g_loss, f), -0.5 * f.exp() / len(f))
    # Tutorial Fig. 16: flat where D(G(z)) is small, steep where the sample already fools D.
    g = grad_of(MaxLikelihood().g_loss, f).abs()
    assert g[0] < 1e-6 < g[-1]
    assert (g[1:] > g[:-1]).all()
    # In terms of p = D(G(z)): dJ/dp = -1/2 / (1 - p)^2, near -1/2 for small p, while the
    # non-saturating cost -log p has slope -1/p there.
    p = torch.tensor([1e-3, 0.5, 0.9], requires_grad=True)
    MaxLikelihood().g_loss(torch.logit(p)).backward()
    torch.testing.assert_close(p.grad, -0.5 / (1 - p.detach()) ** 2 / 3)


def test_d_loss_at_the_optimum_is_2_log_2_when_distributions_match():
    # D*(x) = p_data / (p_data + p_g) (Proposition 1) is 1/2, logit 0, when p_data = p_g.
    torch.manual_seed(0)
    x_data, x_g = torch.randn(10_000), torch.randn(10_000)
    density = torch.distributions.Normal(0.0, 1.0)

    def optimal_logits(x):  # log(p_data / p_g)
        return density.log_prob(x) - density.log_prob(x)

    loss = NonSaturating()
    at_optimum = loss.d_loss(optimal_logits(x_data), optimal_logits(x_g))
    assert at_optimum.item() == pytest.approx(2 * math.log(2), abs=1e-6)
    # Any other D does worse on average (here: a biased or a confident one).
    assert loss.d_loss(torch.full((1,), 0.5), torch.full((1,), 0.5)) > at_optimum
    assert loss.d_loss(x_data, x_g) > at_optimum


def test_d_loss_optimum_is_p_data_over_p_data_plus_p_g():
    # p_data = N(1, 1), p_g = N(-1, 1): the loss over a scaled logit is smallest at the true log-ratio.
    torch.manual_seed(0)
    x_data, x_g = torch.randn(200_000) + 1, torch.randn(200_000) - 1
    p_data, p_g = torch.distributions.Normal(1.0, 1.0), torch.distributions.Normal(-1.0, 1.0)

    def loss_at(scale):
        def logits(x):
            return scale * (p_data.log_prob(x) - p_g.log_prob(x))
        return NonSaturating().d_loss(logits(x_data), logits(x_g)).item()

    assert loss_at(1.0) < min(loss_at(0.8), loss_at(1.25))


# ---------------------------------------------------------------- games on an unbounded critic score


def test_critic_losses_equal_their_formulas():
    torch.manual_seed(0)
    r, f = torch.randn(64, dtype=torch.float64) * 3, torch.randn(64, dtype=torch.float64) * 3
    relu = torch.relu
    expected = {
        Wasserstein: (f.mean() - r.mean(), -f.mean()),
        Hinge: (relu(1 - r).mean() + relu(1 + f).mean(), -f.mean()),
        LeastSquares: (0.5 * ((r - 1) ** 2).mean() + 0.5 * (f**2).mean(), 0.5 * ((f - 1) ** 2).mean()),
    }
    for loss_cls, (d, g) in expected.items():
        torch.testing.assert_close(loss_cls().d_loss(r, f), d)
        torch.testing.assert_close(loss_cls().g_loss(f), g)


def test_logged_statistics_are_probabilities_or_raw_critic_means():
    r, f = torch.tensor([2.0, 4.0]), torch.tensor([-1.0, 0.0])
    loss = torch.tensor(0.5)
    prob = NonSaturating().d_stats(loss, r, f)
    torch.testing.assert_close(prob["D(x)"], torch.sigmoid(r).mean())
    for loss_cls in (Wasserstein, Hinge, LeastSquares):
        stats = loss_cls().d_stats(loss, r, f)
        assert stats["loss/D"] == 0.5 and stats["D(x)"] == 3.0 and stats["D(G(z))"] == -0.5
    assert Wasserstein().d_stats(loss, r, f)["wasserstein_estimate"] == 3.5
    assert "wasserstein_estimate" not in Hinge().d_stats(loss, r, f)


def test_wasserstein_estimate_of_the_optimal_critic_is_w1():
    # p_g is p_data shifted by delta: W1 = ||delta||, reached by the 1-Lipschitz critic f(x) = <-delta/||delta||, x>.
    torch.manual_seed(0)
    delta = torch.tensor([3.0, -4.0])
    x_data = torch.randn(1000, 2)
    x_g = x_data + delta  # the optimal transport plan: every point moves by delta

    def critic(x):
        return x @ (-delta / delta.norm())

    stats = Wasserstein().d_stats(torch.tensor(0.0), critic(x_data), critic(x_g))
    assert stats["wasserstein_estimate"].item() == pytest.approx(5.0, abs=1e-4)
    assert Wasserstein().d_loss(critic(x_data), critic(x_g)).item() == pytest.approx(-5.0, abs=1e-4)


def test_hinge_ignores_samples_beyond_the_margin():
    confident = grad_of(lambda r: Hinge().d_loss(r, torch.tensor([-1.5, -3.0])), torch.tensor([1.0, 2.5]))
    assert (confident == 0).all()
    assert Hinge().d_loss(torch.tensor([1.0, 2.5]), torch.tensor([-1.5, -3.0])) == 0
    inside = grad_of(lambda r: Hinge().d_loss(r, torch.tensor([0.0])), torch.tensor([0.5, -2.0]))
    torch.testing.assert_close(inside, torch.tensor([-0.5, -0.5]))  # a constant push, unlike the saturating costs
    torch.testing.assert_close(grad_of(Hinge().g_loss, torch.tensor([-5.0, 5.0])), torch.tensor([-0.5, -0.5]))


def test_least_squares_optimal_d_is_p_data_over_p_data_plus_p_g():
    # Mao et al. 2017, eq. 4 with a = 0, b = 1: D* = p_data / (p_data + p_g) = sigmoid(log p_data - log p_g).
    torch.manual_seed(0)
    x_data, x_g = torch.randn(200_000) + 1, torch.randn(200_000) - 1
    p_data, p_g = torch.distributions.Normal(1.0, 1.0), torch.distributions.Normal(-1.0, 1.0)

    def optimal(x):
        return torch.sigmoid(p_data.log_prob(x) - p_g.log_prob(x))

    def loss_at(scale, shift=0.0):
        return LeastSquares().d_loss(scale * optimal(x_data) + shift, scale * optimal(x_g) + shift).item()

    assert loss_at(1.0) < min(loss_at(0.9), loss_at(1.1), loss_at(1.0, 0.05), loss_at(1.0, -0.05))
    # With p_g = p_data, D* = 1/2 everywhere and G's cost is 1/2 (1/2 - 1)^2 = 1/8.
    assert LeastSquares().g_loss(torch.full((4,), 0.5)).item() == pytest.approx(0.125)
