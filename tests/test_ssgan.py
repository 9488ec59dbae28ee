"""The semi-supervised GAN (Salimans et al. 2016, §5): the K+1-class discriminator's real/fake logit, the
supervised loss on the labelled subset only, the subset itself, classification after a short run, exact resume."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_module

from gan_lab import config as config_lib
from gan_lab.data.base import TensorDataset
from gan_lab.data.shapes import Shapes
from gan_lab.engine import checkpoint
from gan_lab.engine.restore import restore
from gan_lab.errors import ConfigError
from gan_lab.eval import evaluate
from gan_lab.losses.adversarial import NonSaturating
from gan_lab.models import dcgan
from gan_lab.models.ssgan import Discriminator, MLPDiscriminator, SemiSupervisedTask, real_fake_logit
from gan_lab.train import run
from tests.conftest import TINY, compose_train, require_data, flat_model
from tests.test_resume import stop_and_resume

# 4 shape classes; 20 labelled examples (5 per class) and batches of 8, so a new permutation of the
# labelled subset starts inside some D steps, and a run stopped at step 3 is in the middle of one.
SMALL = [*TINY, "model=ssgan", "dataset.count=64", "model.labelled=20",
         "model.generator.width=8", "model.discriminator.width=8"]


def make_task(labelled: int = 20, seed: int = 0) -> SemiSupervisedTask:
    torch.manual_seed(0)
    G = dcgan.Generator(z_dim=8, image_size=32, channels=3, width=4)
    D = Discriminator(num_classes=4, image_size=32, channels=3, width=4)
    return SemiSupervisedTask(G, D, NonSaturating(), labelled=labelled, image_shape=[3, 32, 32], labelled_seed=seed)


def shapes(count: int = 64) -> Shapes:
    return Shapes(image_size=32, channels=3, count=count, num_classes=4)


@pytest.mark.parametrize("D", [Discriminator(num_classes=5, image_size=32, channels=3, width=4),
                               MLPDiscriminator(in_shape=[3, 32, 32], num_classes=5, hidden=[16, 16]).eval()])
def test_real_fake_logit_is_log_z_so_d_is_z_over_z_plus_one(D):
    x = torch.randn(6, 3, 32, 32)
    logits = D.classify(x).double()
    assert logits.shape == (6, 5)
    Z = logits.exp().sum(1)
    torch.testing.assert_close(D(x).double(), Z.log(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.sigmoid(D(x).double()), Z / (Z + 1), rtol=1e-5, atol=1e-6)
    # the fake class's logit is 0: D(x) is the probability of "not fake" in the K+1-way softmax
    with_fake = torch.cat([logits, torch.zeros(6, 1, dtype=logits.dtype)], 1).softmax(1)
    torch.testing.assert_close(torch.sigmoid(D(x).double()), 1 - with_fake[:, -1], rtol=1e-5, atol=1e-6)
    # no overflow where Z does not fit a float
    torch.testing.assert_close(real_fake_logit(torch.tensor([[1000.0, 1000.0]])), torch.tensor([1000 + 0.6931472]))


def test_supervised_loss_is_the_cross_entropy_on_the_labelled_subset_only():
    task = make_task()
    task.use_data(shapes())
    batch = shapes().batch(torch.arange(8))

    def d_loss(batch):
        task.labelled_order.copy_(torch.arange(20).flip(0))  # the labelled batch is subset[19], ..., subset[12]
        task.labelled_position.zero_()
        torch.manual_seed(1)  # the same z
        return task.d_loss(batch)

    out = d_loss(batch)
    picked = torch.arange(20).flip(0)[:8]
    images = task.labelled_real[picked].float() / 127.5 - 1
    expected = F.cross_entropy(task.D.classify(images), task.labelled_label[picked])
    torch.testing.assert_close(out.stats["loss/D_supervised"], expected)
    torch.testing.assert_close(out.loss, out.stats["loss/D_unsupervised"] + expected)

    # the labels of the unlabelled batch are ignored ...
    relabelled = {**batch, "label": (batch["label"] + 1) % 4}
    assert torch.equal(d_loss(relabelled).loss, out.loss)
    # ... those of the labelled subset are not
    task.labelled_label[picked[0]] = (task.labelled_label[picked[0]] + 1) % 4
    assert not torch.equal(d_loss(batch).loss, out.loss)


def test_labelled_subset_is_balanced_deterministic_and_in_the_checkpoint(tmp_path):
    data = shapes()
    a, b, other = make_task(seed=0), make_task(seed=0), make_task(seed=1)
    for task in (a, b, other):
        task.use_data(data)
    assert torch.bincount(a.labelled_label, minlength=4).tolist() == [5, 5, 5, 5]
    assert torch.equal(a.labelled_real, b.labelled_real) and torch.equal(a.labelled_label, b.labelled_label)
    assert not torch.equal(a.labelled_real, other.labelled_real)
    # each labelled example is an image of the dataset with its own label
    real, label = data.tensors["real"], data.tensors["label"]
    for image, y in zip(a.labelled_real, a.labelled_label):
        match = (real == image).flatten(1).all(1)
        assert match.any() and (label[match] == y).all()

    run(compose_train([*SMALL, "train.steps=2"]), tmp_path)
    state = checkpoint.load(tmp_path / "checkpoints" / "last.pt")
    assert torch.equal(flat_model(state)["labelled_real"], a.labelled_real)
    assert torch.equal(flat_model(state)["labelled_label"], a.labelled_label)
    assert {"labelled_order", "labelled_position"} <= set(flat_model(state))
    assert torch.equal(restore(tmp_path, torch.device("cpu")).task.labelled_real, a.labelled_real)


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="model.labelled=10 must be a positive multiple of the 4 classes"):
        make_task(labelled=10)  # 4 classes
    with pytest.raises(ConfigError, match="class 0 has only"):
        make_task(labelled=400).use_data(shapes())
    unlabelled = TensorDataset({"real": shapes().tensors["real"]})
    with pytest.raises(ConfigError, match="needs class labels"):
        make_task().use_data(unlabelled)


def test_short_run_classifies_unseen_images_well_above_chance(tmp_path):
    # ~20 s on one thread: 1000 steps of 16 with 40 labelled shapes (the default); chance is 1/4. It reaches
    # 0.51 here (the same D trained on the labelled shapes alone, without the GAN loss: 0.43).
    run(compose_train([*TINY, "model=ssgan", "train.steps=1000", "train.batch_size=16", "train.log_every=100",
                       "train.sample_every=1000", "train.ckpt_every=1000", "model.generator.width=8",
                       "model.discriminator.width=8"]), tmp_path)
    config_lib.register()
    with initialize_config_module("gan_lab.configs", version_base="1.3"):
        cfg = compose("eval", overrides=[f"ckpt={tmp_path}", "eval.metrics=[accuracy]", "device=cpu"])
    report = evaluate(cfg)
    assert report["metrics"]["classifier_accuracy"] > 0.4
    assert report["classifier_accuracy_on"] == "unseen images (dataset.seed=1), 8192 images"


def test_mlp_discriminator_init_from_data_standardises_every_layer():
    torch.manual_seed(0)
    D = MLPDiscriminator(in_shape=[1, 8, 8], num_classes=3, hidden=[32, 16], input_noise=0.0, noise=0.0)
    x = torch.rand(500, 1, 8, 8) * 2 - 1
    D.init_from_data(x)
    h = x
    for layer in [*D.body, *D.head]:
        h = layer(h)
        if isinstance(layer, torch.nn.Linear):  # pre-activations: zero mean, unit variance per unit
            torch.testing.assert_close(h.mean(0), torch.zeros(h.shape[1]), atol=1e-4, rtol=0)
            torch.testing.assert_close(h.std(0), torch.ones(h.shape[1]), atol=1e-4, rtol=0)


def test_mnist_experiment_trains(tmp_path):
    root = require_data("MNIST", "raw").parent.parent
    loss = run(compose_train([*TINY, "experiment=ssgan_mnist", f"dataset.root={root}", "train.steps=2"]), tmp_path)
    assert torch.isfinite(torch.tensor(loss))
    assert torch.bincount(restore(tmp_path, torch.device("cpu")).task.labelled_label).tolist() == [10] * 10


def test_stop_and_resume_equals_uninterrupted(tmp_path):
    a, _ = stop_and_resume(tmp_path, SMALL)  # the labelled batches' permutation and position continue too
    assert {"loss/D_supervised", "accuracy/labelled"} <= set(a["last_losses"])

