"""InfoGAN (Chen et al. 2016): the mutual-information bound L_I (eq. 5) and where its gradients go, the codes a
short run makes recoverable from G's samples, code traversals, the paper's networks and defaults, exact resume."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gan_lab.engine.loop import FiniteGuard, train_step
from gan_lab.errors import ConfigError
from gan_lab.losses.adversarial import NonSaturating
from gan_lab.models.infogan import Discriminator, Generator, InfoGANTask, LatentCodes, information_bound
from gan_lab.models.terms import CriticPass
from gan_lab.tricks.feature_matching import FeatureMatching
from gan_lab.train import setup
from tests.test_resume import stop_and_resume
from tests.conftest import TINY, compose_train

TINY_NETS = ["model.generator.width=8", "model.discriminator.width=8"]
CODES = {"categorical": [4, 3], "continuous": 2}  # latent: z 5 | c1 one-hot 4 | c2 one-hot 3 | c3 | c4
SLOTS = {"c1": slice(5, 9), "c2": slice(9, 12), "c3": slice(12, 13), "c4": slice(13, 14)}


def tiny_task(learn_std: bool = False, **lambdas) -> InfoGANTask:
    G = Generator(noise_dim=5, image_size=12, channels=1, width=4, **CODES)
    D = Discriminator(image_size=12, channels=1, width=4, learn_std=learn_std, **CODES)
    return InfoGANTask(G, D, NonSaturating(), **lambdas)


# ---------------------------------------------------------------- the information bound


@pytest.mark.parametrize("learn_std", [False, True])
def test_information_loss_is_minimal_when_q_returns_the_true_codes(learn_std):
    torch.manual_seed(0)
    codes = LatentCodes(5, **CODES)
    latent = codes.sample(256, torch.device("cpu"))
    _, cats, cont = codes.split(latent)
    log_std = torch.full_like(cont, -0.5) if learn_std else None

    def loss(logits, mean):  # -L_I, the term InfoGAN adds to the losses of G and Q
        return -sum(information_bound(codes, (logits, mean, log_std), latent).values())

    true_logits = [20.0 * F.one_hot(c, k).float() for c, k in zip(cats, codes.categorical)]
    mean = cont.clone().requires_grad_(True)
    best = loss(true_logits, mean)
    # Q certain of the right category and centred on the right value: L_I = sum_k log k (all of H(c) for the
    # categorical codes) plus, per continuous code, log 2 - log sigma - log(2 pi) / 2
    expected = math.log(4) + math.log(3) + 2 * (math.log(2) + (0.5 if learn_std else 0.0) - 0.5 * math.log(2 * math.pi))
    assert best.item() == pytest.approx(-expected, abs=1e-4)
    best.backward()
    assert mean.grad.abs().max() < 1e-6  # a stationary point in the means
    best = best.detach()
    assert loss([lg.roll(1, dims=1) for lg in true_logits], cont) > best + 10  # wrong categories
    for shift in (0.05, -0.3, 1.0):
        assert loss(true_logits, cont + shift) > best
    for _ in range(10):
        assert loss([lg + torch.randn_like(lg) for lg in true_logits], cont + 0.1 * torch.randn_like(cont)) > best
    # a Q that knows nothing about a categorical code bounds no information: L_I = H(c) - H(c) = 0
    uninformed = information_bound(codes, ([torch.zeros_like(lg) for lg in true_logits], cont, log_std), latent)
    assert uninformed["categorical"].abs() < 1e-6


def test_information_term_trains_q_on_detached_samples_and_g_through_q():
    torch.manual_seed(0)
    task = tiny_task(lambda_categorical=1.0, lambda_continuous=0.5)
    batch = {"real": torch.rand(8, 1, 12, 12) * 2 - 1}
    out = task.d_loss(batch)
    inputs, fake = out.carry
    bounds = information_bound(task.G.codes, task.D.posterior(task.D.features(fake.detach())), inputs["z"])
    torch.testing.assert_close(out.stats["loss/info_categorical"], -bounds["categorical"].detach())
    torch.testing.assert_close(out.stats["loss/info_continuous"], -0.5 * bounds["continuous"].detach())
    out.loss.backward()
    assert all(p.grad is None for p in task.G.parameters())  # Q learns on detached samples
    assert all(p.grad.abs().sum() > 0 for n, p in task.D.q.named_parameters() if n.endswith("weight"))

    task.zero_grad(set_to_none=True)
    task.D.requires_grad_(False)  # the engine freezes D (and so Q) for the G step
    out = task.g_loss(batch, (inputs, fake))
    info = {k: v for k, v in out.stats.items() if k.startswith("loss/G_info_")}
    assert info.keys() == {"loss/G_info_categorical", "loss/G_info_continuous"}
    torch.testing.assert_close(out.loss.detach(), out.stats["loss/G"] + sum(info.values()))
    seen = CriticPass(fake=fake, inputs=inputs, fake_features=task.D.features(fake))
    task.penalties[0].g_terms(task, seen)["loss/G_info_categorical"].backward()  # the term alone ...
    assert all(p.grad.abs().sum() > 0 for n, p in task.G.named_parameters() if n.endswith("weight"))  # ... reaches G


@pytest.mark.parametrize("matching", [False, True])
def test_q_reads_the_features_of_the_adversarial_passes(matching):
    torch.manual_seed(0)
    task = tiny_task()
    if matching:  # G's adversarial loss replaced: G's step runs D's body for Q alone
        FeatureMatching().setup(task)
    bodies = []
    task.D.body.register_forward_hook(lambda module, args, out: bodies.append(out.detach()))
    batch = {"real": torch.rand(8, 1, 12, 12) * 2 - 1}
    carry = task.d_loss(batch).carry
    assert len(bodies) == 2  # the real and the generated batch; Q's term adds no pass
    bodies.clear()
    task.D.requires_grad_(False)
    inputs, _ = carry
    out = task.g_loss(batch, carry)
    assert len(bodies) == (3 if matching else 1)  # feature matching runs its own real and fake passes
    bounds = information_bound(task.G.codes, task.D.posterior(bodies[0]), inputs["z"])
    torch.testing.assert_close(out.stats["loss/G_info_categorical"], -bounds["categorical"])


def test_q_recovers_the_categorical_code_after_a_short_run():
    cfg = compose_train([*TINY, "model=infogan", *TINY_NETS, "train.batch_size=16", "dataset.count=512"])
    state, data, hw = setup(cfg)
    task = state.task

    @torch.no_grad()
    def accuracy() -> float:
        task.eval()
        z = task.sample_inputs(500)["z"]
        logits, _, _ = task.D.posterior(task.D.features(task.G(z)))
        task.train()
        return (logits[0].argmax(1) == task.G.codes.split(z)[1][0]).float().mean().item()

    assert accuracy() < 0.2  # chance: 1 in 10
    for _ in range(200):
        train_step(state, data, hw, cfg, FiniteGuard())
    assert accuracy() > 0.4


# ---------------------------------------------------------------- grids and traversals


@pytest.mark.parametrize("code, values", [("c1", 4), ("c3", 5)])
def test_traversal_varies_only_the_chosen_code(code, values):
    torch.manual_seed(0)
    task = tiny_task().eval()
    inputs, columns = task.traversal(code, 12, 5, (-2.0, 2.0))
    z = inputs["z"]
    assert columns == values and len(z) == 12 // values * values
    rows = z.view(-1, columns, z.shape[1])
    other = torch.ones(z.shape[1], dtype=torch.bool)
    other[SLOTS[code]] = False
    assert torch.equal(rows[..., other], rows[:, :1, other].expand_as(rows[..., other]))  # the rest is held per row
    assert not torch.equal(rows[0, :, other], rows[1, :, other])  # ... and drawn anew for each row
    _, cats, cont = task.G.codes.split(z)
    swept = cats[0] if code == "c1" else cont[:, 0]
    expected = torch.arange(4.0) if code == "c1" else torch.linspace(-2, 2, 5)
    torch.testing.assert_close(swept.view(-1, columns).float(), expected.expand(len(rows), -1))

    images = task.G(z).view(len(rows), columns, -1)
    scale = images.abs().amax()  # small: an untrained G's outputs are near 0
    assert ((images[:, 1:] - images[:, :1]).abs().amax(-1) > 0.01 * scale).all()  # varying the code changes the image
    first = task.G.codes.assign(z, code, swept.view(-1, columns)[:, :1].expand(-1, columns).reshape(-1))
    same = task.G(first).view(len(rows), columns, -1)
    torch.testing.assert_close(same, same[:, :1].expand_as(same))  # the same code values: the same image


def test_traversal_of_an_unknown_code_lists_the_codes():
    with pytest.raises(ValueError, match=r"c1 \(categorical, 4 values\), c2 \(categorical, 3 values\), "
                                         r"c3 \(continuous\), c4 \(continuous\)"):
        tiny_task().traversal("c5", 8, 4, (-2.0, 2.0))


def test_sample_grid_has_one_row_per_categorical_value():
    torch.manual_seed(0)
    task = tiny_task()
    fixed = task.fixed_inputs({}, 13)
    assert len(fixed["z"]) == 12 and task.grid_columns(12) == 3
    rows = fixed["z"].view(4, 3, -1)
    assert torch.equal(task.G.codes.split(fixed["z"])[1][0].view(4, 3), torch.arange(4).view(4, 1).expand(4, 3))
    other = torch.ones(rows.shape[-1], dtype=torch.bool)
    other[SLOTS["c1"]] = False
    assert torch.equal(rows[..., other], rows[:1, :, other].expand(4, -1, -1))  # each column: one draw, c1 = row
    grid = task.visuals(fixed, task.G)["fixed"]
    assert grid.images.shape == (12, 1, 12, 12) and grid.nrow == 3


# ---------------------------------------------------------------- networks, defaults, errors


def test_paper_networks_and_defaults():
    cfg = compose_train(["model=infogan"])
    g, d = cfg.model.generator, cfg.model.discriminator
    assert (g.noise_dim, list(g.categorical), g.continuous) == (62, [10], 2)
    assert list(d.categorical) == [10] and d.continuous == 2 and not d.learn_std
    assert cfg.model.lambda_categorical == 1.0 and cfg.loss._target_.endswith("NonSaturating")
    assert (cfg.optim.G.lr, cfg.optim.D.lr, list(cfg.optim.G.betas)) == (1e-3, 2e-4, [0.5, 0.999])

    # Appendix C.1 at width 64 on 28 px MNIST: the input is in R^74
    G = Generator(image_size=28, channels=1, width=64)
    D = Discriminator([10], 2, image_size=28, channels=1, width=64)
    linear = [(m.in_features, m.out_features) for m in G.modules() if isinstance(m, nn.Linear)]
    assert linear == [(74, 1024), (1024, 7 * 7 * 128)]
    upconvs = [(m.in_channels, m.out_channels) for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert upconvs == [(128, 64), (64, 1)]
    assert G(torch.rand(2, 74)).shape == (2, 1, 28, 28)
    assert [(m.in_channels, m.out_channels) for m in D.modules() if isinstance(m, nn.Conv2d)] == [(1, 64), (64, 128)]
    assert [(m.in_features, m.out_features) for m in D.modules() if isinstance(m, nn.Linear)] == [
        (7 * 7 * 128, 1024), (1024, 1), (1024, 128), (128, 12)]  # body, D's head, Q: 10 logits + 2 means
    assert {m.negative_slope for m in D.modules() if isinstance(m, nn.LeakyReLU)} == {0.1}
    x = torch.rand(3, 1, 28, 28)
    assert D.features(x).shape == (3, 1024) and D(x).shape == (3,)
    logits, mean, log_std = D.posterior(D.features(x))
    assert [lg.shape for lg in logits] == [(3, 10)] and mean.shape == (3, 2) and log_std is None
    D_std = Discriminator([10], 2, learn_std=True, image_size=28, width=8)
    assert D_std.posterior(D_std.features(x))[2].shape == (3, 2)


@pytest.mark.parametrize("make, key", [
    (lambda: Generator(image_size=30), "dataset.image_size"),
    (lambda: Generator(categorical=[1]), "model.generator"),
    (lambda: Generator(categorical=[], continuous=0), "model.generator"),
    (lambda: tiny_task(lambda_continuous=-1.0), "model.lambda_continuous"),
    (lambda: InfoGANTask(Generator(image_size=12, width=4), Discriminator([10], 3, image_size=12, width=4),
                         NonSaturating()), "model.discriminator"),
])
def test_bad_settings_name_the_key(make, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        make()


# ---------------------------------------------------------------- runs


def test_stop_and_resume_equals_uninterrupted(tmp_path):
    a, _ = stop_and_resume(tmp_path, [*TINY, "model=infogan", *TINY_NETS, "dataset.count=64"])
    assert {"loss/info_categorical", "loss/info_continuous", "loss/G_info_categorical"} <= set(a["last_losses"])
    assert sorted(p.name for p in (tmp_path / "full" / "samples").glob("*.png")) == ["fixed_0000003.png", "fixed_0000006.png"]
