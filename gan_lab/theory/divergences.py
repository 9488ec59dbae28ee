"""``optimal_d`` and ``divergences``: what the discriminator estimates.

- optimal_d: a D trained with the lab's cross-entropy D loss between two 1-D Gaussians approaches
  D* = p_data / (p_data + p_g), and the game's value max_D V(D, G) = -D's loss approaches -2 log 2 + 2 JS
  (Goodfellow et al. 2014, §4.1, Proposition 1 and Theorem 1).
- divergences: the parallel lines (Arjovsky, Chintala & Bottou 2017, §2, Example 1): KL, JS and W1 in closed
  form as theta moves from -1 to 1, and estimated by critics the lab's losses train: W1 from the Wasserstein
  loss with the gradient penalty (Kantorovich-Rubinstein duality), JS from the cross-entropy D loss.
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig

from gan_lab.errors import ConfigError
from gan_lab.losses.adversarial import AdversarialLoss
from gan_lab.theory import closed_form as cf
from gan_lab.theory.critic import d_loss_on, load_loss, toy_critic, train_critic
from gan_lab.theory.plot import figure, save


def _gaussian(mean: float, std: float, gen: torch.Generator):
    return lambda n: mean + std * torch.randn(n, 1, generator=gen)


def _lines(theta: float, rng: torch.Generator):
    """Samplers of P_0 and P_theta."""
    return (lambda n: cf.parallel_lines_sample(0.0, n, rng)[0],
            lambda n: cf.parallel_lines_sample(theta, n, rng)[1])


def optimal_d(cfg: DictConfig, out: Path) -> str:
    loss = load_loss(cfg.loss, "optimal_d.loss")
    if not isinstance(loss, AdversarialLoss):
        raise ConfigError(f"optimal_d.loss={cfg.loss}: the figure needs a cross-entropy D (minimax, nonsaturating, "
                          "maxlikelihood), whose output is the logit of a probability")
    data, gen = tuple(cfg.data), tuple(cfg.gen)
    rng = torch.Generator().manual_seed(cfg.seed)
    real, fake = _gaussian(*data, rng), _gaussian(*gen, rng)
    D = toy_critic(1, seed=cfg.seed)
    train_critic(D, loss, real, fake, cfg.steps, cfg.batch, cfg.lr)
    x = torch.linspace(*cfg.span, 401).unsqueeze(1)
    with torch.no_grad():
        trained = torch.sigmoid(D(x))
    star = cf.optimal_d(x.squeeze(1), data, gen)
    value, closed = -d_loss_on(D, loss, real, fake), -2 * cf.LOG2 + 2 * cf.js_gaussians(data, gen)
    mixture = (cf.gaussian_pdf(x, *data) + cf.gaussian_pdf(x, *gen)).squeeze(1) / 2
    gap = float((trained - star).abs()[mixture > cfg.mass].max())  # D sees next to no samples in the far tails

    fig, (ax,) = figure(width=5.5)
    ax.plot(x, cf.gaussian_pdf(x, *data), color="0.6", label="p_data")
    ax.plot(x, cf.gaussian_pdf(x, *gen), color="tab:orange", alpha=0.6, label="p_g")
    ax.plot(x, star, "k--", label="D* = p_data / (p_data + p_g)")
    ax.plot(x, trained, color="tab:blue", label=f"D trained ({cfg.steps} steps, loss={cfg.loss})")
    ax.set(xlabel="x", title=f"value of the game {value:.3f} vs -2 log 2 + 2 JS = {closed:.3f}")
    ax.legend(fontsize=7, loc="center left")
    save(fig, out, "optimal_d", {"data": data, "gen": gen, "loss": cfg.loss, "steps": cfg.steps,
                                 "max_abs_D_minus_Dstar": gap, "where_mixture_density_above": cfg.mass,
                                 "span": list(cfg.span), "game_value": value,
                                 "closed_form_value": closed, "js": cf.js_gaussians(data, gen)})
    return (f"trained D is within {gap:.3f} of D* = p_data/(p_data+p_g) where (p_data+p_g)/2 > {cfg.mass}; "
            f"value of the game {value:.3f} vs -2 log 2 + 2 JS = {closed:.3f}")


def divergences(cfg: DictConfig, out: Path) -> str:
    w_loss, js_loss = load_loss(cfg.w1_loss, "divergences.w1_loss"), load_loss(cfg.js_loss, "divergences.js_loss")
    if not isinstance(js_loss, AdversarialLoss):
        raise ConfigError(f"divergences.js_loss={cfg.js_loss}: JS comes from a cross-entropy D loss "
                          "(minimax, nonsaturating, maxlikelihood)")
    thetas = torch.linspace(-1, 1, cfg.points).tolist()
    rows = []
    for i, theta in enumerate(thetas):
        rng = torch.Generator().manual_seed(cfg.seed + i)
        real, fake = _lines(theta, rng)
        critic, d = toy_critic(2, seed=cfg.seed), toy_critic(2, seed=cfg.seed)
        train_critic(critic, w_loss, real, fake, cfg.steps, cfg.batch, cfg.lr, penalty=cfg.penalty)
        train_critic(d, js_loss, real, fake, cfg.steps, cfg.batch, cfg.lr)
        rows.append({**cf.parallel_lines(theta), "W1_estimate": -d_loss_on(critic, w_loss, real, fake),
                     "JS_estimate": cf.LOG2 - d_loss_on(d, js_loss, real, fake) / 2})

    fig, (left, right) = figure(2)
    left.axhline(cf.LOG2, color="0.6", lw=0.8)
    left.plot(thetas, [r["JS"] for r in rows], "k.", label="JS, closed form (log 2 off 0)")
    left.plot(thetas, [r["JS_estimate"] for r in rows], "o", color="tab:blue", mfc="none",
              label=f"JS from D (loss={cfg.js_loss})")
    left.text(0.5, 0.3, "KL = inf for theta != 0", transform=left.transAxes, ha="center", fontsize=8)
    left.set(xlabel="theta", title="Jensen-Shannon: flat, no gradient")
    right.plot(thetas, [r["W1"] for r in rows], "k.--", label="W1 = |theta|")
    right.plot(thetas, [r["W1_estimate"] for r in rows], "o", color="tab:red", mfc="none",
               label=f"W1 from critic (loss={cfg.w1_loss} + GP)")
    right.set(xlabel="theta", title="Wasserstein-1: shrinks smoothly")
    for ax in (left, right):
        ax.legend(fontsize=7)
    save(fig, out, "divergences", {"steps": cfg.steps, "penalty": cfg.penalty, "rows": rows})
    off = [r for r in rows if r["theta"] != 0]
    w_err = max(abs(r["W1_estimate"] - r["W1"]) for r in rows)
    js_min = min(r["JS_estimate"] for r in off)
    return (f"JS stays at log 2 = {cf.LOG2:.3f} for theta != 0 (estimated >= {js_min:.3f}), KL = inf; "
            f"W1 = |theta| (critic estimate within {w_err:.3f})")
