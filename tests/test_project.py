"""`gan-lab project`: iGAN's projection, colour edits and interpolation (Zhu et al. 2016, §3.1-3.2)."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from PIL import Image
from torch import nn
from torchvision.utils import save_image

from gan_lab import config as config_lib
from gan_lab.engine.restore import restore
from gan_lab.errors import ConfigError
from gan_lab.latent_search import frozen
from gan_lab.models.noise import NoiseToImage
from gan_lab.project import Projector, masked_rmse, projector, psnr_rmse, write
from gan_lab.train import run
from tests.conftest import TINY, compose_train
from tests.test_cli import gan_lab

SMALL = ["model.generator.width=8", "model.discriminator.width=8", "dataset.count=64"]


@pytest.fixture(scope="module")
def dcgan_run(tmp_path_factory) -> Path:
    """A 4-step DCGAN on shapes (32 px, RGB) with an 8-dimensional z: a generator to project onto."""
    path = tmp_path_factory.mktemp("dcgan")
    run(compose_train([*TINY, "model=dcgan", *SMALL, "model.generator.z_dim=8"]), path)
    return path


@pytest.fixture(scope="module")
def proj(dcgan_run):
    restored = restore(dcgan_run, torch.device("cpu"))
    restored.task.seed_latent(0)
    return projector(restored)


def compose_project(overrides: list[str]):
    config_lib.register()
    with initialize_config_module("gan_lab.configs", version_base="1.3"):
        return compose("project", overrides=overrides)


def save(images: torch.Tensor, path: Path) -> str:
    save_image(images * 0.5 + 0.5, path)
    return str(path)


def test_projecting_gs_own_image_recovers_it_better_than_a_real_image(dcgan_run, proj):
    task = proj.task
    before = {k: v.clone() for k, v in task.state_dict().items()}
    torch.manual_seed(1)
    own = proj.generate(torch.randn(3, 8))
    data = instantiate(restore(dcgan_run, torch.device("cpu")).config.dataset)
    real = data.examples(3)["real"]
    z, loss = proj.project(torch.cat([own, real]), starts=4, steps=400, lr=0.05)
    rmse, psnr = psnr_rmse(proj.generate(z), torch.cat([own, real]))
    assert max(rmse[:3]) < 1e-3 and min(psnr[:3]) > 60  # G's own images: reconstructed
    assert max(rmse[:3]) < min(rmse[3:]) / 10  # real images lie off this generator's manifold
    assert torch.allclose(loss, (proj.generate(z) - torch.cat([own, real])).square().flatten(1).mean(1), atol=1e-6)
    assert all(torch.equal(before[k], v) for k, v in task.state_dict().items())  # G and D unchanged
    assert all(p.requires_grad for p in task.parameters())


def test_the_best_start_is_kept_and_an_encoders_guess_starts_the_search(proj):
    torch.manual_seed(2)
    z_true = torch.randn(2, 8)
    x = proj.generate(z_true)
    z, loss = proj.project(x, starts=3, steps=0, lr=0.05, z_init=z_true)  # the hybrid: the guess is start 0
    assert torch.equal(z, z_true) and loss.max() < 1e-12  # (batch size changes the last bits)
    far = proj.project(x, starts=1, steps=0, lr=0.05)[1]
    assert (far > 0).all()


class HalvesG(nn.Module):
    """z (8) -> 3x8x8: each half of the image a colour plus a faint texture, the left half from z[:4], the right
    from z[4:]; pixels depend on nearby latents, as a convolutional generator's depend on nearby features."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.z_dim = 8
        self.colour = nn.ModuleList(nn.Linear(4, 3) for _ in "lr")
        self.texture = nn.ModuleList(nn.Linear(4, 96) for _ in "lr")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        halves = [self.colour[i](h)[:, :, None, None] + 0.3 * self.texture[i](h).view(-1, 3, 8, 4)
                  for i, h in enumerate(z.split(4, 1))]
        return torch.tanh(torch.cat(halves, 3))


def test_colour_edit_moves_masked_pixels_to_the_colour_and_lambda_s_holds_z():
    G = HalvesG()
    halves = Projector(NoiseToImage(G, nn.Linear(1, 1), None), G, (3, 8, 8), 8)
    torch.manual_seed(3)
    z0 = torch.randn(1, 8)
    before = halves.generate(z0)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 0:3] = 1  # inside the left half
    red = torch.tensor([1.0, -1.0, -1.0])[None, :, None, None].expand(1, 3, 8, 8)
    params = {k: v.clone() for k, v in G.state_dict().items()}
    z_loose = halves.edit(z0, mask, red, lambda_s=0.05, steps=300, lr=0.1)
    after = halves.generate(z_loose)
    assert masked_rmse(after, red, mask) < masked_rmse(before, red, mask) * 0.8
    change = (after - before).abs().mean(1, keepdim=True)
    assert (change * (1 - mask)).sum() / (1 - mask).sum() < (change * mask).sum() / mask.sum() / 2
    z_tight = halves.edit(z0, mask, red, lambda_s=5.0, steps=300, lr=0.1)
    assert (z_tight - z0).norm() < (z_loose - z0).norm() / 2
    assert masked_rmse(after, red, mask) < masked_rmse(halves.generate(z_tight), red, mask)
    assert all(torch.equal(params[k], v) for k, v in G.state_dict().items())


def test_interpolation_ends_at_the_projections_and_stays_on_the_sphere(proj):
    a, b = torch.randn(8), torch.randn(8)
    path = proj.path(a, b, 5)
    assert torch.allclose(path[0], a, atol=1e-5) and torch.allclose(path[-1], b, atol=1e-5)
    assert path.norm(dim=1).min() > min(a.norm(), b.norm()) * 0.7  # slerp, not the line through the centre
    line = replace(proj, bounds=(-1.0, 1.0)).path(a, b, 5)
    assert torch.allclose(line[2], (a + b) / 2, atol=1e-6)  # a uniform prior's box: a straight line


def test_bounds_keep_z_in_a_uniform_priors_box(proj):
    boxed = replace(proj, bounds=(-1.0, 1.0))
    x = proj.generate(torch.full((1, 8), 3.0))
    z, _ = boxed.project(x, starts=2, steps=50, lr=0.2)
    assert z.abs().max() <= 1


def test_the_feature_term_adds_ds_feature_distance(proj):
    torch.manual_seed(5)
    x, z = proj.generate(torch.randn(2, 8)), torch.randn(2, 8)
    G, D = proj.G, proj.task.D
    with frozen(G, D):
        value = replace(proj, feature_weight=0.5).reconstruction(x)(z)
        pixels = (G(z) - x).square().flatten(1).mean(1)
        features = (D.features(G(z)) - D.features(x)).square().flatten(1).mean(1)
        l1 = replace(proj, loss="l1").reconstruction(x)(z)
    assert torch.allclose(value, pixels + 0.5 * features) and (features > 0).all()
    assert torch.allclose(l1, (G(z) - x).abs().flatten(1).mean(1))
    G = HalvesG()
    featureless = SimpleNamespace(task=NoiseToImage(G, nn.Linear(1, 1), None), generator=G, path="run")
    with pytest.raises(ConfigError, match="feature_weight=1.0: NoiseToImage's discriminator exposes no features"):
        projector(featureless, feature_weight=1.0)
    with pytest.raises(ConfigError, match="loss=l3"):
        projector(featureless, loss="l3")


def test_project_cli_end_to_end(dcgan_run, proj, tmp_path):
    torch.manual_seed(4)
    a, b = (save(proj.generate(torch.randn(1, 8))[0], tmp_path / f"{n}.png") for n in "ab")
    mask = torch.zeros(1, 32, 32)
    mask[:, :16] = 1
    save_image(mask, tmp_path / "mask.png")
    out = gan_lab("project", f"ckpt={dcgan_run}", f"image={a}", f"mask={tmp_path / 'mask.png'}",
                  "color=[0.0,1.0,0.0]", "starts=2", "steps=150", "edit_steps=50", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    folder = dcgan_run / "project" / "a"
    report = json.loads((folder / "projection.json").read_text())
    assert report["rmse"][0] < 0.05 and report["psnr"][0] > 26
    assert report["edit"]["lambda_s"] == 5.0 and (folder / "edit.png").exists()
    assert torch.load(folder / "z_edit.pt", weights_only=True)["z"].shape == (1, 8)
    assert torch.load(folder / "z.pt", weights_only=True)["z"].shape == (1, 8)
    assert Image.open(folder / "edit_strip.png").size == (4 * 34 + 2, 34 + 2)  # input | projection | constraint | edit
    # a later edit of the saved z, then interpolation between two projections
    out = gan_lab("project", f"ckpt={dcgan_run}", f"z={folder / 'z.pt'}", f"mask={tmp_path / 'mask.png'}",
                  f"strokes={b}", "edit_steps=20", f"out={tmp_path / 'again'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert Image.open(tmp_path / "again" / "edit_strip.png").size == (3 * 34 + 2, 34 + 2)
    write(compose_project([f"ckpt={dcgan_run}", f"image=[{a},{b}]", "interpolate=6", "starts=2", "steps=150",
                           f"out={tmp_path / 'interp'}"]))
    strip = torch.from_numpy(np.array(Image.open(tmp_path / "interp" / "interpolation.png")))
    frames = [strip[2:34, 2 + 34 * i:34 + 34 * i] for i in range(8)]  # input a | 6 steps | input b
    projections = torch.from_numpy(np.array(Image.open(tmp_path / "interp" / "projection.png")))
    assert torch.equal(frames[1], projections[2:34, 2:34]) and torch.equal(frames[6], projections[2:34, 36:68])


def test_bad_inputs_name_the_key_or_file(dcgan_run, tmp_path):
    base = [f"ckpt={dcgan_run}", "steps=1", "starts=1", f"out={tmp_path / 'out'}"]
    image = save(torch.zeros(3, 40, 40), tmp_path / "x.png")
    save_image(torch.ones(1, 20, 20), tmp_path / "small_mask.png")
    save_image(torch.ones(1, 40, 40), tmp_path / "mask.png")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    cases = {
        "image=": [f"image={tmp_path / 'missing.png'}"],
        "junk.png": [f"image={tmp_path / 'junk.png'}"],
        "mask=": [f"image={image}", f"mask={tmp_path / 'small_mask.png'}", "color=[1,0,0]"],
        "color=": [f"image={image}", f"mask={tmp_path / 'mask.png'}", "color=[2,0,0]"],
        "needs one of color": [f"image={image}", f"mask={tmp_path / 'mask.png'}"],
        "interpolate=": [f"image={image}", "interpolate=4"],
        "init=encoder": [f"image={image}", "init=encoder"],
        "z=": [f"z={tmp_path / 'junk.png'}"],
    }
    for needle, overrides in cases.items():
        with pytest.raises(ConfigError, match=needle.replace("[", r"\[")):
            write(compose_project([*base, *overrides]))
    assert not (tmp_path / "out").exists()  # every error came before any work
    out = gan_lab("project", f"ckpt={dcgan_run}", f"image={tmp_path / 'missing.png'}", cwd=tmp_path)
    assert out.returncode == 1 and "missing.png: no such file" in out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr


def test_models_without_a_lone_latent_are_refused(tmp_path):
    run(compose_train([*TINY, "model=cgan", "dataset.count=64"]), tmp_path / "cgan")
    run(compose_train([*TINY, "model=pix2pix", "dataset.count=64"]), tmp_path / "pix2pix")
    image = save(torch.zeros(3, 32, 32), tmp_path / "x.png")
    for name, why in (("cgan", "ConditionalTask, whose generator takes \\['label', 'z'\\]"),
                      ("pix2pix", "Pix2PixTask, whose generator takes no latent z")):
        with pytest.raises(ConfigError, match=rf"ckpt=.*{name}.*unconditional.*model is {why}"):
            write(compose_project([f"ckpt={tmp_path / name}", f"image={image}"]))


def test_an_encoder_gives_the_first_start(dcgan_run, tmp_path, monkeypatch):
    restored = restore(dcgan_run, torch.device("cpu"))
    z_true = torch.randn(1, 8)
    image = save(restored.generator.eval()(z_true)[0].detach(), tmp_path / "x.png")
    guesses = []
    monkeypatch.setattr(NoiseToImage, "encode", lambda self, x: guesses.append(x) or z_true, raising=False)
    folder = write(compose_project([f"ckpt={dcgan_run}", f"image={image}", "init=encoder", "steps=0", "starts=3",
                                    f"out={tmp_path / 'out'}"]))
    assert len(guesses) == 1 and guesses[0].shape == (1, 3, 32, 32)
    assert torch.equal(torch.load(folder / "z.pt", weights_only=True)["z"], z_true)


def test_a_bigan_checkpoint_projects_from_its_encoder_and_stays_in_its_prior(tmp_path, monkeypatch):
    run(compose_train([*TINY, "model=bigan", "dataset.count=64"]), tmp_path / "bigan")
    restored = restore(tmp_path / "bigan", torch.device("cpu"))
    assert restored.task.latent_bounds == (-1.0, 1.0)  # BiGAN's z ~ U[-1, 1]
    guesses = []
    encode = type(restored.task).encode
    monkeypatch.setattr(type(restored.task), "encode", lambda self, x, *a, **k: guesses.append(1) or encode(self, x))
    image = save(torch.zeros(3, 32, 32), tmp_path / "x.png")
    write(compose_project([f"ckpt={tmp_path / 'bigan'}", f"image={image}", "init=encoder", "steps=5", "starts=2",
                           f"out={tmp_path / 'out'}"]))
    assert guesses, "init=encoder did not call the BiGAN encoder"
    z = torch.load(tmp_path / "out" / "z.pt", weights_only=True)["z"]
    assert z.shape == (1, 50) and z.abs().max() <= 1
