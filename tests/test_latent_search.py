"""The latent search shared by AnoGAN's mapping and iGAN's projection (gan_lab.latent_search)."""

import torch
from torch import nn

from gan_lab.latent_search import frozen, search


def _generator() -> nn.Module:
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Linear(16, 8))
    G.train(); G(torch.randn(32, 4))  # batch-norm statistics that are not the identity
    return G


def test_search_recovers_the_latent_of_a_generated_point():
    G = _generator()
    z_true = torch.rand(5, 4) * 2 - 1
    with frozen(G):
        x = G(z_true)
        z, loss = search(lambda z: (G(z) - x).square().mean(1), torch.zeros(5, 4), steps=800, lr=0.05)
        assert loss.max() < 1e-6
        assert torch.allclose(G(z), x, atol=1e-3)


def test_a_batch_searches_as_each_image_alone():
    G = _generator()
    x = torch.randn(3, 8)
    z0 = torch.randn(3, 4)
    with frozen(G):
        z_batch, loss_batch = search(lambda z: (G(z) - x).abs().sum(1), z0, steps=50, lr=0.01)
        for i in range(3):
            z_one, loss_one = search(lambda z: (G(z) - x[i:i + 1]).abs().sum(1), z0[i:i + 1], steps=50, lr=0.01)
            assert torch.allclose(z_batch[i], z_one[0], atol=1e-5)
            assert torch.allclose(loss_batch[i], loss_one[0], atol=1e-4)


def test_the_networks_do_not_change_and_get_their_modes_back():
    G = _generator()
    before = {k: v.clone() for k, v in G.state_dict().items()}
    with frozen(G):
        assert not G.training and not any(p.requires_grad for p in G.parameters())
        search(lambda z: G(z).square().sum(1), torch.randn(4, 4), steps=5, lr=0.1)
    assert G.training and all(p.requires_grad for p in G.parameters())
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())


def test_a_start_at_the_optimum_stays_there_and_bounds_hold():
    G = _generator()
    z0 = torch.rand(4, 4) * 2 - 1
    with frozen(G):
        x = G(z0)
        z, loss = search(lambda z: (G(z) - x).abs().sum(1), z0, steps=20, lr=0.01)
        assert torch.equal(z, z0) and loss.max() == 0  # the L1 subgradient at 0 is 0
        far = G(torch.full((1, 4), 5.0))
        z, _ = search(lambda z: (G(z) - far).abs().sum(1), torch.zeros(1, 4), steps=200, lr=0.1, bounds=(-1, 1))
    assert z.abs().max() <= 1
