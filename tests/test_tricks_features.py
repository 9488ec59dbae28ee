"""Tricks on the discriminator's features: feature matching (Salimans et al. 2016, §3.1), minibatch
discrimination (§3.2) and minibatch standard deviation (Karras et al. 2018, §3)."""

from __future__ import annotations

import pytest
import torch

from gan_lab.engine.restore import restore
from gan_lab.errors import ConfigError
from gan_lab.models import dcgan
from gan_lab.models.blocks import MinibatchStddev
from gan_lab.models.noise import NoiseToImage
from gan_lab.losses.adversarial import NonSaturating
from gan_lab.train import run, setup
from gan_lab.tricks.feature_matching import FeatureMatching
from gan_lab.tricks.minibatch import MinibatchDiscrimination, MinibatchDiscriminationLayer, MinibatchStddevTrick
from tests.conftest import TINY, compose_train, flat_model


def dcgan_task(seed=0):
    torch.manual_seed(seed)
    return NoiseToImage(dcgan.Generator(z_dim=8, image_size=32, channels=3, width=8),
                        dcgan.Discriminator(image_size=32, channels=3, width=8), NonSaturating())


# ---------------------------------------------------------------- feature matching


def test_feature_matching_is_zero_for_real_statistics_and_trains_only_G():
    task = dcgan_task()
    FeatureMatching().setup(task)
    real = torch.rand(8, 3, 32, 32) * 2 - 1
    inputs = {"z": torch.randn(8, 8)}
    assert task.g_objective.g_loss(task, {"real": real}, real.clone(), inputs).item() == 0.0
    fake = task.G(inputs["z"])
    loss = task.g_objective.g_loss(task, {"real": real}, fake, inputs)
    real_mean, fake_mean = task.D.features(real).mean(0), task.D.features(fake).mean(0)
    torch.testing.assert_close(loss, (real_mean - fake_mean).square().sum())
    loss.backward()
    assert all(p.grad is not None for p in task.G.parameters())


def test_feature_matching_replaces_the_generator_loss_in_training(tmp_path):
    cfg = compose_train(TINY + ["tricks=[feature_matching]"])
    state, data, _ = setup(cfg)
    batch = data.batch(torch.arange(8))
    task = state.task
    carry = task.d_loss(batch).carry
    fake = carry[1]  # the sample G's step reuses
    task.D.requires_grad_(False)
    out = task.g_loss(batch, carry)
    expected = (task.D.features(batch["real"]).mean(0) - task.D.features(fake).mean(0)).square().sum()
    torch.testing.assert_close(out.loss, expected)
    assert not torch.allclose(out.loss, task.loss.g_loss(task.D(fake)))
    run(cfg, tmp_path / "fm")


def test_feature_matching_needs_a_discriminator_with_features():
    cfg = compose_train(TINY + ["model=cgan", "tricks=[feature_matching]"])
    with pytest.raises(ConfigError, match="tricks.feature_matching: .*no features/head"):
        setup(cfg)
    task = dcgan_task()
    FeatureMatching().setup(task)
    with pytest.raises(ConfigError, match="already replaced"):
        FeatureMatching().setup(task)


# ---------------------------------------------------------------- minibatch layers


def test_minibatch_discrimination_sees_duplicates():
    torch.manual_seed(0)
    layer = MinibatchDiscriminationLayer(16, kernels=10, kernel_dim=5)
    f = torch.randn(4, 16) * 3
    distinct = layer(f)[:, 16:]
    dup = f.clone()
    dup[1] = dup[0]
    duplicated = layer(dup)[:, 16:]
    assert torch.equal(layer(f)[:, :16], f)  # the features pass through
    assert (distinct[0] < 2).all() and (duplicated[0] >= 2 - 1e-6).all()  # itself + its copy: exp(0) twice
    torch.testing.assert_close(duplicated[0], duplicated[1])
    assert not torch.allclose(distinct[0], duplicated[0])
    # a sample's value depends on the rest of the batch, unlike an ordinary layer
    assert not torch.allclose(layer(f[:2])[:, 16:], distinct[:2])


def test_minibatch_stddev_is_zero_for_identical_samples():
    layer = MinibatchStddev(group_size=4, eps=0.0)
    same = torch.randn(1, 12).expand(8, 12)
    assert layer(same)[:, -1].abs().max() == 0
    x = torch.randn(8, 12)
    out = layer(x)
    groups = x.view(4, 2, 12)  # sample i belongs to group i % 2
    expected = groups.var(0, unbiased=False).sqrt().mean(1)
    torch.testing.assert_close(out[:, -1], expected.repeat(4))
    maps = MinibatchStddev(group_size=4)(torch.randn(8, 3, 4, 4))
    assert maps.shape == (8, 4, 4, 4) and (maps[:, -1] == maps[:, -1, :1, :1]).all()  # one constant channel


@pytest.mark.parametrize("trick, extra", [(MinibatchDiscrimination(kernels=6, kernel_dim=3), 6),
                                          (MinibatchStddevTrick(group_size=4), 1)])
def test_inserted_layers_widen_the_head_and_start_from_the_same_function(trick, extra):
    task = dcgan_task()
    x = torch.rand(8, 3, 32, 32) * 2 - 1
    task.D.eval()
    before = task.D(x)
    width = task.D.head.in_features
    trick.modify(task)
    assert task.D.head[-1].in_features == width + extra
    torch.testing.assert_close(task.D(x), before)  # new inputs start with weight 0


def test_minibatch_stddev_group_must_divide_the_batch():
    with pytest.raises(ConfigError, match="group_size=4 must divide train.batch_size=6"):
        setup(compose_train(TINY + ["tricks=[minibatch_stddev]", "train.batch_size=6"]))


def test_minibatch_tricks_combine_train_and_restore(tmp_path):
    cfg = compose_train(TINY + ["tricks=[minibatch_discrimination,minibatch_stddev,ema]"])
    run(cfg, tmp_path / "run")
    restored = restore(tmp_path / "run", torch.device("cpu"))  # eval/sample rebuild the widened D
    layers = [type(m).__name__ for m in restored.task.D.head]
    assert layers == ["MinibatchDiscriminationLayer", "MinibatchStddev", "Linear"]
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    state = flat_model(state)
    assert torch.equal(restored.task.D.head[0].T, state["D.head.0.T"])


def test_minibatch_tricks_need_a_discriminator_with_features():
    with pytest.raises(ConfigError, match="tricks.minibatch_discrimination"):
        setup(compose_train(TINY + ["model=pix2pix", "tricks=[minibatch_discrimination]"]))
