"""`gan-lab sample`: grids, interpolations and folder translation from a checkpoint."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torchvision.utils import save_image

from gan_lab.engine.restore import restore
from gan_lab.errors import ConfigError
from gan_lab.models.noise import slerp
from gan_lab.sample import interpolations, traversal
from gan_lab.train import run
from tests.conftest import TINY, compose_train
from tests.test_cli import gan_lab


def test_slerp_keeps_endpoints_and_norm():
    a, b = torch.randn(3, 16), torch.randn(3, 16)
    b = b / b.norm(dim=1, keepdim=True) * a.norm(dim=1, keepdim=True)  # equal norms
    path = slerp(a, b, torch.linspace(0, 1, 5))
    assert path.shape == (3, 5, 16)
    assert torch.allclose(path[:, 0], a, atol=1e-5) and torch.allclose(path[:, -1], b, atol=1e-5)
    assert torch.allclose(path.norm(dim=2), a.norm(dim=1, keepdim=True).expand(3, 5), rtol=1e-4)


def test_restore_prefers_the_ema_generator(tmp_path):
    run(compose_train([*TINY, "dataset.count=64", "tricks=[ema]"]), tmp_path)
    restored = restore(tmp_path, torch.device("cpu"))
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert restored.step == 4 and restored.generator is not restored.task.G
    for key, value in restored.generator.state_dict().items():
        assert torch.equal(value, state["models"]["G_ema"][key])
    live = restore(tmp_path, torch.device("cpu"), use_ema=False)
    assert live.generator is live.task.G


def test_sample_grid_and_interpolation_cli(tmp_path):
    run(compose_train([*TINY, "model=cgan", "dataset.count=64"]), tmp_path / "run")
    out = gan_lab("sample", f"ckpt={tmp_path / 'run'}", "n=16", f"out={tmp_path / 'grid.png'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    # 4 classes x 4 columns of 32 px images with 2 px padding
    assert Image.open(tmp_path / "grid.png").size == (4 * 34 + 2, 4 * 34 + 2)
    out = gan_lab("sample", f"ckpt={tmp_path / 'run'}", "interpolate=true", "n=16", "steps=8", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert Image.open(tmp_path / "run" / "samples" / "interp-0000004-seed0.png").size == (8 * 34 + 2, 2 * 34 + 2)


def test_sample_translates_a_folder(tmp_path):
    run(compose_train([*TINY, "model=pix2pix", "dataset.count=64"]), tmp_path / "run")
    (tmp_path / "in").mkdir()
    for i in range(3):
        save_image(torch.rand(3, 40, 40), tmp_path / "in" / f"img{i}.png")
    out = gan_lab("sample", f"ckpt={tmp_path / 'run'}", f"input_dir={tmp_path / 'in'}",
                  f"output_dir={tmp_path / 'out'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img0.png", "img1.png", "img2.png"]
    assert Image.open(tmp_path / "out" / "img0.png").size == (32, 32)


def test_sample_errors_are_clear(tmp_path):
    out = gan_lab("sample", f"ckpt={tmp_path / 'missing'}", cwd=tmp_path)
    assert out.returncode == 1 and "does not exist" in out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr and not (tmp_path / "missing").exists()
    (tmp_path / "bad.pt").write_bytes(b"junk")
    out = gan_lab("sample", f"ckpt={tmp_path / 'bad.pt'}", cwd=tmp_path)
    assert out.returncode == 1 and "corrupt" in out.stdout + out.stderr


def test_sample_traverses_an_infogan_code(tmp_path):
    run(compose_train([*TINY, "model=infogan", "model.generator.width=8", "model.discriminator.width=8",
                       "dataset.count=64"]), tmp_path / "run")
    out = gan_lab("sample", f"ckpt={tmp_path / 'run'}", "traverse=c2", "n=16", "steps=4", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    # 4 rows of 4 values of c2 over span [-2, 2], 32 px images with 2 px padding
    assert Image.open(tmp_path / "run" / "samples" / "traverse-c2-0000004-seed0.png").size == (4 * 34 + 2, 4 * 34 + 2)
    restored = restore(tmp_path / "run", torch.device("cpu"))
    images, nrow = traversal(restored, "c1", 20, 8, [-2.0, 2.0])
    assert images.shape == (20, 3, 32, 32) and nrow == 10  # the 10 values of c1, 2 rows
    with pytest.raises(ConfigError, match=r"traverse=c4: no latent code 'c4'; this model's codes are "
                                          r"c1 \(categorical, 10 values\), c2 \(continuous\), c3 \(continuous\)"):
        traversal(restored, "c4", 20, 8, [-2.0, 2.0])
    with pytest.raises(ConfigError, match="latent holds uniform noise and codes"):  # no Gaussian to slerp through
        interpolations(restored, 2, 4)


def test_traverse_needs_a_model_with_codes(tmp_path):
    run(compose_train([*TINY, "train.steps=2", "dataset.count=32"]), tmp_path)
    with pytest.raises(ConfigError, match=r"traverse=c1 needs a model with latent codes \(model=infogan\); "
                                          "NoiseToImage has none"):
        traversal(restore(tmp_path, torch.device("cpu")), "c1", 16, 8, [-2.0, 2.0])


def test_interpolate_needs_a_model_with_a_latent(tmp_path):
    run(compose_train([*TINY, "model=pix2pix", "train.steps=2", "dataset.count=32"]), tmp_path / "run")
    with pytest.raises(ConfigError, match="interpolate=true needs a model with a Gaussian latent z; "
                                          "Pix2PixTask has none"):
        interpolations(restore(tmp_path / "run", torch.device("cpu")), 2, 4)
    out = gan_lab("sample", f"ckpt={tmp_path / 'run'}", "interpolate=true", cwd=tmp_path)
    assert out.returncode == 1 and "Pix2PixTask has none" in out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
