"""SRResNet / SRGAN (Ledig et al. 2017): sub-pixel upsampling, networks, losses, the VGG content loss, the
SR data, Y-channel metrics with the bicubic baseline, init from an SRResNet run, and folder upsampling."""

from __future__ import annotations

import json
import logging

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from PIL import Image
from torch import nn
from torchvision.utils import save_image

from gan_lab.data.superres import SuperResolution, bicubic_downscale, bicubic_upscale
from gan_lab.engine import checkpoint
from gan_lab.engine.build import build_task
from gan_lab.engine.restore import restore
from gan_lab.errors import ConfigError
from gan_lab.losses.perceptual import ContentLoss, VGGFeatures
from gan_lab.metrics.image_quality import crop_border, psnr, rgb_to_y, ssim
from gan_lab.models.srgan import Discriminator, Generator, upsample_block
from gan_lab.train import run, setup
from tests.conftest import TINY, compose_train, flat_model, require_data
from tests.test_cli import gan_lab

SHAPES = {"_target_": "gan_lab.data.shapes.Shapes", "image_size": 32, "count": 16, "seed": 0}


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """A seeded random torchvision VGG19 state_dict (the real weights are not on this offline machine)."""
    from torchvision.models import vgg19

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vgg") / "vgg19-random.pth"
    torch.save(vgg19(weights=None).state_dict(), path)
    return path


def task_of(overrides: list[str]):
    cfg = compose_train(overrides)
    return build_task(cfg, torch.device("cpu"))[0]


# -- networks --

def test_pixel_shuffle_moves_channel_4c_2i_j_to_pixel_2h_i_2w_j():
    block = upsample_block(2)
    x = torch.randn(1, 8, 3, 5)
    out = block[1](x)  # the PixelShuffle(2) of the block
    assert out.shape == (1, 2, 6, 10)
    for c in range(2):
        for i in range(2):
            for j in range(2):
                assert torch.equal(out[0, c, i::2, j::2], x[0, 4 * c + 2 * i + j])


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_generator_output_side_is_factor_times_the_input(factor):
    G = Generator(channels=3, factor=factor, width=8, blocks=2).eval()
    assert G(torch.rand(2, 3, 5, 7) * 2 - 1).shape == (2, 3, 5 * factor, 7 * factor)
    assert len(G.up) == factor.bit_length() - 1


def test_generator_layout_and_output_range():
    G = Generator(channels=3, factor=4, width=16, blocks=3)
    assert len(G.body) == 3 + 2  # B residual blocks, then conv + BN before the long skip
    assert G.head[0].kernel_size == (9, 9) and G.tail.kernel_size == (9, 9)
    assert all(isinstance(m, nn.PReLU) and m.num_parameters == 16 for m in (G.head[1], G.up[0][2]))
    seen = {}
    G.head[0].register_forward_hook(lambda m, inputs, out: seen.update(x=inputs[0]))
    out = G(torch.linspace(-1, 1, 2 * 3 * 8 * 8).view(2, 3, 8, 8))
    assert seen["x"].min() == 0 and seen["x"].max() == 1  # §3.2: LR in [0, 1]
    assert out.abs().max() <= 1  # tanh
    linear = Generator(channels=3, factor=4, width=16, blocks=3, tanh=False)
    linear.load_state_dict(G.state_dict())
    assert torch.allclose(torch.tanh(linear(seen["x"] * 2 - 1)), G(seen["x"] * 2 - 1), atol=1e-6)


@pytest.mark.parametrize("size", [32, 64])
def test_discriminator_shapes(size):
    D = Discriminator(channels=3, image_size=size, width=8, dense_units=16)
    assert D(torch.randn(2, 3, size, size)).shape == (2, 1)
    strides = [m.stride[0] for m in D.features.modules() if isinstance(m, nn.Conv2d)]
    assert strides == [1, 2, 1, 2, 1, 2, 1, 2]  # Fig. 4: eight 3x3 conv layers
    assert D.head[1][0].in_features == 8 * 8 * (size // 16) ** 2  # 512 x (S/16)^2 at width 64
    pooled = Discriminator(channels=3, image_size=40, width=8, dense_units=16, global_pool=True)
    assert pooled(torch.randn(2, 3, 40, 40)).shape == (2, 1)
    with pytest.raises(ConfigError, match="multiple of 16"):
        Discriminator(image_size=40)


def test_factor_must_be_a_power_of_two():
    with pytest.raises(ConfigError, match="dataset.factor"):
        Generator(factor=3)


# -- tasks --

def test_srresnet_has_no_discriminator_and_minimises_the_mse():
    task = task_of(["model=srresnet", "dataset.count=16", "model.generator.width=8", "model.generator.blocks=2"])
    assert set(task.players()) == {"G"} and task.D is None and task.loss is None
    assert [p.player for p in task.phases(1, 1)] == ["G"]
    batch = instantiate(compose_train(["model=srresnet", "dataset.count=16"]).dataset).examples(4)
    out = task.phases(1, 1)[0].loss(batch, None)
    expected = F.mse_loss(task.G(batch["input"]), batch["target"]).item()
    assert out.loss.item() == pytest.approx(expected, rel=1e-6)


def test_srgan_weights_content_1_and_adversarial_1e_3():
    cfg = compose_train(["model=srgan"])
    assert cfg.model.adversarial_weight == 1e-3
    task = task_of(["model=srgan", "dataset.count=16", "model.generator.width=8", "model.generator.blocks=2",
                    "model.discriminator.width=8"])

    class Constant(nn.Module):
        def forward(self, x):
            return torch.full((len(x), 1), 0.3)

    task.D = Constant()
    batch = instantiate(cfg.dataset, count=16).examples(4)
    fake = task.G(batch["input"])
    out = task.g_loss(batch, fake)
    expected = F.mse_loss(fake, batch["target"]) + 1e-3 * F.softplus(torch.tensor(-0.3))
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert float(out.stats["loss/G_adv"]) == pytest.approx(float(F.softplus(torch.tensor(-0.3))), rel=1e-6)


def test_pretraining_is_a_content_only_phase_up_to_its_last_step():
    task = task_of(["model=srgan", "dataset.count=16", "model.pretrain_steps=5", "model.generator.width=8",
                    "model.generator.blocks=2", "model.discriminator.width=8"])
    assert [p.player for p in task.phases(5, 1)] == ["G"]
    assert task.phases(5, 1)[0].loss == task.content_loss
    assert [p.player for p in task.phases(6, 1)] == ["D", "G"] and [p.repeats for p in task.phases(6, 2)] == [2, 1]
    with pytest.raises(ConfigError, match="model.pretrain_steps"):
        task_of(["model=srgan", "model.pretrain_steps=-1"])


# -- the VGG content loss --

@pytest.mark.parametrize("layer, channels, shrink, cut", [("vgg22", 128, 2, 9), ("vgg54", 512, 16, 36)])
def test_vgg_features_end_at_the_named_relu(vgg_file, layer, channels, shrink, cut):
    vgg = VGGFeatures(layer, vgg_file)
    assert len(vgg.features) == cut and isinstance(vgg.features[-1], nn.ReLU)
    assert sum(isinstance(m, nn.Conv2d) for m in vgg.features) == {"vgg22": 4, "vgg54": 16}[layer]
    assert vgg(torch.rand(2, 3, 64, 64) * 2 - 1).shape == (2, channels, 64 // shrink, 64 // shrink)
    assert not any(p.requires_grad for p in vgg.parameters())
    vgg.train()
    assert not vgg.training


def test_vgg_loss_is_zero_for_identical_images_and_scales_the_features(vgg_file):
    a, b = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    loss = ContentLoss("vgg22", vgg_file, scale=1 / 12.75)
    assert float(loss(a, a)) == 0  # reads the weights on first use
    plain = F.mse_loss(loss.vgg(a), loss.vgg(b))
    assert float(loss(a, b)) == pytest.approx(float(plain) / 12.75**2, rel=1e-5)  # the paper's ≈ 0.006


def test_vgg_loss_trains_g_only_and_stays_out_of_checkpoints(vgg_file, tmp_path):
    task = task_of(["model=srresnet", "dataset.count=16", "model.generator.width=8", "model.generator.blocks=2",
                    "model.content=vgg22", f"model.vgg_weights={vgg_file}"])
    batch = instantiate(compose_train(["model=srresnet", "dataset.count=16"]).dataset).examples(4)
    task.content_loss(batch).loss.backward()
    assert all(p.grad is None for p in task.content.vgg.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in task.G.parameters())
    assert not any("features" in key for key in task.state_dict())
    run(compose_train([*TINY, "train.steps=2", "model=srresnet", "dataset.count=16", "model.content=vgg22",
                       f"model.vgg_weights={vgg_file}"]), tmp_path)
    state = checkpoint.load(tmp_path / "checkpoints" / "last.pt")
    assert set(state["models"]) == {"G"} and not any("features" in key for key in flat_model(state))
    vgg_file.rename(vgg_file.with_suffix(".moved"))  # a trained run is evaluated and sampled without the VGG
    try:
        restored = restore(tmp_path, torch.device("cpu"))
        assert restored.task.sample(2, restored.generator, input=batch["input"][:2])["samples"].shape == (2, 3, 32, 32)
    finally:
        vgg_file.with_suffix(".moved").rename(vgg_file)


def test_vgg_loss_without_weights_fails_before_training(tmp_path, monkeypatch):
    monkeypatch.delenv("GAN_LAB_VGG19", raising=False)
    with pytest.raises(ConfigError) as err:
        run(compose_train([*TINY, "model=srgan", "model.content=vgg54", "dataset.count=16"]), tmp_path)
    for needle in ("model.vgg_weights", "vgg19-dcbb9e9d.pth", "download.pytorch.org/models/vgg19-dcbb9e9d.pth",
                   "GAN_LAB_VGG19"):
        assert needle in str(err.value)
    assert not (tmp_path / "checkpoints").exists()
    with pytest.raises(ConfigError, match="does not exist"):
        ContentLoss("vgg54", tmp_path / "missing.pth").load()
    (tmp_path / "junk.pth").write_bytes(b"version https://git-lfs.github.com/spec/v1\n")
    with pytest.raises(ConfigError, match="not a readable torch state_dict"):
        ContentLoss("vgg54", tmp_path / "junk.pth").load()
    with pytest.raises(ConfigError, match="model.content"):
        ContentLoss("vgg33")


def test_other_weights_than_torchvisions_warn(vgg_file, caplog):
    with caplog.at_level(logging.WARNING):
        ContentLoss("vgg22", vgg_file).load()
    assert "is not that of torchvision's vgg19-dcbb9e9d.pth" in caplog.text


# -- data and metrics --

def test_sr_pairs_are_bicubic_downscales():
    data = SuperResolution(SHAPES, factor=4)
    assert data.kind == "paired" and data.image_size == 32
    assert data.tensors["input"].shape == (16, 3, 8, 8) and data.tensors["target"].shape == (16, 3, 32, 32)
    assert torch.equal(data.tensors["input"], bicubic_downscale(data.tensors["target"], 4))
    test = SuperResolution(SHAPES, factor=4, split="test")  # shapes has no splits: seed + 1
    assert not torch.equal(test.tensors["target"], data.tensors["target"])
    with pytest.raises(ValueError, match="dataset.factor"):
        SuperResolution(SHAPES, factor=3)
    with pytest.raises(ValueError, match="dataset.image_size"):
        SuperResolution(SHAPES, image_size=64)


def test_sr_pairs_of_the_cifar10_images_in_shared_data():
    root = require_data("cifar-10-partial").parent
    cfg = compose_train(["dataset=sr_cifar10", "dataset@dataset.base=cifar10_partial", f"dataset.base.root={root}"])
    train, test = instantiate(cfg.dataset), instantiate(cfg.dataset, split="test")
    assert train.tensors["input"].shape == (932, 3, 8, 8) and test.tensors["target"].shape == (932, 3, 32, 32)
    assert not torch.equal(train.tensors["target"][:10], test.tensors["target"][:10])


def test_bicubic_round_trip_of_a_constant_image_is_exact():
    flat = torch.full((1, 3, 32, 32), 37, dtype=torch.uint8)
    small = bicubic_downscale(flat, 4)
    assert torch.equal(small, torch.full((1, 3, 8, 8), 37, dtype=torch.uint8))
    value = 37 / 127.5 - 1
    assert torch.allclose(bicubic_upscale(small.float() / 127.5 - 1, 4), torch.full((1, 3, 32, 32), value), atol=1e-6)


def test_y_channel_and_border_crop_hand_values():
    rgb = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).T.reshape(1, 3, 1, 4)
    y = rgb_to_y(rgb).flatten() * 255
    assert y.tolist() == pytest.approx([235.0, 16.0, 16 + 65.481, 16 + 128.553], abs=1e-4)
    x = torch.arange(64.0).view(1, 1, 8, 8)
    assert torch.equal(crop_border(x, 2), x[..., 2:6, 2:6])
    a = torch.rand(1, 3, 16, 16)
    b = a.clone()
    b[..., :4, :] = 1 - b[..., :4, :]  # differ only in the top border strip
    assert psnr(crop_border(a, 4), crop_border(b, 4)).isinf().all() and psnr(a, b).isfinite().all()


def test_eval_reports_y_metrics_beside_the_bicubic_baseline(tmp_path):
    run(compose_train([*TINY, "model=srresnet", "dataset.count=16", "model.generator.width=8",
                       "model.generator.blocks=2"]), tmp_path / "run")
    from tests.test_eval import eval_cli

    out = eval_cli(tmp_path, f"ckpt={tmp_path / 'run'}", "eval.num_samples=16",
                   "eval.metrics=[psnr,psnr_y,ssim_y]")
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(next((tmp_path / "run" / "eval").glob("*.json")).read_text())
    assert set(report["metrics"]) == {f"{p}{m}" for p in ("", "bicubic ") for m in ("PSNR", "PSNR-Y", "SSIM-Y")}
    assert report["data"] == "test split"
    restored = restore(tmp_path / "run", torch.device("cpu"))
    pairs = instantiate(restored.config.dataset, split="test").examples(16)  # shapes drawn with seed 1
    up = crop_border(bicubic_upscale(pairs["input"], 4) * 0.5 + 0.5, 4)
    hr = crop_border(pairs["target"] * 0.5 + 0.5, 4)
    for name, fn in (("PSNR-Y", psnr), ("SSIM-Y", ssim)):
        assert report["metrics"][f"bicubic {name}"] == pytest.approx(float(fn(rgb_to_y(up), rgb_to_y(hr)).mean()), rel=1e-5)


# -- init from an SRResNet run, and upsampling a folder --

def test_srgan_starts_from_an_srresnet_run(tmp_path):
    small = ["dataset.count=16", "model.generator.width=8", "model.generator.blocks=2"]
    run(compose_train([*TINY, "train.steps=2", "model=srresnet", *small]), tmp_path / "srresnet")
    state, _, _ = setup(compose_train([*TINY, "model=srgan", *small, "model.discriminator.width=8",
                                       "model.pretrain_steps=0", f"model.init={tmp_path / 'srresnet'}"]))
    trained = checkpoint.load(tmp_path / "srresnet")["models"]["G"]
    assert all(torch.equal(v, trained[k]) for k, v in state.task.G.state_dict().items())
    more, _, _ = setup(compose_train([*TINY, "model=srresnet", *small, f"model.init={tmp_path / 'srresnet'}"]))
    assert all(torch.equal(v, trained[k]) for k, v in more.task.G.state_dict().items())  # SRResNet continued
    cases = {tmp_path / "nowhere": "does not exist", tmp_path / "dcgan": "must be an SRResNet"}
    run(compose_train([*TINY, "train.steps=2", "dataset.count=16"]), tmp_path / "dcgan")
    for path, message in cases.items():
        with pytest.raises(ConfigError, match=f"model.init.*{message}"):
            setup(compose_train([*TINY, "model=srgan", *small, f"model.init={path}"]))
    with pytest.raises(ConfigError, match="does not fit"):
        setup(compose_train([*TINY, "model=srgan", "dataset.count=16", "model.generator.width=8",
                             f"model.init={tmp_path / 'srresnet'}"]))


def test_sample_upsamples_a_folder_at_each_images_size(tmp_path):
    run(compose_train([*TINY, "model=srresnet", "dataset.count=16", "model.generator.width=8",
                       "model.generator.blocks=2"]), tmp_path / "run")
    (tmp_path / "in").mkdir()
    save_image(torch.rand(3, 10, 12), tmp_path / "in" / "wide.png")
    save_image(torch.rand(3, 8, 8), tmp_path / "in" / "square.png")
    out = gan_lab("sample", f"ckpt={tmp_path / 'run'}", f"input_dir={tmp_path / 'in'}",
                  f"output_dir={tmp_path / 'out'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert Image.open(tmp_path / "out" / "wide.png").size == (48, 40)
    assert Image.open(tmp_path / "out" / "square.png").size == (32, 32)
