"""BiGAN / ALI (Donahue et al. 2017, Dumoulin et al. 2017): D's joint pairs, the gradient routing of the three
phases, ALI's reparametrised encoder, config errors, and the encoder metrics (reconstruction, linear probe)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gan_lab.engine.build import build_task
from gan_lab.errors import ConfigError
from gan_lab.eval import evaluate
from gan_lab.losses.adversarial import NonSaturating
from gan_lab.models.bigan import BiGANTask, Encoder, JointDiscriminator, generator
from gan_lab.data.base import TensorDataset
from gan_lab.metrics.encoder import Reconstruction, linear_probe
from gan_lab.train import run
from tests.conftest import TINY, compose_train

SHAPE = [1, 8, 8]


def _task(prior="uniform", stochastic=False, arch="mlp", shape=SHAPE, z_dim=4):
    torch.manual_seed(0)
    kw = dict(arch=arch, width=8) if arch == "conv" else dict(arch=arch, hidden=[16])
    return BiGANTask(generator(shape, z_dim, arch=arch, width=8, hidden=[16]),
                     Encoder(shape, z_dim, stochastic=stochastic, **kw),
                     JointDiscriminator(shape, z_dim, z_hidden=[8], joint_hidden=[8], **kw),
                     NonSaturating(), prior=prior)


def _batch(n=6, shape=SHAPE):
    return {"real": torch.rand(n, *shape) * 2 - 1}


class RecordingD(nn.Module):
    """The task's D, recording every (x, z) pair batch it judges."""

    def __init__(self, D):
        super().__init__()
        self.inner, self.z_dim, self.seen = D, D.z_dim, []

    def forward(self, x, z):
        self.seen.append((x.detach().clone(), z.detach().clone()))
        return self.inner(x, z)


def test_d_judges_data_with_its_code_as_real_and_g_of_z_with_that_same_z_as_fake():
    task, batch = _task(), _batch()
    task.seed_latent(3)
    task.D = RecordingD(task.D)
    stream = torch.Generator().manual_seed(0)
    stream.set_state(task.latent.get_state())
    z_expected = torch.rand(6, 4, generator=stream) * 2 - 1  # the prior U[-1, 1]^4, from the latent stream
    out = task.d_loss(batch)
    (x_real, z_real), (x_fake, z_fake) = task.D.seen
    assert torch.equal(x_real, batch["real"])
    assert torch.allclose(z_real, torch.tanh(task.E(batch["real"])))  # (x, E(x)), E(x) inside the prior's support
    assert torch.equal(z_fake, z_expected)
    assert torch.allclose(x_fake, task.G(z_expected))  # (G(z), z): the same z in both places
    real_logits, fake_logits = task.D.inner(x_real, z_real), task.D.inner(x_fake, z_fake)
    assert out.loss.item() == pytest.approx(  # BCE: (x, E(x)) labelled 1, (G(z), z) labelled 0 (ALI Eq. 1)
        (F.binary_cross_entropy_with_logits(real_logits, torch.ones(6))
         + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros(6))).item(), rel=1e-6)
    # The E and G steps: E sees the data pair only, G the D step's fake pair (handed off) only.
    task.D.seen.clear()
    task.e_loss(batch, out.carry)
    ((x_e, z_e),) = task.D.seen
    assert torch.equal(x_e, batch["real"]) and torch.allclose(z_e, z_real)
    task.D.seen.clear()
    task.g_loss(batch, out.carry)
    ((x_g, z_g),) = task.D.seen
    assert torch.equal(z_g, z_expected) and torch.equal(x_g, x_fake)


def _grads(net):
    return [p.grad for p in net.parameters()]


def test_d_step_leaves_e_and_g_without_gradient():
    task, batch = _task(), _batch()
    task.d_loss(batch).loss.backward()
    assert all(g is None for g in _grads(task.E) + _grads(task.G))
    assert all(g is not None for g in _grads(task.D))


def test_e_learns_only_through_the_real_pair_and_g_only_through_the_fake_pair():
    """Each phase's gradient equals that of ALI Algorithm 1's joint E/G cost,
    -mean log(1 - D(x, E(x))) - mean log D(G(z), z), for its own player (D fixed in between)."""
    task, batch = _task(), _batch()
    task.eval()  # no batch-norm statistics moving between the passes compared
    out = task.d_loss(batch)
    z, fake = out.carry
    task.zero_grad(set_to_none=True)
    task.e_loss(batch, out.carry).loss.backward(retain_graph=True)
    assert all(g is None for g in _grads(task.G))
    e_grads = [g.clone() for g in _grads(task.E)]
    task.zero_grad(set_to_none=True)
    task.g_loss(batch, out.carry).loss.backward(retain_graph=True)
    assert all(g is None for g in _grads(task.E))
    g_grads = [g.clone() for g in _grads(task.G)]

    task.zero_grad(set_to_none=True)
    x = batch["real"]
    joint = -torch.log1p(-torch.sigmoid(task.D(x, task.encode(x)))).mean() \
        - torch.log(torch.sigmoid(task.D(fake, z))).mean()
    joint.backward(retain_graph=True)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(e_grads, _grads(task.E)))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(g_grads, _grads(task.G)))
    assert sum(g.abs().sum() for g in e_grads) > 0 and sum(g.abs().sum() for g in g_grads) > 0

    task.zero_grad(set_to_none=True)  # the real pair masked: E gets nothing from the joint cost
    (-torch.log(torch.sigmoid(task.D(fake, z))).mean()).backward()
    assert all(g is None for g in _grads(task.E))


def test_phases_train_d_then_e_then_g_on_one_batch():
    task = _task()
    assert list(task.players()) == ["G", "E", "D"]
    phases = task.phases(1, n_critic=2)
    assert [(p.player, p.repeats, p.fresh_batch) for p in phases] == [("D", 2, True), ("E", 1, False),
                                                                       ("G", 1, False)]
    assert phases[0].hand_off == "G"


def test_ali_encoder_samples_mu_plus_sigma_eps_with_eps_from_the_latent_stream():
    task, batch = _task(prior="normal", stochastic=True), _batch()
    task.seed_latent(5)
    task.eval()
    mu, log_sigma = task.E(batch["real"]).chunk(2, dim=1)
    stream = torch.Generator().manual_seed(0)
    stream.set_state(task.latent.get_state())
    eps = torch.randn(mu.shape, generator=stream)
    z = task.encode(batch["real"])
    assert torch.allclose(z, mu + log_sigma.exp() * eps)
    assert torch.equal(task.latent.get_state(), stream.get_state())  # eps came from that stream, nothing else
    assert torch.equal(task.encode(batch["real"], sample=False), mu)
    z.sum().backward()  # reparametrised: the sample carries E's gradient
    assert all(p.grad is not None for p in task.E.parameters())


def test_priors_and_encoder_outputs_share_a_support():
    task = _task()
    z = task.draw_z(2000)
    assert z.min() >= -1 and z.max() <= 1 and z.min() < -0.99 and z.max() > 0.99
    codes = task.encode(_batch(n=4)["real"] * 50)  # any input: BiGAN's E lands inside U[-1, 1]^d
    assert codes.abs().max() <= 1
    normal = _task(prior="normal")
    assert normal.draw_z(4000).std().item() == pytest.approx(1.0, abs=0.05)


def test_random_encoder_is_seeded_fresh_and_leaves_the_rng_alone():
    task = _task(arch="conv", shape=[3, 32, 32])
    for p in task.E.parameters():
        p.data.add_(1.0)
    torch.manual_seed(11)
    before = torch.get_rng_state()
    a, b = task.random_encoder(7), task.random_encoder(7)
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not any(torch.equal(p, q) for p, q in zip(a.parameters(), task.E.parameters()))
    assert not a.training and task.E.training


@pytest.mark.parametrize("override, key", [
    ("model.prior=gaussian", "model.prior"),
    ("model.encoder.stochastic=true", "model.encoder.stochastic"),  # ALI's q(z|x) with BiGAN's uniform prior
    ("model.encoder.z_dim=7", "model.encoder.z_dim"),
    ("model.discriminator.z_dim=7", "model.discriminator.z_dim"),
    ("model.encoder.arch=rnn", "model.encoder.arch"),
    ("model.generator.arch=rnn", "model.generator.arch"),
    ("model.discriminator.dropout=1.5", "model.discriminator.dropout"),
    ("loss=leastsquares", "loss"),
])
def test_bad_config_is_a_config_error_naming_the_key(tmp_path, override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        run(compose_train([*TINY, "model=bigan", override]), tmp_path)
    assert not (tmp_path / "checkpoints").exists()


def test_ali_config_is_bigan_with_a_gaussian_encoder_and_its_optimizer():
    cfg = compose_train(["model=ali"])
    task, _ = build_task(cfg, torch.device("cpu"))
    assert isinstance(task, BiGANTask) and task.prior == "normal" and task.E.stochastic
    assert cfg.optim.E.lr == 1e-4 and list(cfg.optim.E.betas) == [0.5, 0.999]


def test_linear_probe_is_deterministic_and_reads_linear_structure():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 5, generator=g) * 4
    labels = torch.arange(300) % 3
    feats = centres[labels] + torch.randn(300, 5, generator=g) * 0.3
    acc = linear_probe(feats[:200], labels[:200], feats[200:], labels[200:], 3)
    assert acc == 1.0 and acc == linear_probe(feats[:200], labels[:200], feats[200:], labels[200:], 3)
    noise = torch.randn(300, 5, generator=g)  # features that carry nothing: about chance
    assert linear_probe(noise[:200], labels[:200], noise[200:], labels[200:], 3) < 0.6


class PerfectInverse:
    """A stand-in task whose E flattens 8x8 images into 64-d latents and whose G reshapes them back."""

    device, latent, E = torch.device("cpu"), None, nn.Identity()

    def encode(self, x, E=None, sample=True):
        return x.flatten(1)

    def random_encoder(self, seed):
        return nn.Identity()

    def draw_z(self, n):
        return torch.rand(n, 64, generator=self.latent) * 2 - 1


def test_reconstruction_is_zero_for_an_exact_inverse_and_not_against_another_image():
    images = torch.randint(0, 256, (40, 1, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    ev = SimpleNamespace(task=PerfectInverse(), G=lambda z: z.view(-1, 1, 8, 8), device=torch.device("cpu"),
                         data=TensorDataset({"real": images}), dataset={"split": "test"},
                         settings=SimpleNamespace(batch_size=16, split="test"), info={})
    values = Reconstruction(count=32)(ev, None)
    assert values["reconstruction L1"] == values["reconstruction L2"] == values["latent L1"] == 0
    x = images[:32].float()  # against the next image (the last against the first): their mean distance
    assert values["reconstruction L1 shuffled"] == pytest.approx(((x.roll(-1, 0) - x).abs() / 255).mean().item(),
                                                                  rel=1e-5)
    assert values["latent L1 shuffled"] > 0.5  # U[-1, 1] draws against others: 2/3 on average
    assert ev.info["reconstruction_on"] == "test split, 32 images"


def test_eval_reports_reconstruction_and_probe_beside_their_baselines(tmp_path):
    run(compose_train([*TINY, "model=bigan", "dataset.count=64"]), tmp_path / "run")
    cfg = compose_eval([f"ckpt={tmp_path / 'run'}", "eval.metrics=[reconstruction,probe]", "eval.num_samples=16",
                        "eval.available.reconstruction.count=32", "eval.available.probe.train_count=48",
                        "eval.available.probe.steps=20", "device=cpu"])
    report = evaluate(cfg)
    values = report["metrics"]
    assert set(values) == {"reconstruction L1", "reconstruction L1 shuffled", "reconstruction L2",
                           "reconstruction L2 shuffled", "latent L1", "latent L1 shuffled", "probe accuracy",
                           "probe accuracy random E"}
    assert all(0 <= values[k] <= 1 for k in ("probe accuracy", "probe accuracy random E"))
    assert "unseen images" in report["probe_on"] and "fit on 48" in report["probe_on"]
    assert json.loads(next((tmp_path / "run" / "eval").glob("*.json")).read_text())["metrics"] == values
    again = evaluate(cfg)["metrics"]  # seeded: the same numbers
    assert again == values


def test_encoder_metrics_skip_models_without_an_encoder(tmp_path):
    run(compose_train([*TINY, "dataset.count=64"]), tmp_path / "run")
    cfg = compose_eval([f"ckpt={tmp_path / 'run'}", "eval.metrics=[probe]", "eval.num_samples=16", "device=cpu"])
    with pytest.raises(ConfigError, match="nothing to compute"):
        evaluate(cfg)


def compose_eval(overrides):
    from hydra import compose, initialize_config_module

    with initialize_config_module("gan_lab.configs", version_base="1.3"):
        return compose("eval", overrides=overrides)
