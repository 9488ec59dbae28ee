"""Tricks of Salimans et al. 2016 ("Improved Techniques for Training GANs": virtual batch norm, historical
averaging, one-sided label smoothing) and instance noise (Sønderby et al. 2017): their defining properties,
refusals, checkpointed state and exact resume."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gan_lab.engine import checkpoint
from gan_lab.engine.restore import restore
from gan_lab.errors import ConfigError
from gan_lab.losses.adversarial import Hinge, NonSaturating, Wasserstein
from gan_lab.models import dcgan
from gan_lab.models.noise import NoiseToImage
from gan_lab.models.terms import CriticPass
from gan_lab.train import run, setup
from gan_lab.tricks.historical_averaging import HistoricalAveraging
from gan_lab.tricks.instance_noise import InstanceNoise
from gan_lab.tricks.label_smoothing import LabelSmoothing
from gan_lab.tricks.virtual_batchnorm import ReferenceBatchGenerator, VirtualBatchNorm, VirtualBatchNormTrick
from tests.conftest import TINY, compose_train, flat_model
from tests.test_resume import stop_and_resume

SMALL = ["dataset.count=64", "model.generator.width=4", "model.discriminator.width=4"]


def task(loss=None):
    torch.manual_seed(0)
    return NoiseToImage(dcgan.Generator(z_dim=8, image_size=32, channels=3, width=4),
                        dcgan.Discriminator(image_size=32, channels=3, width=4), loss or NonSaturating())


def real_batch(n=8):
    return {"real": torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1}


# ---------------------------------------------------------------- virtual batch norm


@pytest.mark.parametrize("shape", [(6, 5, 3, 3), (6, 5)])
def test_vbn_mixes_reference_and_example_statistics(shape):
    r = 4
    x = torch.randn(r + 3, *shape[1:], dtype=torch.float64) * 3 + 1
    bn = nn.BatchNorm2d(5) if len(shape) == 4 else nn.BatchNorm1d(5)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    vbn = VirtualBatchNorm.from_batchnorm(bn.double(), r)
    out = vbn(x)
    positions = tuple(range(2, x.dim()))
    view = (1, -1) + (1,) * len(positions)
    w, b = bn.weight.view(view), bn.bias.view(view)
    # reference rows: plain batch norm over the reference batch alone
    torch.testing.assert_close(out[:r], F.batch_norm(x[:r], None, None, bn.weight, bn.bias, training=True))
    # example rows: mean and mean square weighted 1/(R+1) (the example) and R/(R+1) (the reference)
    ref = x[:r]
    for i in range(r, len(x)):
        xi = x[i:i + 1]
        own_mean = xi.mean(positions, keepdim=True) if positions else xi
        own_sq = xi.square().mean(positions, keepdim=True) if positions else xi.square()
        mean = own_mean / (r + 1) + ref.mean((0, *positions), keepdim=True) * r / (r + 1)
        sq = own_sq / (r + 1) + ref.square().mean((0, *positions), keepdim=True) * r / (r + 1)
        torch.testing.assert_close(out[i:i + 1], (xi - mean) / torch.sqrt(sq - mean**2 + bn.eps) * w + b)


def test_vbn_sample_depends_on_the_reference_batch_not_on_its_own_batch():
    t = task()
    z = torch.randn(5, 8)
    assert not torch.allclose(t.G(z)[:1], t.G(z[:1]))  # batch norm: a sample depends on its batch
    bn_weight = t.G.net[2].weight.detach().clone()
    VirtualBatchNormTrick(reference_size=6).modify(t)
    assert isinstance(t.G, ReferenceBatchGenerator) and t.G.reference_0.shape == (6, 8)
    assert t.sample_inputs(2)["z"].shape == (2, 8)  # the task knows its latent without reading the wrapped G
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in t.G.modules())
    assert torch.equal(t.G.generator.net[2].weight, bn_weight)  # affine parameters carried over
    for mode in (t.G.train, t.G.eval):
        mode()
        out = t.G(z)
        assert out.shape == (5, 3, 32, 32)
        torch.testing.assert_close(out[:1], t.G(z[:1]))
        torch.testing.assert_close(out[1:3], t.G(torch.cat([z[1:3], torch.randn(7, 8)]))[:2])
    with torch.no_grad():
        t.G.reference_0.normal_()
    assert not torch.allclose(t.G(z), out)  # ... and on the reference batch


def test_vbn_refuses_a_generator_without_batch_norm():
    with pytest.raises(ConfigError, match="virtual_batchnorm.*no batch norm.*cannot apply"):
        setup(compose_train([*TINY, "model=gan", "tricks=[virtual_batchnorm]", "dataset.count=16"]))


def test_vbn_reference_is_restored_with_the_ema_generator(tmp_path):
    cfg = compose_train([*TINY, *SMALL, "train.steps=2", "tricks=[virtual_batchnorm,ema]",
                         "tricks.virtual_batchnorm.reference_size=4"])
    run(cfg, tmp_path)
    state = checkpoint.load(tmp_path / "checkpoints" / "last.pt")
    torch.manual_seed(123)  # restore's modify draws another reference, which the checkpoint's replaces
    restored = restore(tmp_path, torch.device("cpu"))
    assert torch.equal(restored.task.G.reference_0, flat_model(state)["G.reference_0"])
    G = restored.generator
    assert G is not restored.task.G and isinstance(G, ReferenceBatchGenerator)
    assert torch.equal(G.reference_0, state["models"]["G_ema"]["reference_0"])
    z = torch.randn(3, restored.task.z_dim)
    torch.testing.assert_close(G(z)[1:2], G(z[1:2]))


def test_vbn_wraps_a_generator_with_latent_codes():
    # InfoGAN's codes are the task's, read before VBN wraps G: drawing, the information term and sampling work
    cfg = compose_train([*TINY, *SMALL, "model=infogan", "tricks=[virtual_batchnorm]",
                         "tricks.virtual_batchnorm.reference_size=4"])
    state, data, hw = setup(cfg)
    task = state.task
    assert isinstance(task.G, ReferenceBatchGenerator)
    batch = data.batch(torch.arange(8))
    assert {"loss/info_categorical", "loss/G_info_continuous"} <= {*task.d_loss(batch).stats, *task.g_loss(batch).stats}
    with torch.no_grad():
        assert task.sample(3, task.G)["samples"].shape == (3, 3, 32, 32)


# ---------------------------------------------------------------- historical averaging


def test_historical_averaging_is_zero_at_the_first_step_and_the_distance_to_the_mean_after():
    t = task()
    ha = HistoricalAveraging(weight=2.0)
    ha.setup(t)
    out = t.d_loss(real_batch())
    assert out.stats["penalty/historical_averaging_D"] == 0
    assert t.g_loss(real_batch()).stats["penalty/historical_averaging_G"] == 0
    snapshots = [[p.detach().clone() for p in t.D.parameters()]]
    for delta in (0.1, -0.3, 0.05):  # three D "updates"
        with torch.no_grad():
            for p in t.D.parameters():
                p.add_(delta)
        ha.after_phase(t, "D", 1)
        snapshots.append([p.detach().clone() for p in t.D.parameters()])
    mean = [torch.stack(s).mean(0) for s in zip(*snapshots)]
    expected = 2.0 * sum((p - m).square().sum() for p, m in zip(t.D.parameters(), mean))
    torch.manual_seed(1)
    out = t.d_loss(real_batch())
    term = out.stats["penalty/historical_averaging_D"]
    assert term > 0
    torch.testing.assert_close(term, expected.detach())
    t.penalties.clear()
    torch.manual_seed(1)
    torch.testing.assert_close(out.loss - t.d_loss(real_batch()).loss, term)  # the term is added to D's loss
    t.penalties.append(ha)
    # D's loss carries the term's gradient 2 w (theta - mean); G was not updated, so its term is still 0
    t.D.zero_grad()
    ha.d_terms(t, CriticPass())["penalty/historical_averaging_D"].backward()
    first = next(t.D.parameters())
    torch.testing.assert_close(first.grad, 4.0 * (first - mean[0]).detach())
    assert t.g_loss(real_batch()).stats["penalty/historical_averaging_G"] == 0


def test_historical_averaging_state_survives_a_checkpoint(tmp_path):
    t = task()
    ha = HistoricalAveraging()
    ha.setup(t)
    ha.d_terms(t, CriticPass())
    for _ in range(2):
        with torch.no_grad():
            for p in t.D.parameters():
                p.mul_(1.1)
        ha.after_phase(t, "D", 1)
    torch.save(ha.state_dict(), tmp_path / "ha.pt")
    resumed = HistoricalAveraging()
    resumed.setup(task())
    resumed.load_state_dict(torch.load(tmp_path / "ha.pt", weights_only=True))
    for trick in (ha, resumed):  # the same next update and penalty
        with torch.no_grad():
            for p in t.D.parameters():
                p.add_(0.01)
        trick.after_phase(t, "D", 1)
        with torch.no_grad():
            for p in t.D.parameters():
                p.sub_(0.01)
    assert ha.means["D"].count == resumed.means["D"].count == 4
    assert torch.equal(ha.d_terms(t, CriticPass())["penalty/historical_averaging_D"],
                       resumed.d_terms(t, CriticPass())["penalty/historical_averaging_D"])


# ---------------------------------------------------------------- one-sided label smoothing


def test_label_smoothing_targets_alpha_for_real_and_zero_for_fake():
    t = task()
    LabelSmoothing(alpha=0.8).setup(t)
    loss = t.loss
    r, f = torch.randn(16, dtype=torch.float64) * 3, torch.randn(16, dtype=torch.float64) * 3
    bce = F.binary_cross_entropy_with_logits
    torch.testing.assert_close(loss.d_loss(r, f), bce(r, torch.full_like(r, 0.8)) + bce(f, torch.zeros_like(f)))
    # D's optimum on a real example moves to sigmoid = alpha; a fake's stays at 0
    logit = torch.tensor([math.log(0.8 / 0.2)], dtype=torch.float64, requires_grad=True)
    loss.d_loss(logit, torch.tensor([-50.0], dtype=torch.float64)).backward()
    assert abs(logit.grad.item()) < 1e-12
    # where real and fake look alike, D* = alpha p_data / (p_data + p_g) = alpha / 2
    shared = torch.tensor([math.log(0.4 / 0.6)], dtype=torch.float64, requires_grad=True)
    loss.d_loss(shared, shared).backward()
    assert abs(shared.grad.item()) < 1e-12
    assert NonSaturating().real_target == 1.0  # other runs keep the hard targets


@pytest.mark.parametrize("loss", [Wasserstein(), Hinge()])
def test_label_smoothing_refuses_critic_losses(loss):
    with pytest.raises(ConfigError, match="tricks.label_smoothing"):
        LabelSmoothing().setup(task(loss))


def test_label_smoothing_refuses_loss_wasserstein_from_the_config():
    with pytest.raises(ConfigError, match="tricks.label_smoothing.*Wasserstein"):
        setup(compose_train([*TINY, *SMALL, "loss=wasserstein", "tricks=[label_smoothing]"]))


# ---------------------------------------------------------------- instance noise


def test_instance_noise_std_anneals_linearly_to_zero():
    noise = InstanceNoise(std=0.1, anneal_steps=10)
    assert [noise.std_at(s) for s in (0, 5, 10, 20)] == pytest.approx([0.1, 0.05, 0.0, 0.0])
    noise.begin_step(task(), 5)  # the level of step 5 is that after 4 steps: a function of the step, no state
    assert noise.step == 4 and noise.state_dict() == {}
    with pytest.raises(ValueError, match="tricks.instance_noise.anneal_steps"):
        InstanceNoise(anneal_steps=0)


def test_instance_noise_reaches_every_discriminator_input_until_annealed():
    t = task()
    noise = InstanceNoise(std=0.1, anneal_steps=4)
    noise.setup(t)
    seen = []
    t.D.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    batch = real_batch()
    noise.begin_step(t, 1)
    carry = t.d_loss(batch).carry
    fake = carry[1].detach()
    t.g_loss(batch, carry)
    assert len(seen) == 3  # real and fake in D's step, fake in G's step
    for x, clean in zip(seen, (batch["real"], fake, fake)):
        assert (x - clean).std().item() == pytest.approx(0.1, rel=0.05)
    noise.begin_step(t, 5)  # annealed after 4 steps: D sees the clean samples
    seen.clear()
    carry = t.d_loss(batch).carry
    assert torch.equal(seen[0], batch["real"]) and torch.equal(seen[1], carry[1].detach())


# ---------------------------------------------------------------- training with the tricks


def test_label_smoothing_and_instance_noise_train_dcgan(tmp_path):
    cfg = compose_train([*TINY, *SMALL, "model=dcgan", "tricks=[label_smoothing,instance_noise]"])
    assert cfg.tricks.instance_noise.anneal_steps == cfg.train.steps  # annealed over the run by default
    loss_g = run(cfg, tmp_path)
    assert math.isfinite(loss_g)
    state = checkpoint.load(tmp_path / "checkpoints" / "last.pt")
    assert state["tricks"]["instance_noise"] == {} and state["tricks"]["label_smoothing"] == {}


def test_stop_and_resume_equals_uninterrupted(tmp_path):
    """Instance noise's step, historical averages and VBN's reference continue exactly after a resume."""
    a, b = stop_and_resume(tmp_path, [*TINY, *SMALL, "tricks=[instance_noise,historical_averaging,virtual_batchnorm,ema]",
                                      "tricks.instance_noise.anneal_steps=5", "tricks.virtual_batchnorm.reference_size=4"])
    assert a["tricks"]["instance_noise"] == b["tricks"]["instance_noise"] == {}  # its level is a function of the step
    for net in ("G", "D"):
        ha_a, ha_b = a["tricks"]["historical_averaging"][net], b["tricks"]["historical_averaging"][net]
        assert ha_a["count"] == ha_b["count"] > 1
        assert all(torch.equal(v, ha_b["mean"][k]) for k, v in ha_a["mean"].items())
