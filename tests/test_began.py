"""BEGAN (Berthelot et al. 2017): k's proportional control, M_global, the L1 auto-encoder energy, G's two gradient
paths, the paper's networks, the uniform prior, exact resume of k, and config errors that name the key."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gan_lab.engine import checkpoint
from gan_lab.errors import ConfigError
from gan_lab.models.began import (AutoencoderDiscriminator, BEGANTask, Generator, convergence_measure,
                                  equilibrium_step)
from gan_lab.train import run
from tests.conftest import TINY, compose_train
from tests.test_resume import _losses, stop_and_resume


def _task(**kwargs) -> BEGANTask:
    torch.manual_seed(0)
    return BEGANTask(Generator(z_dim=8, image_size=16, channels=3, width=8),
                     AutoencoderDiscriminator(image_size=16, channels=3, width=8, code_dim=8), **kwargs)


def _batch(n: int = 6) -> dict[str, torch.Tensor]:
    return {"real": torch.rand(n, 3, 16, 16) * 2 - 1}


def _step(task: BEGANTask, real_loss: float, fake_loss: float) -> dict:
    """The engine's call after a step whose D phase saw L(x) = real_loss and G phase L(G(z_G)) = fake_loss."""
    stats = {"D(x)": torch.tensor(real_loss), "loss/G": torch.tensor(fake_loss)}
    task.end_step(1, stats)
    return stats


# ---------------------------------------------------------------- k and M_global


def test_k_follows_the_clipped_update_rule_on_a_synthetic_sequence():
    gamma, lam = 0.5, 0.1
    task = _task(gamma=gamma, lambda_k=lam)
    # gamma L(x) - L(G) = +0.3 for 40 steps: k rises by 0.03 a step, unclipped k_t = 0.03 t, so it reaches 1 at
    # step 34 and stays there; then -0.5 for 40 steps: down by 0.05 a step to 0 at step 20 of these, then held at 0.
    sequence = [(1.0, 0.2)] * 40 + [(0.2, 0.6)] * 40
    expected, k = [], 0.0
    for t, (lx, lg) in enumerate(sequence, start=1):
        k = min(1.0, 0.03 * t) if t <= 40 else max(0.0, 1.0 - 0.05 * (t - 40))  # the closed form of each stretch
        expected.append(k)
    logged = [_step(task, lx, lg)["began/k"].item() for lx, lg in sequence]
    assert logged == pytest.approx(expected, abs=1e-5)
    assert logged[33] == 1.0 and logged[39] == 1.0 and logged[-1] == 0.0  # clipped exactly, not overshooting
    assert all(0.0 <= k <= 1.0 for k in logged)
    assert task.loss.k.item() == logged[-1]

    # a random sequence: the recursion step by step, and never outside [0, 1]
    task = _task(gamma=0.7, lambda_k=0.05)
    gen = torch.Generator().manual_seed(1)
    k = 0.0
    for lx, lg in torch.rand(300, 2, generator=gen).tolist():
        k = min(1.0, max(0.0, k + 0.05 * (0.7 * lx - lg)))
        assert _step(task, lx, lg)["began/k"].item() == pytest.approx(k, abs=1e-5)
        assert 0.0 <= task.loss.k.item() <= 1.0


def test_k_is_stationary_at_the_equilibrium_and_moves_towards_it():
    task = _task(gamma=0.4, lambda_k=0.01, k0=0.5)
    assert _step(task, 0.5, 0.2)["began/k"].item() == pytest.approx(0.5)  # L(G) = gamma L(x): no change
    assert _step(task, 0.5, 0.1)["began/k"].item() > 0.5   # D wins on G's samples (L(G) low): weigh them more
    task.loss.k.fill_(0.5)
    assert _step(task, 0.5, 0.3)["began/k"].item() < 0.5


def test_without_gain_k_stays_k0_and_d_trains_as_an_autoencoder():
    task = _task(lambda_k=0.0, k0=0.3)
    for lx, lg in torch.rand(50, 2).tolist():
        assert _step(task, lx, lg)["began/k"].item() == pytest.approx(0.3)
    plain = _task(lambda_k=0.0)
    out = plain.d_loss(_batch())
    assert plain.loss.k.item() == 0.0
    assert out.loss.item() == pytest.approx(out.stats["D(x)"].item())  # k = 0: L_D = L(x)


def test_m_global_is_the_formula_and_logged_with_k():
    task = _task(gamma=0.5)
    for lx, lg in [(0.4, 0.1), (0.4, 0.3), (0.2, 0.1)]:  # gamma L(x) - L(G) positive, negative, zero
        stats = _step(task, lx, lg)
        assert stats["began/M_global"].item() == pytest.approx(lx + abs(0.5 * lx - lg))
    assert convergence_measure(torch.tensor(1.0), torch.tensor(0.8), 0.5).item() == pytest.approx(1.3)
    assert equilibrium_step(torch.tensor(0.99), torch.tensor(1.0), torch.tensor(0.0), 0.5, 0.1).item() == 1.0


# ---------------------------------------------------------------- losses and gradients


def test_d_loss_is_l_real_minus_k_l_fake_and_k_gets_no_gradient():
    task = _task()
    task.loss.k.fill_(0.4)
    batch = _batch()
    out = task.d_loss(batch)
    inputs, fake = out.carry
    real_energy, fake_energy = task.D(batch["real"]), task.D(fake.detach())
    assert out.loss.item() == pytest.approx(real_energy.mean().item() - 0.4 * fake_energy.mean().item(), rel=1e-5)
    assert out.stats["D(x)"].item() == pytest.approx(real_energy.mean().item(), rel=1e-5)
    assert out.stats["D(G(z))"].item() == pytest.approx(fake_energy.mean().item(), rel=1e-5)
    out.loss.backward()
    assert all(p.grad is None for p in task.G.parameters())  # D's loss never reaches G
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in task.D.parameters())
    assert "loss.k" in dict(task.named_buffers()) and not task.loss.k.requires_grad
    assert all(p is not task.loss.k for p in task.parameters())


def test_energy_is_the_mean_absolute_reconstruction_error():
    D = AutoencoderDiscriminator(image_size=16, channels=3, width=8, code_dim=8)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    assert torch.allclose(D(x), (D.reconstruct(x) - x).abs().mean((1, 2, 3)))
    assert D.encoder(x).shape == (4, 8)


def test_g_loss_reaches_g_through_the_autoencoder_input_and_the_reconstruction_target():
    task = _task()
    batch = _batch()
    y = task.generate(task.G, task.sample_inputs(6)).detach().requires_grad_(True)
    out = task.g_loss(batch, ({"z": None}, y))
    assert out.loss.item() == pytest.approx(task.D(y).mean().item(), rel=1e-6)  # L_G = L(G(z_G))
    out.loss.backward()
    both = y.grad.clone()
    # the two paths, each alone: through D's input with the target held, through the target with D's output held
    through_input = y.detach().clone().requires_grad_(True)
    (task.D.reconstruct(through_input) - y.detach()).abs().mean().backward()
    through_target = y.detach().clone().requires_grad_(True)
    (task.D.reconstruct(y.detach()).detach() - through_target).abs().mean().backward()
    assert through_input.grad.abs().sum() > 0 and through_target.grad.abs().sum() > 0
    assert torch.allclose(both, through_input.grad + through_target.grad, atol=1e-7)
    assert not torch.allclose(both, through_input.grad)  # a detached target (a common port bug) loses a path
    # and on to G's weights, from its own draw
    task.zero_grad(set_to_none=True)
    task.g_loss(batch).loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in task.G.parameters())


# ---------------------------------------------------------------- networks and prior


@pytest.mark.parametrize("size", [8, 16, 32, 64])
def test_networks_follow_the_paper_architecture(size):
    n = 4
    G = Generator(z_dim=7, image_size=size, channels=1, width=n)
    D = AutoencoderDiscriminator(image_size=size, channels=1, width=n, code_dim=7)
    z = torch.rand(2, 7) * 2 - 1
    assert G(z).shape == (2, 1, size, size) and D(G(z)).shape == (2,)
    repeats = size.bit_length() - 3
    # no batch norm, ELUs only; the decoder is nearest-neighbour up-sampling, the encoder strided 3x3 convolutions
    for net in (G, D):
        assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
        assert {type(m) for m in net.modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.ELU))} == {nn.ELU}
    convs = [m for m in D.encoder.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert [c.out_channels for c in convs if c.stride == (2, 2)] == [n * (i + 1) for i in range(repeats - 1)]
    assert convs[-1].out_channels == n * repeats  # linear growth n, 2n, 3n, ...
    last = list(D.encoder.net)[-1]
    assert isinstance(last, nn.Linear) and last.out_features == 7  # h: linear, no non-linearity after it
    ups = [m for m in G.modules() if isinstance(m, nn.Upsample)]
    assert len(ups) == repeats - 1 and all(u.mode == "nearest" for u in ups)
    assert isinstance(list(G.net)[-1], nn.Conv2d)  # linear output, no tanh
    # G has the decoder's architecture (N_z = N_h here) with its own weights
    assert [p.shape for p in G.parameters()] == [p.shape for p in D.decoder.parameters()]
    assert not any(torch.equal(a, b) for a, b in zip(G.parameters(), D.decoder.parameters()) if a.dim() > 1)


def test_other_sizes_are_refused_naming_the_key():
    with pytest.raises(ConfigError, match="dataset.image_size=48"):
        Generator(image_size=48)


def test_z_is_uniform_on_the_cube_and_interpolates_inside_it():
    task = _task()
    z = task.sample_inputs(4000)["z"]
    assert z.min() >= -1 and z.max() <= 1 and z.min() < -0.99 and z.max() > 0.99
    assert z.mean().abs() < 0.02 and (z.var() - 1 / 3).abs() < 0.01  # U[-1, 1]: mean 0, variance 1/3
    path = task.interpolation(rows=3, steps=5)["z"].view(3, 5, -1)
    assert path.abs().max() <= 1
    assert torch.allclose(path[:, 2], (path[:, 0] + path[:, 4]) / 2, atol=1e-6)  # a straight line
    with pytest.raises(ConfigError, match="model.prior='laplace'"):
        _task(prior="laplace")


# ---------------------------------------------------------------- configs and runs


@pytest.mark.parametrize("override, key", [("model.gamma=0", "model.gamma"), ("model.gamma=1.5", "model.gamma"),
                                           ("model.lambda_k=-0.001", "model.lambda_k"), ("model.k0=1.2", "model.k0"),
                                           ("model.k0=-0.1", "model.k0"), ("loss=hinge", "loss=Hinge")])
def test_bad_values_stop_the_run_before_training_naming_the_key(tmp_path, override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        run(compose_train([*TINY, "model=began", "dataset.count=64", override]), tmp_path)
    assert not (tmp_path / "checkpoints").exists()


def test_k_and_its_history_resume_exactly(tmp_path):
    small = ["model.generator.width=8", "model.discriminator.width=8", "model.lambda_k=0.1"]  # k moves visibly
    a, b = stop_and_resume(tmp_path, [*TINY, "model=began", "dataset.count=64", *small])
    assert a["task"]["loss.k"].item() == b["task"]["loss.k"].item() > 0
    history = _losses(tmp_path / "full")
    assert [step for step, _ in history["began/k"]] == [1, 2, 3, 4, 5, 6]  # logged every step
    assert history["began/k"] == _losses(tmp_path / "part")["began/k"]
    assert history["began/k"][-1][1] == pytest.approx(a["task"]["loss.k"].item())
    assert len({k for _, k in history["began/k"]}) == 6  # it moved at every step
    assert "began/M_global" in history
    assert checkpoint.load(tmp_path / "full" / "checkpoints" / "last.pt")["config"]["loss"] is None
