"""Networks and tasks: shapes per image size, the papers' architectural facts, and the task contract
(d_loss never reaches G, g_loss does, visuals leave G untouched)."""

import copy

import pytest
import torch
from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.losses.adversarial import NonSaturating
from gan_lab.engine.inference import inference
from gan_lab.models import began, cgan, dcgan, gan, pix2pix
from gan_lab.models.base import Grid, Points
from gan_lab.models.noise import NoiseToImage

# ---------------------------------------------------------------- builders


def dcgan_task(image_size=32, width=8, channels=3):
    return NoiseToImage(dcgan.Generator(z_dim=16, image_size=image_size, channels=channels, width=width),
                        dcgan.Discriminator(image_size=image_size, channels=channels, width=width), NonSaturating())


def mlp_task(shape):
    return NoiseToImage(gan.Generator(shape, z_dim=8, hidden=[32, 32]),
                        gan.Discriminator(shape, units=[16, 16], pieces=3), NonSaturating())


def cgan_task(num_classes=4, shape=(1, 8, 8)):
    return cgan.ConditionalTask(
        cgan.Generator(list(shape), num_classes, z_dim=8, z_units=16, y_units=16, hidden=32),
        cgan.Discriminator(list(shape), num_classes, x_units=16, y_units=8, joint_units=16),
        NonSaturating())


def pix2pix_task(image_size=32, lambda_l1=100.0, in_ch=3, out_ch=3):
    return pix2pix.Pix2PixTask(pix2pix.Generator(in_ch, out_ch, image_size, width=4),
                               pix2pix.Discriminator(in_ch + out_ch, width=4, image_size=image_size),
                               NonSaturating(), lambda_l1=lambda_l1)


def began_task(image_size=16, width=8):
    return began.BEGANTask(began.Generator(z_dim=8, image_size=image_size, width=width),
                           began.AutoencoderDiscriminator(image_size=image_size, width=width, code_dim=8))


def image_batch(n=6, shape=(3, 32, 32), num_classes=None):
    batch = {"real": torch.rand(n, *shape) * 2 - 1}
    if num_classes:
        batch["label"] = torch.arange(n) % num_classes
    return batch


def paired_batch(n=4, size=32, in_ch=3, out_ch=3):
    return {"input": torch.rand(n, in_ch, size, size) * 2 - 1, "target": torch.rand(n, out_ch, size, size) * 2 - 1}


TASKS = {
    "dcgan": (dcgan_task, lambda: image_batch()),
    "gan_image": (lambda: mlp_task([1, 8, 8]), lambda: image_batch(shape=(1, 8, 8))),
    "gan_points": (lambda: mlp_task([2]), lambda: {"real": torch.randn(6, 2)}),
    "cgan": (cgan_task, lambda: image_batch(shape=(1, 8, 8), num_classes=4)),
    "pix2pix": (pix2pix_task, paired_batch),
    "began": (began_task, lambda: image_batch(shape=(3, 16, 16))),
}

# ---------------------------------------------------------------- shapes and sizes


@pytest.mark.parametrize("size", [32, 64])
def test_dcgan_shapes(size):
    G = dcgan.Generator(z_dim=100, image_size=size, channels=3, width=8)
    D = dcgan.Discriminator(image_size=size, channels=3, width=8)
    x = G(torch.randn(5, 100))
    assert x.shape == (5, 3, size, size)
    assert x.abs().max() <= 1
    assert D(x).shape == (5,)


@pytest.mark.parametrize("size", [16, 48, 128])
def test_dcgan_rejects_other_sizes_naming_the_key(size):
    for make in (lambda: dcgan.Generator(image_size=size), lambda: dcgan.Discriminator(image_size=size)):
        with pytest.raises(ConfigError, match=f"dataset.image_size={size}: DCGAN generates 32 or 64 pixel images"):
            make()


def test_dcgan_follows_the_paper_architecture():
    G, D = dcgan.Generator(image_size=64, width=128), dcgan.Discriminator(image_size=64, width=64)
    project = G.net[0]  # §3: z is projected by a matrix multiply and reshaped to 4x4x1024
    assert isinstance(project, nn.Linear) and project.out_features == 1024 * 16 and project.bias is None
    assert G(torch.randn(2, 100)).shape == (2, 3, 64, 64)
    convs = [m for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [c.out_channels for c in convs] == [512, 256, 128, 3]  # Radford et al. Fig. 1
    assert [c.stride for c in convs] == [(2, 2)] * 4
    assert isinstance(D.head, nn.Linear) and D.head.out_features == 1  # flattened -> one logit
    for net in (G, D):
        assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in net.modules())
        assert sum(isinstance(m, nn.Linear) for m in net.modules()) == 1  # no fully connected hidden layers
        for block in net.modules():  # a convolution followed by BatchNorm carries no bias
            if isinstance(block, nn.Sequential) and len(block) > 1 and isinstance(block[1], nn.BatchNorm2d):
                assert block[0].bias is None
    assert not isinstance(D.body[0][1], nn.BatchNorm2d) and isinstance(D.body[0][1], nn.LeakyReLU)
    assert D.body[0][1].negative_slope == 0.2
    assert [type(m) for m in G.net[-1]] == [nn.ConvTranspose2d, nn.Tanh]  # no BN on the output layer


def test_dcgan_init_is_normal_0_02():
    G, D = dcgan.Generator(image_size=64, width=64), dcgan.Discriminator(image_size=64, width=64)
    for net in (G, D):
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.weight.numel() > 10_000:
                assert m.weight.std().item() == pytest.approx(0.02, rel=0.05)
                assert m.weight.mean().abs().item() < 1e-3
            if isinstance(m, nn.BatchNorm2d):
                assert m.weight.mean().item() == pytest.approx(1.0, abs=0.01)
                assert m.weight.std().item() == pytest.approx(0.02, rel=0.3)
                assert (m.bias == 0).all()
            if getattr(m, "bias", None) is not None:
                assert (m.bias == 0).all()


@pytest.mark.parametrize("size", [16, 32, 64, 256])
def test_pix2pix_generator_shapes_and_1x1_bottleneck(size):
    G = pix2pix.Generator(in_channels=1, out_channels=3, image_size=size, width=2).eval()
    seen = []
    G.down[-1].register_forward_hook(lambda m, i, o: seen.append(o.shape))
    y = G(torch.randn(2, 1, size, size))
    assert y.shape == (2, 3, size, size) and y.abs().max() <= 1
    assert seen[0][-2:] == (1, 1)


def test_pix2pix_256_matches_the_paper_layers():
    G = pix2pix.Generator(image_size=256, width=64)
    enc = [next(m for m in d if isinstance(m, nn.Conv2d)) for d in G.down]
    assert [c.out_channels for c in enc] == [64, 128, 256, 512, 512, 512, 512, 512]  # §6.1.1 encoder
    dec = [next(m for m in u if isinstance(m, nn.ConvTranspose2d)) for u in G.up]
    assert [c.in_channels for c in dec] == [512, 1024, 1024, 1024, 1024, 512, 256, 128]  # §6.1.1 decoder
    has_dropout = [any(isinstance(m, nn.Dropout) for m in u) for u in G.up]
    assert has_dropout == [True] * 3 + [False] * 5
    assert not any(isinstance(m, nn.BatchNorm2d) for m in G.down[0])  # no BN on the first C64
    assert all(m.negative_slope == 0.2 for m in G.down.modules() if isinstance(m, nn.LeakyReLU))
    assert not any(isinstance(m, nn.LeakyReLU) for m in G.up.modules())


@pytest.mark.parametrize("size", [8, 48, 100])
def test_pix2pix_rejects_bad_sizes_naming_the_key(size):
    with pytest.raises(ConfigError, match=f"dataset.image_size={size}"):
        pix2pix.Generator(image_size=size)


def test_patchgan_shapes_and_size_check():
    D = pix2pix.Discriminator(in_channels=6, width=4, n_layers=3, image_size=256)
    assert D(torch.randn(1, 6, 256, 256)).shape == (1, 1, 30, 30)
    assert D(torch.randn(1, 6, 32, 32)).shape == (1, 1, 2, 2)
    with pytest.raises(ConfigError, match="dataset.image_size=16"):
        pix2pix.Discriminator(in_channels=6, n_layers=3, image_size=16)


def test_patchgan_receptive_field_is_70():
    D = pix2pix.Discriminator(in_channels=2, width=4, n_layers=3).eval()  # eval: BN must not mix positions
    x = torch.randn(1, 2, 128, 128, requires_grad=True)
    logits = D(x)
    logits[0, 0, logits.shape[2] // 2, logits.shape[3] // 2].backward()
    support = x.grad.abs().sum((0, 1)) > 0
    rows, cols = support.any(1).nonzero(), support.any(0).nonzero()
    assert rows.max() - rows.min() + 1 == 70 and cols.max() - cols.min() + 1 == 70
    assert support.sum() == 70 * 70  # every pixel of the window, none outside


def test_unet_skips_carry_information_past_a_zeroed_bottleneck():
    G = pix2pix.Generator(image_size=32, width=4).eval()
    G.down[-1].register_forward_hook(lambda m, i, o: torch.zeros_like(o))
    x = torch.randn(1, 3, 32, 32)
    x2 = x.clone()
    x2[0, :, 5, 7] += 1.0
    with torch.no_grad():
        diff = (G(x2) - G(x)).abs().sum((0, 1))
    # Without skips the output would be constant; with them the change shows, strongest near the pixel.
    assert diff.max() > 1e-3
    assert diff.argmax() // 32 in range(2, 10) and diff.argmax() % 32 in range(4, 12)


def test_mlp_gan_images_and_points():
    G = gan.Generator([1, 28, 28])
    D = gan.Discriminator([1, 28, 28])
    assert [m.out_features for m in G.modules() if isinstance(m, nn.Linear)] == [1200, 1200, 784]
    assert [(m.units, m.pieces) for m in D.modules() if hasattr(m, "pieces")] == [(240, 5), (240, 5)]
    x = G(torch.randn(3, 100))
    assert x.shape == (3, 1, 28, 28) and x.abs().max() <= 1
    assert D(x).shape == (3,)
    P = gan.Generator([2])  # points: unbounded output
    assert isinstance(list(P.modules())[-1], nn.Linear)
    assert P(torch.randn(4, 100)).shape == (4, 2)
    assert gan.Discriminator([2])(torch.randn(4, 2)).shape == (4,)
    with pytest.raises(ConfigError, match="model.generator.out_activation=sigmoid"):
        gan.Generator([2], out_activation="sigmoid")


def test_cgan_paper_sizes_and_label_dependence():
    torch.manual_seed(0)
    G, D = cgan.Generator([1, 28, 28], 10).eval(), cgan.Discriminator([1, 28, 28], 10).eval()
    assert [m.out_features for m in G.modules() if isinstance(m, nn.Linear)] == [200, 1000, 1200, 784]
    assert [(m.units, m.pieces) for m in D.modules() if hasattr(m, "pieces")] == [(240, 5), (50, 5), (240, 4)]
    z = torch.randn(2, 100).repeat(2, 1)
    labels = torch.tensor([0, 1, 2, 3])
    x = G(z, labels)
    assert x.shape == (4, 1, 28, 28)
    assert not torch.allclose(x[0], x[2]) and not torch.allclose(x[1], x[3])  # same z, other label
    same = x[:1].expand(2, -1, -1, -1)
    out = D(same, torch.tensor([0, 5]))
    assert out.shape == (2,) and out[0] != out[1]


# ---------------------------------------------------------------- task contract


@pytest.mark.parametrize("name", TASKS)
def test_d_loss_reaches_only_d_and_g_loss_reaches_g(name):
    make_task, make_batch = TASKS[name]
    torch.manual_seed(0)
    task, batch = make_task(), make_batch()
    out = task.d_loss(batch)
    assert {"loss/D", "D(x)", "D(G(z))"} <= out.stats.keys()
    assert 0 < out.stats["D(x)"] < 1 and 0 < out.stats["D(G(z))"] < 1
    out.loss.backward()
    assert all(p.grad is None for p in task.G.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in task.D.parameters())
    task.D.zero_grad(set_to_none=True)
    out_g = task.g_loss(batch, out.carry)
    assert "loss/G" in out_g.stats
    out_g.loss.backward()
    assert all(p.grad is not None for p in task.G.parameters())
    assert sum(p.grad.abs().sum() for p in task.G.parameters()) > 0


@pytest.mark.parametrize("name", TASKS)
def test_one_generator_forward_per_step_and_fallbacks(name):
    make_task, make_batch = TASKS[name]
    task, batch = make_task(), make_batch()
    calls = []
    task.G.register_forward_hook(lambda *a: calls.append(1))
    out = task.d_loss(batch)
    out.loss.backward()
    task.g_loss(batch, out.carry)
    assert len(calls) == 1  # the G step reuses the D step's sample, handed over as its carry
    task.g_loss(batch).loss.backward()  # without a carry, G runs again
    assert len(calls) == 2
    task.G.requires_grad_(False)  # the engine freezes G in the D steps that hand nothing off
    assert task.d_loss(batch).carry is None  # no graph of G to hand off
    task.G.requires_grad_(True)
    task.G.zero_grad(set_to_none=True)
    task.g_loss(batch).loss.backward()
    assert all(p.grad is not None for p in task.G.parameters())


@pytest.mark.parametrize("name", TASKS)
def test_visuals_leave_generator_state_unchanged(name):
    make_task, make_batch = TASKS[name]
    torch.manual_seed(0)
    task, batch = make_task(), make_batch()
    for _ in range(2):  # move BN running statistics away from their initial values
        task.d_loss(batch)
    fixed = task.fixed_inputs(batch, 4)
    before = copy.deepcopy(task.G.state_dict())
    with inference(task, task.G):
        (visual,) = task.visuals(fixed, task.G).values()
    after = task.G.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(m.training for m in task.G.modules())  # every module's mode restored
    if name == "gan_points":
        assert isinstance(visual, Points) and visual.points.shape == (4, 2)
    else:
        assert isinstance(visual, Grid) and visual.images.dim() == 4 and visual.nrow > 0


def test_noise_visuals_are_deterministic_and_square():
    task = dcgan_task()
    fixed = task.fixed_inputs(image_batch(), 16)
    assert fixed["z"].shape == (16, 16)
    torch.manual_seed(1)
    with inference(task, task.G):
        a, b = task.visuals(fixed, task.G)["fixed"], task.visuals(fixed, task.G)["fixed"]
    assert a.nrow == 4 and a.images.shape == (16, 3, 32, 32)
    assert torch.equal(a.images, b.images)


def test_sample_draws_or_takes_the_generator_inputs():
    task = cgan_task(num_classes=4)
    labels = torch.tensor([3, 3, 1])
    with inference(task, task.G):
        out = task.sample(3, task.G, label=labels)
        again = task.sample(3, task.G, z=out["z"], label=labels)
    assert out["samples"].shape == (3, 1, 8, 8) and torch.equal(out["label"], labels)
    assert torch.equal(again["samples"], out["samples"])


def test_pix2pix_visuals_keep_dropout_noise_and_show_triplets():
    task = pix2pix_task(in_ch=1, out_ch=3)
    batch = paired_batch(n=6, in_ch=1, out_ch=3)
    fixed = task.fixed_inputs(batch, 4)
    assert fixed["input"].shape == (4, 1, 32, 32) and torch.equal(fixed["target"], batch["target"][:4])

    torch.manual_seed(1)
    with inference(task, task.G):
        a, b = task.visuals(fixed, task.G)["fixed"], task.visuals(fixed, task.G)["fixed"]
    assert a.nrow == 6 and a.images.shape == (12, 3, 32, 32)  # two triplets per row
    assert not torch.equal(a.images, b.images)  # dropout is noise at test time (Isola et al. §3.3)
    assert torch.equal(a.images[0::3], fixed["input"].expand(-1, 3, -1, -1))
    assert torch.equal(a.images[2::3], fixed["target"])
    with inference(task, task.G):  # the noise comes from the global RNG, forked by inference()
        torch.testing.assert_close(task.visuals(fixed, task.G)["fixed"].images, a.images)


def test_cgan_grid_has_one_class_per_row():
    torch.manual_seed(0)
    task = cgan_task(num_classes=4)
    fixed = task.fixed_inputs(image_batch(shape=(1, 8, 8), num_classes=4), 20)
    with inference(task, task.G):
        grid = task.visuals(fixed, task.G)["fixed"]
    nrow = grid.nrow
    assert nrow == 5 and grid.images.shape == (20, 1, 8, 8)
    assert torch.equal(fixed["label"].view(4, nrow), torch.arange(4).unsqueeze(1).expand(4, nrow))
    for row in range(4):  # row r of the grid shows G(z, r)
        expected = task.G.eval()(fixed["z"][row * nrow:(row + 1) * nrow], torch.full((nrow,), row))
        torch.testing.assert_close(grid.images[row * nrow:(row + 1) * nrow], expected)


def test_cgan_needs_labels():
    task = cgan_task()
    unlabelled = image_batch(shape=(1, 8, 8))
    with pytest.raises(ConfigError, match="needs class labels"):
        task.fixed_inputs(unlabelled, 8)
    with pytest.raises(ConfigError, match="needs class labels"):
        task.d_loss(unlabelled)


def test_cgan_fake_labels_are_uniform():
    torch.manual_seed(0)
    labels = cgan_task(num_classes=4).sample_inputs(40_000)["label"]
    assert torch.bincount(labels, minlength=4).float().div(40_000).sub(0.25).abs().max() < 0.01


def test_pix2pix_objective_is_halved_d_and_adversarial_plus_lambda_l1():
    torch.manual_seed(0)
    task = pix2pix_task(lambda_l1=100.0)
    task.G.eval(), task.D.eval()  # deterministic G and D so the terms can be recomputed
    batch = paired_batch()
    out_d = task.d_loss(batch)
    x, y = batch["input"], batch["target"]
    with torch.no_grad():
        fake = task.G(x)
        full = NonSaturating().d_loss(task.D(torch.cat([x, y], 1)), task.D(torch.cat([x, fake], 1)))
    torch.testing.assert_close(out_d.loss, 0.5 * full)
    stats = task.g_loss(batch).stats
    torch.testing.assert_close(stats["loss/G_L1"], (fake - y).abs().mean())
    torch.testing.assert_close(stats["loss/G"], stats["loss/G_adv"] + 100.0 * stats["loss/G_L1"])
    assert stats["loss/G"] > stats["loss/G_adv"] + 1
    # With the output equal to the target the L1 term vanishes and only the adversarial cost is left.
    stats = task.g_loss({"input": x, "target": fake}).stats
    assert stats["loss/G_L1"] == 0
    torch.testing.assert_close(stats["loss/G"], stats["loss/G_adv"])
