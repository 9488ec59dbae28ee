"""EBGAN (Zhao et al. 2017): the pull-away term, the margin loss, the auto-encoder energy, G's gradient path."""

from __future__ import annotations

import math

import pytest
import torch

from gan_lab.losses.adversarial import EnergyMargin
from gan_lab.models.dcgan import Generator
from gan_lab.models.ebgan import AutoencoderDiscriminator, EBGANTask, pull_away


def test_pull_away_is_zero_for_orthogonal_codes_and_grows_with_their_cosine():
    assert pull_away(torch.eye(5)) == 0
    assert pull_away(3 * torch.eye(4)[:, torch.randperm(4)]) == 0  # any lengths, any order
    v = torch.randn(7)
    collinear = torch.tensor([1.0, -2.0, 0.5])[:, None] * v  # any sign and scale
    assert pull_away(collinear).item() == pytest.approx(1.0, abs=1e-6)
    values = []
    for angle in (1.5, 1.0, 0.5, 0.1):  # two unit codes at this angle: f_PT = cos^2
        pair = torch.tensor([[1.0, 0.0], [math.cos(angle), math.sin(angle)]]) * torch.tensor([[2.0], [0.3]])
        values.append(pull_away(pair).item())
        assert values[-1] == pytest.approx(math.cos(angle) ** 2, abs=1e-6)
    assert values == sorted(values)
    codes = torch.randn(16, 8)
    assert 0 <= pull_away(codes) <= 1
    assert pull_away(codes).item() == pytest.approx(pull_away(codes * torch.rand(16, 1) * 5).item(), abs=1e-6)


def test_margin_loss_is_a_per_sample_hinge_on_the_fake_energy():
    loss = EnergyMargin(margin=1.0)
    real = torch.tensor([0.2, 0.4])
    fake = torch.tensor([0.5, 1.5], requires_grad=True)  # one below the margin, one beyond it
    out = loss.d_loss(real, fake)
    assert out.item() == pytest.approx(0.3 + (0.5 + 0.0) / 2)
    out.backward()
    assert fake.grad.tolist() == [-0.5, 0.0]  # d/dD(G(z)) of the mean hinge: -1/B below m, 0 at or beyond
    beyond = torch.tensor([1.0, 3.0])
    assert loss.d_loss(real, beyond).item() == pytest.approx(real.mean().item())  # all fakes at m: L_D = D(x)
    assert loss.g_loss(torch.tensor([0.5, 1.5])).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="loss.margin"):
        EnergyMargin(margin=0)


def test_energy_is_the_reconstruction_error_and_codes_come_from_the_encoder():
    torch.manual_seed(0)
    D = AutoencoderDiscriminator(image_size=32, channels=3, width=8, code_dim=16).eval()
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    energy = D(x)
    assert energy.shape == (4,) and (energy >= 0).all()
    expected = (D.decoder(D.encode(x)) - x).square().mean((1, 2, 3))
    assert torch.allclose(energy, expected)
    assert D.encode(x).shape == (4, 16)


def _task(pt_weight=0.1):
    torch.manual_seed(0)
    return EBGANTask(Generator(z_dim=8, image_size=32, channels=3, width=8),
                     AutoencoderDiscriminator(image_size=32, channels=3, width=8, code_dim=16),
                     EnergyMargin(1.0), pt_weight=pt_weight)


def test_g_loss_adds_the_weighted_pull_away_term_and_reaches_g_through_the_reconstruction():
    batch = {"real": torch.rand(6, 3, 32, 32) * 2 - 1}
    task = _task()
    inputs = task.sample_inputs(6)
    fake = task.generate(task.G, inputs)
    out = task.g_loss(batch, (inputs, fake))
    pt = pull_away(task.D.encode(fake))
    assert out.loss.item() == pytest.approx(task.D(fake).mean().item() + 0.1 * pt.item(), rel=1e-5)
    assert out.stats["loss/G_pt"].item() == pytest.approx(pt.item(), rel=1e-5)
    # Without the pull-away term, G's gradient still flows through the reconstruction and the input: the
    # gradient of the energy w.r.t. G(z) equals that of |Dec(Enc(y)) - y|^2 with y = G(z) everywhere.
    plain = _task(pt_weight=0)
    y = plain.generate(plain.G, plain.sample_inputs(6)).detach().requires_grad_(True)
    plain.g_loss(batch, ({"z": None}, y)).loss.backward()
    detached = y.detach().clone().requires_grad_(True)
    (plain.D.decoder(plain.D.encode(detached)) - detached.detach()).square().flatten(1).mean(1).mean().backward()
    assert not torch.allclose(y.grad, detached.grad)  # a detached target would give the other gradient
