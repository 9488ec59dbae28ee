"""SAGAN (Zhang et al. 2019): the self-attention block (§3), spectral normalization (Miyato et al. 2018) of
every layer of G and D (§4), exact resume of its power-iteration state, and the TTUR option (Heusel et al.
2017) on any model."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from gan_lab.engine.restore import restore
from gan_lab.errors import ConfigError
from gan_lab.losses.adversarial import Hinge
from gan_lab.models import dcgan
from gan_lab.models.blocks import SelfAttention
from gan_lab.models.noise import NoiseToImage
from gan_lab.train import setup
from gan_lab.tricks.spectral_norm import SpectralNorm
from tests.conftest import TINY, compose_train, flat_model
from tests.test_resume import stop_and_resume

# width 8: 8 channels at the attention blocks (1 query/key channel), the smallest the block takes
SAGAN = [*TINY, "model=sagan", "dataset.count=64", "model.generator.width=8", "model.discriminator.width=8"]


def attention(channels=16, gamma=0.0):
    torch.manual_seed(0)
    block = SelfAttention(channels)
    with torch.no_grad():
        block.gamma.fill_(gamma)
    return block, torch.randn(2, channels, 6, 5)


# ---------------------------------------------------------------- the self-attention block (§3)


def test_attention_is_the_identity_while_gamma_is_zero_and_gamma_learns():
    block, x = attention()
    assert block.gamma.item() == 0.0  # initialised to 0 (§3)
    y = block(x)
    assert torch.equal(y, x)
    y.square().sum().backward()
    assert block.gamma.grad.abs() > 0  # ... and receives a gradient, so it can leave 0
    block, x = attention(gamma=0.5)
    assert not torch.allclose(block(x), x)


def test_attention_follows_the_papers_equations_with_c_over_8_query_and_key_channels():
    block, x = attention(channels=32, gamma=0.7)
    assert block.f.out_channels == block.g.out_channels == block.h.out_channels == 32 // 8
    assert block.v.in_channels == 4 and block.v.out_channels == 32
    f, g, h = (conv(x).flatten(2) for conv in (block.f, block.g, block.h))  # (B, C/8, N)
    assert f.shape == g.shape == (2, 4, 30)
    s = torch.einsum("bci,bcj->bij", f, g)  # s_ij = f(x_i)^T g(x_j)
    beta = s.softmax(dim=1)  # beta_{j,i}: softmax over the attended positions i
    o = block.v(torch.einsum("bij,bci->bcj", beta, h).view(2, 4, 6, 5))  # o_j = v(sum_i beta_ji h(x_i))
    torch.testing.assert_close(block(x), 0.7 * o + x)


def test_attention_reaches_every_position():
    block, x = attention(gamma=1.0)
    x2 = x.clone()
    x2[:, :, 0, 0] += 1.0  # one corner changes ...
    assert not torch.allclose(block(x2)[:, :, -1, -1], block(x)[:, :, -1, -1])  # ... and the far corner sees it


def test_attention_position_option_in_the_dcgan_networks():
    G = dcgan.Generator(z_dim=8, image_size=32, channels=3, width=8, attention_at=8)
    D = dcgan.Discriminator(image_size=32, channels=3, width=8, norm="none", attention_at=16)
    seen = []
    for net in (G, D):
        for m in net.modules():
            if isinstance(m, SelfAttention):
                m.register_forward_hook(lambda m, args, out: seen.append(out.shape))
    D(G(torch.randn(2, 8)))
    assert seen == [(2, 16, 8, 8), (2, 8, 16, 16)]  # G's 8x8 maps, D's 16x16 maps
    assert not any(isinstance(m, SelfAttention) for m in dcgan.Generator(image_size=32, width=8).modules())
    with pytest.raises(ConfigError, match=r"model\.discriminator\.attention_at=32"):
        dcgan.Discriminator(image_size=32, width=8, attention_at=32)


# ---------------------------------------------------------------- spectral normalization (§4)


def _layers(net):
    return [m for m in net.modules() if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))]


def _sigma(layer, weight):
    """Largest singular value of a weight as a matrix (out, in * k * k); dim 1 is "out" for transposed convs."""
    dim = 1 if isinstance(layer, nn.modules.conv._ConvTransposeNd) else 0
    return torch.linalg.matrix_norm(weight.detach().movedim(dim, 0).flatten(1), ord=2).item()


def test_sagan_config_has_the_papers_settings():
    cfg = compose_train(["model=sagan"])
    assert cfg.loss._target_ == "gan_lab.losses.adversarial.Hinge"
    assert list(cfg.tricks.spectral_norm.networks) == ["G", "D"] and cfg.tricks.spectral_norm.n_power_iterations == 1
    assert cfg.optim.D.lr == 4e-4 and cfg.optim.G.lr == 1e-4 and cfg.train.n_critic == 1
    assert list(cfg.optim.D.betas) == list(cfg.optim.G.betas) == [0.0, 0.9]
    assert cfg.model.discriminator.norm == "none"
    assert cfg.model.generator.attention_at == cfg.model.discriminator.attention_at == 16
    assert list(compose_train(["tricks=[spectral_norm]"]).tricks.spectral_norm.networks) == ["D"]  # Miyato et al.


def test_sagan_normalises_every_layer_of_g_and_d_to_unit_spectral_norm():
    state, _, _ = setup(compose_train(SAGAN))
    task = state.task
    assert sum(isinstance(m, SelfAttention) for m in task.modules()) == 2
    for net in (task.G, task.D):
        layers = _layers(net)
        assert len(layers) >= 5 and all(parametrize.is_parametrized(m, "weight") for m in layers)
        assert max(abs(_sigma(m, m.parametrizations.weight.original) - 1) for m in layers) > 0.5  # raw weights are not
    torch.manual_seed(1)
    with torch.no_grad():
        for _ in range(50):  # one power iteration per layer and training forward pass
            task.D(task.G(torch.randn(8, task.G.z_dim)))
    task.eval()  # reading the weights in eval mode does not iterate further
    for net in (task.G, task.D):
        for m in _layers(net):
            assert _sigma(m, m.weight) == pytest.approx(1.0, abs=1e-2), m


def test_spectral_norm_refuses_a_network_without_convolutions_or_linear_layers():
    class Bias(nn.Module):
        def __init__(self):
            super().__init__()
            self.b = nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return x.flatten(1).sum(1) + self.b

    task = NoiseToImage(dcgan.Generator(z_dim=8, image_size=32, width=8), Bias(), Hinge())
    with pytest.raises(ConfigError, match=r"tricks\.spectral_norm\.networks: D \(Bias\) has no convolution"):
        SpectralNorm(networks=["D"]).modify(task)
    SpectralNorm(networks=["G"]).modify(task)  # G has some
    with pytest.raises(ConfigError, match=r"tricks\.spectral_norm\.networks must list G and/or D"):
        setup(compose_train([*SAGAN, "tricks.spectral_norm.networks=[E]"]))


def test_sagan_with_ema_resumes_exactly_and_restores(tmp_path):
    a, b = stop_and_resume(tmp_path, [*SAGAN, "tricks=[ema]"])
    assert any(k.endswith("parametrizations.weight.0._u") for k in flat_model(a))  # the power iteration's state
    ema = a["models"]["G_ema"]
    for key, value in ema.items():  # the EMA copy of G is normalised too, with its own u, v
        assert torch.equal(value, b["models"]["G_ema"][key]), key
    assert ema.keys() == {k[2:] for k in flat_model(a) if k.startswith("G.")}

    restored = restore(tmp_path / "full", torch.device("cpu"))  # gan-lab eval / sample: normalised again before loading
    assert all(parametrize.is_parametrized(m, "weight") for m in _layers(restored.generator))
    for key, value in restored.generator.state_dict().items():
        assert torch.equal(value, ema[key]), key


# ---------------------------------------------------------------- TTUR on any model


def test_ttur_sets_the_learning_rates_of_any_models_optimizers():
    cfg = compose_train(["model=dcgan", "tricks=[ttur]"])
    assert cfg.optim.D.lr == 4e-4 and cfg.optim.G.lr == 1e-4
    assert list(cfg.optim.D.betas) == [0.5, 0.999]  # the model's optimizer otherwise
    wgan = compose_train(["model=wgan", "tricks=[ttur]"])
    assert wgan.optim.D._target_ == "torch.optim.RMSprop" and wgan.optim.D.lr == 4e-4
    assert compose_train(["tricks=[ttur]", "optim.D.lr=1e-3"]).optim.D.lr == 1e-3  # the command line still wins
    assert set(compose_train(["model=wgan_gp", "tricks=[ttur,ema]"]).tricks) == {"gradient_penalty", "ema"}


def test_ttur_with_ema_builds_optimizers_with_the_two_rates():
    state, _, _ = setup(compose_train([*TINY, "model=dcgan", "tricks=[ttur,ema]", "dataset.count=16"]))
    assert set(state.tricks) == {"ema"}
    assert state.optimizers["D"].param_groups[0]["lr"] == 4e-4
    assert state.optimizers["G"].param_groups[0]["lr"] == 1e-4
