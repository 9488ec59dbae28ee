"""Defining properties of the adversarial losses (Goodfellow et al. 2014; Goodfellow 2016 tutorial §3.2)."""

import math

import pytest
import torch

from gan_lab.losses.adversarial import MaxLikelihood, Minimax, NonSaturating

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
