"""Text-to-image GANs: GAN-INT-CLS (Reed et al. 2016) and StackGAN (Zhang et al. 2017), and sampling from
sentences. The matching-aware D's terms and weights, the mismatch, GAN-INT's midpoints, conditioning
augmentation's KL and draws, Stage II on a frozen Stage I."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from torch import nn

from gan_lab.engine import checkpoint
from gan_lab.engine.restore import restore
from gan_lab.errors import ConfigError
from gan_lab.losses.adversarial import NonSaturating
from gan_lab.models.gan_int_cls import GanIntClsTask, midpoints
from gan_lab.models.stackgan import StageIIGenerator
from gan_lab.models.text import ConditioningAugmentation, kl_to_standard_normal, matching_d_loss, mismatch_index
from gan_lab.train import run, setup
from tests.conftest import TINY, compose_train
from tests.test_cli import gan_lab

LOG2 = math.log(2.0)
TEXT_DIM = 6


# -- the mismatch --

def test_mismatch_never_pairs_an_example_with_its_own_text():
    gen = torch.Generator().manual_seed(0)
    for n in (2, 3, 8, 64):
        for _ in range(50):
            index = mismatch_index(n, generator=gen)
            assert not (index == torch.arange(n)).any()


def test_mismatch_crosses_classes_where_the_batch_has_another_class():
    gen = torch.Generator().manual_seed(0)
    labels = torch.tensor([0, 0, 0, 1, 2, 2, 0, 1])
    for _ in range(100):
        index = mismatch_index(len(labels), labels, gen)
        assert (labels[index] != labels).all()
    same = torch.zeros(5, dtype=torch.long)  # one class only: still never its own text
    assert not (mismatch_index(5, same, gen) == torch.arange(5)).any()
    drawn = torch.stack([mismatch_index(4, generator=gen) for _ in range(2000)])  # uniform over the others
    counts = torch.stack([(drawn[:, 0] == j).sum() for j in (1, 2, 3)]).float()
    assert (counts / 2000 - 1 / 3).abs().max() < 0.05


# -- the matching-aware D's terms and weights --

class StubD(nn.Module):
    """A discriminator whose logit says which kind of pair it sees: ``logits[kind]`` for a real image with its
    own text ("right"), a real image with another text ("wrong") and a generated image ("fake"). Real images
    are +1 everywhere, the stub generator's are -1; every text D judges is recorded."""

    def __init__(self, right_text: torch.Tensor, logits: dict[str, float]):
        super().__init__()
        self.right_text, self.logits = right_text, logits
        self.scale = nn.Parameter(torch.ones(()))
        self.seen: list[torch.Tensor] = []

    def features(self, x):
        return x.mean((1, 2, 3))

    def judge(self, features, text):
        self.seen.append(text.detach().clone())
        real = features > 0
        right = (text.shape == self.right_text.shape) and (text == self.right_text).all(1)
        values = torch.where(real & right, self.logits["right"], torch.where(real, self.logits["wrong"], self.logits["fake"]))
        return values * self.scale

    def unconditional(self, features):
        return None


class StubG(nn.Module):
    z_dim = 4

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, z, text):
        return -torch.ones(len(z), 3, 4, 4) + self.w * 0


def _task(logits, cls_weight=0.5, interp=False, batch=8):
    torch.manual_seed(0)
    text = torch.randn(batch, TEXT_DIM)
    task = GanIntClsTask(StubG(), StubD(text, logits), NonSaturating(), cls_weight=cls_weight, interp=interp)
    task.latent = torch.Generator().manual_seed(1)
    return task, {"real": torch.ones(batch, 3, 4, 4), "text": text, "label": torch.arange(batch) % 3}


def test_d_loss_with_d_one_half_is_log2_times_two():
    """Algorithm 1: log s_r + (log(1 - s_w) + log(1 - s_f)) / 2; D = 1/2 everywhere gives log 2 (1 + 1/2 + 1/2)."""
    task, batch = _task({"right": 0.0, "wrong": 0.0, "fake": 0.0})
    assert task.d_loss(batch).loss.item() == pytest.approx(LOG2 * (1 + 0.5 + 0.5), abs=1e-6)


@pytest.mark.parametrize("cls_weight", [0.5, 0.25, 0.0])
def test_each_d_term_has_its_weight(cls_weight):
    r, w, f = 0.3, 1.7, -0.9  # distinct logits per kind of pair: the weights are read off exactly
    task, batch = _task({"right": r, "wrong": w, "fake": f}, cls_weight)
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731
    expected = softplus(-r) + cls_weight * softplus(w) + (1 - cls_weight) * softplus(f)
    out = task.d_loss(batch)
    assert out.loss.item() == pytest.approx(expected, abs=1e-6)
    # cls_weight 0 is the plain conditional GAN: D never sees a mismatched text
    assert len(task.D.seen) == (3 if cls_weight else 2)


def test_the_mismatched_pair_is_pushed_towards_fake():
    wrong = torch.zeros(4, requires_grad=True)
    loss = matching_d_loss(NonSaturating(), torch.zeros(4), wrong, torch.zeros(4), 0.5)
    loss.backward()
    assert (wrong.grad > 0).all()  # descending the loss lowers D(mismatch)


def test_unconditional_logits_mix_as_stackgan_pytorch():
    zeros = torch.zeros(3)
    real, wrong, fake, real_u, fake_u = (torch.full((3,), v) for v in (0.1, 0.2, 0.3, 0.4, 0.5))
    sp = lambda x: torch.nn.functional.softplus(x).mean()  # noqa: E731
    expected = (sp(-real) + sp(-real_u)) / 2 + (sp(fake) + sp(wrong) + sp(fake_u)) / 3
    got = matching_d_loss(NonSaturating(), real, wrong, fake, 0.5, real_u, fake_u)
    assert torch.allclose(got, expected)
    assert torch.allclose(matching_d_loss(NonSaturating(), zeros, zeros, zeros, 0.5, zeros, zeros), torch.tensor(2 * LOG2))


def test_interpolated_texts_are_midpoints_and_appear_in_g_loss_only():
    task, batch = _task({"right": 0.0, "wrong": 0.0, "fake": 0.0}, interp=True)
    text, mid = batch["text"], midpoints(batch["text"])
    assert torch.equal(mid, (text[:4] + text[4:]) / 2)
    task.d_loss(batch)
    for seen in task.D.seen:  # D's loss: the batch's own texts (some permuted), never a midpoint
        assert all((row == text).all(1).any() for row in seen)
    task.D.seen.clear()
    out = task.g_loss(batch)
    seen = torch.cat(task.D.seen)
    assert len(seen) == 8 + 4 and torch.equal(seen[:8], text) and torch.equal(seen[8:], mid)
    # one cross-entropy over 1.5 B samples with weights 1 and interp_weight: D = 1/2 everywhere gives log 2
    assert out.loss.item() == pytest.approx(LOG2, abs=1e-6)


# -- conditioning augmentation --

def test_kl_is_zero_at_the_prior_and_positive_elsewhere():
    zeros = torch.zeros(5, 7)
    assert kl_to_standard_normal(zeros, zeros).item() == 0.0
    # mu = 1, sigma = 1: 1/2 per dimension
    assert kl_to_standard_normal(torch.ones(5, 7), zeros).item() == pytest.approx(3.5)
    assert kl_to_standard_normal(torch.ones(5, 7), zeros, reduce="mean").item() == pytest.approx(0.5)
    mu, logvar = torch.randn(5, 7), torch.randn(5, 7)
    sigma2 = logvar.exp()
    hand = 0.5 * (mu**2 + sigma2 - 1 - sigma2.log()).sum(1).mean()
    assert kl_to_standard_normal(mu, logvar).item() == pytest.approx(hand.item(), rel=1e-5) and hand > 0
    with pytest.raises(ConfigError, match="kl_reduce"):
        kl_to_standard_normal(mu, logvar, reduce="max")


def test_reparameterised_draws_have_the_predicted_mean_and_variance():
    torch.manual_seed(0)
    ca = ConditioningAugmentation(TEXT_DIM, 3)
    text = torch.randn(1, TEXT_DIM)
    n = 100_000
    eps = torch.randn(n, 3, generator=torch.Generator().manual_seed(1))
    c, mu, logvar = ca(text.expand(n, -1), eps)
    var = logvar[0].exp()
    # 5 standard errors of the mean and of the variance (Gaussian: var(s^2) = 2 sigma^4 / n)
    assert ((c.mean(0) - mu[0]).abs() < 5 * (var / n).sqrt()).all()
    assert ((c.var(0) - var).abs() < 5 * var * math.sqrt(2 / n)).all()
    c.sum().backward()
    assert ca.fc[0].weight.grad.abs().sum() > 0  # the gradient reaches the layer through mu and sigma
    off = ConditioningAugmentation(TEXT_DIM, 3, enabled=False)
    c, mu, _ = off(text, torch.randn(1, 3))
    assert torch.equal(c, mu)


def test_step_decay_halves_the_rate_every_n_steps():
    from gan_lab.engine.schedules import StepDecay

    schedule = StepDecay(total_steps=1000, every=100)
    assert [schedule(s) for s in (0, 99, 100, 199, 200, 950)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.5**9]
    with pytest.raises(ValueError, match="schedule.every"):
        StepDecay(total_steps=10, every=0)


# -- StackGAN Stage I and Stage II --

SMALL = ["model=stackgan", "dataset.count=64", "dataset.image_size=32", "model.generator.width=8",
         "model.discriminator.width=8", "model.stage2_generator.width=8", "model.stage2_discriminator.width=8"]


@pytest.fixture(scope="module")
def stage1_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("stage1")
    run(compose_train([*TINY, *SMALL, "train.steps=2"]), path)
    return path


def test_stage2_trains_on_a_frozen_stage1(tmp_path, stage1_run):
    stage2 = [*TINY, *SMALL, "model.stage=2", f"model.stage1={stage1_run}", "train.steps=2"]
    state, _, _ = setup(compose_train(stage2))
    task = state.task
    frozen = {id(p) for p in task.stage1.parameters()}
    assert frozen and not any(id(p) in frozen for opt in state.optimizers.values()
                              for group in opt.param_groups for p in group["params"])
    assert not any(p.requires_grad for p in task.stage1.parameters())

    run(compose_train(stage2), tmp_path)
    first, second = (checkpoint.load(p / "checkpoints" / "last.pt") for p in (stage1_run, tmp_path))
    loaded = {k[len("stage1."):]: v for k, v in second["task"].items() if k.startswith("stage1.")}
    assert loaded.keys() == first["models"]["G"].keys()
    for key, value in first["models"]["G"].items():  # weights and batch-norm statistics, bit for bit
        assert torch.equal(value, loaded[key]), key


def test_stage2_output_is_four_times_stage1_and_draws_no_new_noise(tmp_path, stage1_run):
    run(compose_train([*TINY, *SMALL, "model.stage=2", f"model.stage1={stage1_run}", "train.steps=2"]), tmp_path)
    restored = restore(tmp_path, torch.device("cpu"))
    task, G = restored.task, restored.generator
    assert list(inspect.signature(StageIIGenerator.forward).parameters) == ["self", "low", "text", "eps"]
    text = torch.randn(3, 128)
    with torch.no_grad():
        inputs = task.sample_inputs(3, text=text)
        assert set(inputs) == {"z", "eps", "eps2", "text"}
        low = task.low_resolution(inputs)
        out = task.sample(3, G, **inputs)["samples"]
        assert low.shape[-1] == 8 and out.shape[-1] == 32 == 4 * low.shape[-1]
        # Stage II's output is a function of Stage I's image, the text and its CA draw: z enters only via Stage I
        assert torch.equal(out, G(low, text, inputs["eps2"]))
        stage1 = restore(stage1_run, torch.device("cpu"))
        assert torch.equal(low, stage1.generator(inputs["z"], text, inputs["eps"]))


def test_a_stage2_checkpoint_samples_without_the_stage1_run(tmp_path, stage1_run):
    import shutil

    copy = tmp_path / "stage1"
    shutil.copytree(stage1_run, copy)
    run(compose_train([*TINY, *SMALL, "model.stage=2", f"model.stage1={copy}", "train.steps=2"]), tmp_path / "s2")
    shutil.rmtree(copy)
    restored = restore(tmp_path / "s2", torch.device("cpu"))
    out = restored.task.sample(2, restored.generator, text=torch.randn(2, 128))["samples"]
    assert out.shape == (2, 3, 32, 32) and torch.isfinite(out).all()


def test_stage2_needs_a_stackgan_stage1_run(tmp_path, stage1_run):
    base = [*TINY, *SMALL, "model.stage=2", "train.steps=2"]
    with pytest.raises(ConfigError, match="model.stage1"):
        run(compose_train(base), tmp_path / "a")
    with pytest.raises(ConfigError, match="model.stage1=.*does not exist"):
        run(compose_train([*base, f"model.stage1={tmp_path / 'nowhere'}"]), tmp_path / "b")
    run(compose_train([*TINY, "model=gan_int_cls", "dataset.count=64", "train.steps=2"]), tmp_path / "other")
    with pytest.raises(ConfigError, match="not a StackGAN Stage-I run"):
        run(compose_train([*base, f"model.stage1={tmp_path / 'other'}"]), tmp_path / "c")
    with pytest.raises(ConfigError, match="does not fit"):
        run(compose_train([*base, f"model.stage1={stage1_run}", "model.generator.width=16"]), tmp_path / "d")


def test_bad_text_model_settings_are_config_errors():
    with pytest.raises(ConfigError, match="model.stage"):
        run(compose_train([*TINY, *SMALL, "model.stage=3"]), "unused")
    with pytest.raises(ConfigError, match="model.cls_weight"):
        run(compose_train([*TINY, "model=gan_int_cls", "dataset.count=64", "model.cls_weight=1.5"]), "unused")


# -- sampling from sentences --

def test_sample_from_a_sentence_and_between_two(tmp_path):
    run(compose_train([*TINY, "model=gan_int_cls", "dataset.count=64"]), tmp_path / "run")
    out = gan_lab("sample", f"ckpt={tmp_path / 'run'}", "text=a large blue star", "n=3",
                  f"out={tmp_path / 'one.png'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    from PIL import Image

    assert Image.open(tmp_path / "one.png").size == (3 * 34 + 2, 34 + 2)  # one row of 3 samples, 32 px
    out = gan_lab("sample", f"ckpt={tmp_path / 'run'}", "text=[a small red circle,a large blue star]",
                  "interpolate=true", "n=8", "steps=4", f"out={tmp_path / 'walk.png'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert Image.open(tmp_path / "walk.png").size == (4 * 34 + 2, 2 * 34 + 2)  # 2 rows of 4 steps
    restored = restore(tmp_path / "run", torch.device("cpu"))
    start, end = torch.zeros(TEXT_DIM), torch.ones(TEXT_DIM)
    given = restored.task.text_interpolation(start, end, 2, 5)
    assert torch.equal(given["text"][:5, 0], torch.linspace(0, 1, 5))  # a straight line from start to end
    assert torch.equal(given["z"][0], given["z"][4]) and not torch.equal(given["z"][0], given["z"][5])


def test_text_to_a_model_without_text_is_a_config_error(tmp_path):
    run(compose_train([*TINY, "dataset.count=64"]), tmp_path / "run")
    out = gan_lab("sample", f"ckpt={tmp_path / 'run'}", "text=a red circle", cwd=tmp_path)
    assert out.returncode == 1 and "text= is for text-to-image models" in out.stdout + out.stderr


def test_eval_of_a_text_model_scores_its_held_out_captions(tmp_path):
    """`gan-lab eval` of a GAN-INT-CLS run: caption accuracy and retrieval on the held-out captions, said in the report."""
    import json

    run(compose_train([*TINY, "model=gan_int_cls", "dataset.count=64"]), tmp_path / "run")
    out = gan_lab("eval", f"ckpt={tmp_path / 'run'}", "eval.metrics=[caption_accuracy,caption_retrieval]",
                  "eval.num_samples=50", "eval.available.caption_accuracy.steps=5",
                  "eval.available.caption_accuracy.count=128", f"eval.available.caption_accuracy.cache_dir={tmp_path}",
                  cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(next((tmp_path / "run" / "eval").glob("*.json")).read_text())
    assert {"caption accuracy mean", "caption retrieval top-1", "caption retrieval top-1 (real)"} <= set(report["metrics"])
    assert 0 <= report["metrics"]["caption accuracy mean"] <= 1
    assert report["data"].startswith("the held-out images and captions")
