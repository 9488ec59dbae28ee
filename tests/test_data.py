"""Data package: synthetic determinism and geometry, resumable batching, config/constructor
agreement, real sets from $GAN_LAB_DATA (skipped with a reason when absent), missing-data errors."""

from __future__ import annotations

import inspect
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf
from PIL import Image

from gan_lab.data.base import BatchSampler
from gan_lab.data.folders import ImageFolder, PairedFolder
from gan_lab.data.shapes import SHAPES, Shapes, ShapesPaired, render_shapes, sample_shapes
from gan_lab.data.toy2d import Toy2D
from gan_lab.data.vision import CIFAR10, MNIST, FashionMNIST
from gan_lab.errors import DataNotFoundError

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "dataset"


def real_data(*parts: str) -> Path:
    """A path in the real-data folder ($GAN_LAB_DATA, else shared/data beside the repo), or skip."""
    root = Path(os.environ.get("GAN_LAB_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    path = root.resolve().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set GAN_LAB_DATA to the folder of shared/data/README.md)")
    return path


# --- shapes -----------------------------------------------------------------------------------

def test_shapes_are_deterministic_in_the_seed():
    a, b, c = Shapes(count=256, seed=0), Shapes(count=256, seed=0), Shapes(count=256, seed=1)
    assert torch.equal(a.tensors["real"], b.tensors["real"])
    assert torch.equal(a.tensors["label"], b.tensors["label"])
    assert not torch.equal(a.tensors["real"], c.tensors["real"])


def test_shapes_tensors_and_labels():
    ds = Shapes(image_size=48, count=600, num_classes=6, seed=3)
    real, label = ds.tensors["real"], ds.tensors["label"]
    assert (ds.kind, ds.image_size, ds.channels, ds.num_classes, len(ds)) == ("image", 48, 3, 6, 600)
    assert real.shape == (600, 3, 48, 48) and real.dtype == torch.uint8
    assert label.dtype == torch.int64 and set(label.tolist()) == set(range(6))
    # One bright, saturated shape on black: the background corner is 0, the shape reaches its colour.
    assert real[:, :, 0, 0].max() == 0
    assert real.amax((1, 2, 3)).min() >= 0.8 * 255 - 1
    lit = (real.amax(1) > 0).float().mean((1, 2))
    assert lit.min() > 0.05 and lit.mean() > 0.2

    gray = Shapes(channels=1, count=8)
    assert gray.tensors["real"].shape == (8, 1, 32, 32)
    batch = gray.batch(torch.arange(4))
    assert batch["real"].min() == -1.0 and batch["real"].max() <= 1.0


def test_shape_areas_match_their_class():
    # The covered area over (radius in pixels)^2 is a per-class constant: this ties each label to its geometry.
    unit_area = {"circle": math.pi * 0.9 ** 2, "square": 1.36 ** 2, "triangle": 3 * math.sqrt(3) / 4,
                 "cross": 2 * 1.8 * 0.6 - 0.6 ** 2, "ring": math.pi * (0.9 ** 2 - 0.5 ** 2),
                 "star": 3 * math.sqrt(3) / 4 * 4 / 3}
    size = 96
    params = sample_shapes(60, len(SHAPES), seed=5)
    images, _ = render_shapes(params, size, channels=1)
    coverage = images[:, 0].double().sum((1, 2)) / (255 * params["colour"].amax(1).double())
    ratio = coverage / (params["radius"].double() * size / 2) ** 2
    expected = torch.tensor([unit_area[SHAPES[c]] for c in params["label"].tolist()], dtype=torch.float64)
    assert torch.allclose(ratio, expected, rtol=0.03)


def test_shapes_paired_outline_lies_inside_the_filled_target():
    ds = ShapesPaired(count=128, seed=2)
    inp, tgt = ds.tensors["input"], ds.tensors["target"]
    assert ds.kind == "paired" and inp.shape == tgt.shape == (128, 3, 32, 32)
    assert bool((inp <= tgt).all())                           # same colour, stroke inside the shape
    # A thin stroke: a fraction of the filled shape's ink in every image, never all of it.
    ink = inp.float().sum((1, 2, 3)) / tgt.float().sum((1, 2, 3))
    assert bool((ink > 0.1).all()) and bool((ink < 0.7).all()) and ink.mean() < 0.45
    # Same generator as Shapes: the targets are that dataset's images.
    assert torch.equal(tgt, Shapes(count=128, num_classes=len(SHAPES), seed=2).tensors["real"])


def test_scale_and_tilt_set_the_extent_of_an_upright_square():
    # A square's side is 0.68 of its unit disk (shapes._SDF), so scale s covers 0.68 * s of the image.
    ds = Shapes(image_size=64, channels=1, count=16, num_classes=2, scale=(0.75, 0.75), max_tilt=0, seed=4)
    square = ds.tensors["real"][ds.tensors["label"] == 1][0, 0] > 127
    rows, cols = square.any(1).sum().item(), square.any(0).sum().item()
    assert rows == pytest.approx(0.68 * 0.75 * 64, abs=1) and cols == pytest.approx(0.68 * 0.75 * 64, abs=1)
    assert square.sum().item() == pytest.approx(rows * cols, rel=0.05)  # upright: fills its bounding box


def test_invalid_arguments_name_the_key():
    with pytest.raises(ValueError, match=r"dataset\.image_size must be a positive integer, got 0"):
        Shapes(image_size=0)
    with pytest.raises(ValueError, match=r"dataset\.channels"):
        Shapes(channels=2)
    with pytest.raises(ValueError, match=r"dataset\.num_classes"):
        Shapes(num_classes=7)
    with pytest.raises(ValueError, match=r"dataset\.scale must be \[low, high\]"):
        Shapes(scale=(0.9, 0.5))
    with pytest.raises(ValueError, match=r"dataset\.mixture"):
        Toy2D(mixture="spiral")
    with pytest.raises(ValueError, match=r"dataset\.dim"):
        Toy2D(dim=3)
    with pytest.raises(ValueError, match=r"dataset\.download"):
        MNIST(root="unused", download="no")


# --- toy 2-D mixtures ---------------------------------------------------------------------------

@pytest.mark.parametrize("mixture, modes, std", [("ring", 8, 0.02), ("grid", 25, 0.05)])
def test_toy2d_samples_sit_on_their_modes(mixture, modes, std):
    ds = Toy2D(mixture=mixture, count=20000, seed=1)
    real, label = ds.tensors["real"], ds.tensors["label"]
    assert (ds.kind, ds.dim, ds.num_classes, ds.std) == ("points", 2, modes, std)
    assert ds.modes.shape == (modes, 2) and real.shape == (20000, 2) and real.dtype == torch.float32
    if mixture == "ring":
        assert torch.allclose(ds.modes.norm(dim=1), torch.full((8,), 2.0))
    else:
        assert sorted(set(ds.modes.flatten().tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    for k in range(modes):
        points = real[label == k]
        assert len(points) > 0.5 * len(real) / modes
        assert torch.allclose(points.mean(0), ds.modes[k], atol=4 * std / math.sqrt(len(points)))
    assert abs((real - ds.modes[label]).std().item() / std - 1) < 0.05
    assert torch.equal(real, Toy2D(mixture=mixture, count=20000, seed=1).tensors["real"])


# --- resumable batching -------------------------------------------------------------------------

def test_batch_sampler_is_a_pure_function_of_the_step():
    a, b = BatchSampler(105, 10, seed=7), BatchSampler(105, 10, seed=7)
    forward = [a.indices(k) for k in range(25)]
    backward = [b.indices(k) for k in reversed(range(25))][::-1]
    assert all(torch.equal(x, y) for x, y in zip(forward, backward))
    epoch0 = torch.cat(forward[:10])
    assert len(set(epoch0.tolist())) == 100 and epoch0.max() < 105   # no repeats, last partial batch dropped
    assert not torch.equal(epoch0, torch.cat(forward[10:20]))         # a fresh permutation each epoch
    full = BatchSampler(100, 10, seed=0)
    assert sorted(torch.cat([full.indices(k) for k in range(10)]).tolist()) == list(range(100))
    assert not torch.equal(full.indices(0), BatchSampler(100, 10, seed=1).indices(0))


# --- configs ------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_config_keys_are_the_constructor_arguments(path):
    cfg = OmegaConf.load(path)
    cls = get_class(cfg._target_)
    params = inspect.signature(cls.__init__).parameters
    # A defaults entry `/dataset@base: shapes` supplies the argument `base` (a sub-config, like `_recursive_: false`).
    entries = [name for entry in cfg.get("defaults", []) for name in (entry if isinstance(entry, str) else entry.keys())]
    supplied = {name.split("@", 1)[1] for name in entries if "@" in name}
    keys = set(cfg) - {"_target_", "_recursive_", "defaults"} | supplied
    assert keys == set(params) - {"self"}
    for key in keys - supplied:
        value = OmegaConf.to_container(cfg, resolve=False)[key]
        if isinstance(value, dict):  # a block of settings (shapes_text's text_encoder): no scalar default
            continue
        if params[key].default is not inspect.Parameter.empty and not str(value).startswith(("???", "${")):
            default = params[key].default
            assert value == (list(default) if isinstance(default, tuple) else default), f"{path.name}: {key}"
    if cls.kind in ("image", "paired"):
        assert {"image_size", "channels"} <= keys
    if cls.kind == "image":
        assert "num_classes" in keys


def test_shapes_instantiate_from_config():
    cfg = OmegaConf.load(CONFIGS / "shapes.yaml")
    cfg.count = 64
    ds = instantiate(cfg)
    assert isinstance(ds, Shapes) and ds.tensors["real"].shape == (64, cfg.channels, cfg.image_size, cfg.image_size)


# --- torchvision sets ---------------------------------------------------------------------------

def test_mnist_from_the_real_data_folder():
    root = real_data("MNIST", "raw", "train-images-idx3-ubyte").parents[2]
    train = MNIST(root=str(root))
    assert len(train) == 60000 and train.tensors["label"][0] == 5
    assert train.tensors["real"].shape == (60000, 1, 32, 32) and train.tensors["real"].dtype == torch.uint8
    assert train.num_classes == 10 and set(train.tensors["label"].tolist()) == set(range(10))
    test = MNIST(root=str(root), split="test", channels=3, image_size=28)
    assert len(test) == 10000 and test.tensors["label"][0] == 7
    rgb = test.tensors["real"]
    assert rgb.shape == (10000, 3, 28, 28) and torch.equal(rgb[:, 0], rgb[:, 2])


def test_fashion_mnist_from_the_real_data_folder():
    root = real_data("FashionMNIST", "raw", "train-images-idx3-ubyte").parents[2]
    train = FashionMNIST(root=str(root))
    assert len(train) == 60000 and train.tensors["label"][0] == 9
    assert train.tensors["real"].shape == (60000, 1, 32, 32)


@pytest.mark.parametrize("cls, folder", [(MNIST, "MNIST/raw"), (FashionMNIST, "FashionMNIST/raw"),
                                         (CIFAR10, "cifar-10-batches-py")])
def test_missing_torchvision_set_names_where_it_looked(cls, folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                  # a relative root is made absolute once
    with pytest.raises(DataNotFoundError) as err:
        cls(root="data", download=False)
    message = str(err.value)
    assert str(tmp_path / "data" / folder) in message and "download=true" in message


def test_partial_cifar10_is_a_clear_error():
    root = real_data("cifar-10-batches-py").parent
    with pytest.raises(DataNotFoundError, match="cifar-10-batches-py"):
        CIFAR10(root=str(root), split="test")


# --- folders ------------------------------------------------------------------------------------

def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


def test_image_folder_center_crops_and_labels_subfolders(tmp_path):
    wide = np.zeros((40, 60, 3))
    wide[:, :10] = wide[:, 50:] = (255, 0, 0)    # red margins that the center crop removes
    wide[:, 10:50] = (0, 255, 0)
    for name in ("b/1.png", "b/2.jpg", "a/x/3.png"):
        _save(tmp_path / name, wide)
    ds = ImageFolder(path=str(tmp_path), image_size=20)
    assert ds.class_names == ["a", "b"] and ds.num_classes == 2
    assert ds.tensors["label"].tolist() == [0, 1, 1]   # sorted paths: a/x/3.png, b/1.png, b/2.jpg
    png = ds.tensors["real"][0].int()
    assert png.shape == (3, 20, 20) and png[0].max() == 0 and png[1].min() == 255
    with pytest.raises(ValueError, match=r"dataset\.num_classes"):
        ImageFolder(path=str(tmp_path), image_size=20, num_classes=3)

    flat = ImageFolder(path=str(tmp_path / "b"), image_size=8, channels=1, max_images=1)
    assert flat.num_classes is None and "label" not in flat.tensors
    assert flat.tensors["real"].shape == (1, 1, 8, 8)


def test_missing_folders_name_where_they_looked(tmp_path):
    with pytest.raises(DataNotFoundError, match="looked in") as err:
        ImageFolder(path=str(tmp_path / "celeba"))
    assert str(tmp_path / "celeba") in str(err.value)
    with pytest.raises(DataNotFoundError) as err:
        PairedFolder(path=str(tmp_path), split="train")
    assert str(tmp_path / "train") in str(err.value)


def _coordinate_pairs(root: Path, count: int, size: int) -> None:
    """A|B files whose halves are identical and encode each pixel's column (R) and row (G)."""
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    half = np.stack([cols * 6, rows * 6, np.zeros_like(rows)], -1)
    for i in range(count):
        _save(root / "train" / f"{i}.png", np.concatenate([half, half], 1))


def test_paired_jitter_crops_and_flips_input_and_target_alike(tmp_path):
    _coordinate_pairs(tmp_path, count=4, size=40)
    ds = PairedFolder(path=str(tmp_path), image_size=32, load_size=40)
    assert (ds.image_size, ds.load_size, ds.channels) == (32, 40, 3)
    batch = ds.batch(torch.arange(4).repeat(8), augment=torch.Generator().manual_seed(0))
    assert torch.equal(batch["input"], batch["target"])
    pixels = ((batch["input"] + 1) * 127.5).round().long() // 6
    cols, rows = pixels[:, 0, 0, :], pixels[:, 1, :, 0]
    steps = torch.arange(32)
    assert bool(((rows - rows[:, :1]) == steps).all()) and bool((rows[:, 0] <= 8).all())
    flipped = cols[:, 0] > cols[:, -1]
    start = torch.where(flipped, cols[:, -1], cols[:, 0])
    assert bool((torch.where(flipped[:, None], cols.flip(1), cols) - start[:, None] == steps).all())
    assert 0 < flipped.sum() < len(flipped) and len(set(rows[:, 0].tolist())) > 1

    again = ds.batch(torch.arange(4).repeat(8), augment=torch.Generator().manual_seed(0))
    assert torch.equal(again["input"], batch["input"])  # the generator alone drives it

    # batch k of a run is a function of (k, batch size, seed): other draws from the global RNG (a penalty,
    # instance noise) cannot change the crops
    first = ds.batch_at(5, 2, seed=3)
    torch.rand(100)
    assert torch.equal(ds.batch_at(5, 2, seed=3)["input"], first["input"])
    assert not torch.equal(ds.batch_at(6, 2, seed=3)["input"], first["input"])
    centre = ds.examples(2)["input"]  # sample grids and evaluation: the centre crop, unflipped
    assert centre.shape == (2, 3, 32, 32) and torch.equal(centre, ds.tensors["input"][:2, :, 4:36, 4:36] / 127.5 - 1)

    plain = PairedFolder(path=str(tmp_path), image_size=40, load_size=40, flip=False)
    state = torch.get_rng_state()
    out = plain.batch(torch.arange(4), augment=torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), state)                                    # no randomness at all
    assert torch.equal(out["input"], plain.tensors["input"].float() / 127.5 - 1)


def test_facades_from_the_real_data_folder():
    root = real_data("facades", "val").parent
    train = PairedFolder(path=str(root), split="train", direction="BtoA")
    val = PairedFolder(path=str(root), split="val", direction="AtoB")
    assert len(train) == 100 and len(val) == 100
    assert train.tensors["input"].shape == (100, 3, 286, 286)
    batch = train.batch(torch.arange(6))
    assert batch["input"].shape == batch["target"].shape == (6, 3, 256, 256)
    assert -1.0 <= batch["input"].min() and batch["input"].max() <= 1.0
    swapped = PairedFolder(path=str(root), split="val", direction="BtoA")
    assert torch.equal(swapped.tensors["input"], val.tensors["target"])
    # The label map (B) is flat colour: far fewer distinct colours than the photo (A).
    distinct = [len(torch.unique(t[0].flatten(1), dim=1).T) for t in (val.tensors["input"], val.tensors["target"])]
    assert distinct[0] > distinct[1]
