"""Unpaired datasets (CycleGAN/DiscoGAN/DualGAN): pure batching with independent domain streams,
per-domain jitter inside the loaded image, un-augmented examples, hidden pairs, splits, errors, real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from gan_lab.data.shapes import ShapesPaired
from gan_lab.data.unpaired import ShapesUnpaired, UnpairedFolder, UnpairedFromPairs
from gan_lab.errors import DataNotFoundError
from tests.conftest import require_data

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "dataset"
LOAD, CROP = 40, 32


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


def _coordinate_folder(root: Path, sizes: dict[str, int]) -> Path:
    """CycleGAN folders of LOAD px PNGs whose pixels encode their column (R) and row (G); blue = file number."""
    rows, cols = np.meshgrid(np.arange(LOAD), np.arange(LOAD), indexing="ij")
    for folder, count in sizes.items():
        for i in range(count):
            _save(root / folder / f"{i:02d}.png", np.stack([cols * 6, rows * 6, np.full_like(rows, 10 * i)], -1))
    return root


@pytest.fixture
def folder(tmp_path) -> UnpairedFolder:
    root = _coordinate_folder(tmp_path, {"trainA": 6, "trainB": 10, "testA": 3, "testB": 2})
    return UnpairedFolder(path=str(root), image_size=CROP, load_size=LOAD)


def _ids(images: torch.Tensor) -> list[int]:
    """The file number in the blue channel of each image of a [-1, 1] batch."""
    return (((images[:, 2, 0, 0] + 1) * 127.5).round().long() // 10).tolist()


def _is_partner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per sample: the outline lies inside the fill (same shape, same colour)."""
    return (a <= b + 1e-6).flatten(1).all(1)


# --- batching -----------------------------------------------------------------------------------

def test_batch_at_is_a_pure_function_of_k(folder, tmp_path):
    again = UnpairedFolder(path=str(tmp_path), image_size=CROP, load_size=LOAD)
    forward = [folder.batch_at(k, 2, seed=5) for k in range(8)]
    torch.manual_seed(123)                                          # the global RNG must not matter
    backward = [again.batch_at(k, 2, seed=5) for k in reversed(range(8))][::-1]
    for x, y in zip(forward, backward):
        assert set(x) == {"A", "B"} and all(torch.equal(x[d], y[d]) for d in x)
    assert not torch.equal(forward[0]["A"], forward[1]["A"]) and not torch.equal(forward[0]["B"], forward[1]["B"])
    assert not torch.equal(forward[0]["A"], folder.batch_at(0, 2, seed=6)["A"])


def test_domains_have_their_own_sizes_and_epochs(folder):
    assert folder.kind == "unpaired" and folder.paired is False
    assert (len(folder.tensors["A"]), len(folder.tensors["B"]), len(folder)) == (6, 10, 10)
    assert folder.tensors["A"].dtype == torch.uint8 and folder.tensors["A"].shape == (6, 3, LOAD, LOAD)
    seq = [folder.indices(k, 2, seed=1) for k in range(15)]
    a, b = torch.cat([s["A"] for s in seq]), torch.cat([s["B"] for s in seq])
    # Every image of a domain once per epoch of that domain (A: 3 batches, B: 5), a fresh order each epoch.
    for epoch in a.view(5, 6):
        assert sorted(epoch.tolist()) == list(range(6))
    for epoch in b.view(3, 10):
        assert sorted(epoch.tolist()) == list(range(10))
    assert len({tuple(e.tolist()) for e in a.view(5, 6)}) > 1
    # The images carry their file number: batch_at serves exactly these indices.
    batch = folder.batch_at(4, 2, seed=1)
    assert _ids(batch["A"]) == seq[4]["A"].tolist() and _ids(batch["B"]) == seq[4]["B"].tolist()


def test_b_is_drawn_independently_of_a():
    ds = ShapesUnpaired(count=256, seed=3)
    seq = [ds.indices(k, 16, seed=0) for k in range(64)]             # 4 epochs of both domains
    a, b = torch.cat([s["A"] for s in seq]), torch.cat([s["B"] for s in seq])
    assert (a == b).float().mean() < 0.05                            # ~1/256 by chance, 1 if B followed A
    # B is not a function of A: the partner given to each A image changes from epoch to epoch.
    partner = torch.empty(4, 256, dtype=torch.long)
    for e in range(4):
        partner[e, a[e * 256:(e + 1) * 256]] = b[e * 256:(e + 1) * 256]
    assert (partner[0] == partner[1]).float().mean() < 0.05
    # In the images: a batch's A[i] and B[i] are rarely true partners, but examples() are.
    batch = ds.batch_at(5, 64, seed=0)
    assert _is_partner(batch["A"], batch["B"]).float().mean() < 0.1
    fixed = ds.examples(64)
    assert bool(_is_partner(fixed["A"], fixed["B"]).all())


def test_batch_size_must_fit_the_smaller_domain(folder):
    with pytest.raises(ValueError, match=r"train\.batch_size=7 is larger than domain A"):
        folder.batch_at(0, 7, seed=0)


# --- jitter and examples ------------------------------------------------------------------------

def test_crops_and_flips_stay_inside_the_loaded_image(folder):
    steps = torch.arange(CROP)
    flipped, starts, independent = [], [], []
    for k in range(10):
        batch = folder.batch_at(k, 6, seed=2)
        for domain in ("A", "B"):
            pixels = ((batch[domain] + 1) * 127.5).round().long()
            cols, rows = pixels[:, 0, 0, :] // 6, pixels[:, 1, :, 0] // 6
            assert bool(((rows - rows[:, :1]) == steps).all())           # a contiguous window of rows
            flip = cols[:, 0] > cols[:, -1]
            start = torch.where(flip, cols[:, -1], cols[:, 0])
            assert bool((torch.where(flip[:, None], cols.flip(1), cols) - start[:, None] == steps).all())
            assert bool((start <= LOAD - CROP).all()) and bool((rows[:, 0] <= LOAD - CROP).all())
            flipped += flip.tolist()
            starts += rows[:, 0].tolist()
        independent.append(not torch.equal(batch["A"][:, :2], batch["B"][:6, :2]))
    assert 0.3 < np.mean(flipped) < 0.7 and len(set(starts)) == LOAD - CROP + 1
    assert all(independent)                                          # A and B are cropped on their own


def test_examples_are_deterministic_centre_crops(folder):
    first, second = folder.examples(4), folder.examples(4)
    assert all(torch.equal(first[d], second[d]) for d in ("A", "B"))
    offset = (LOAD - CROP) // 2
    for d in ("A", "B"):
        centre = folder.tensors[d][:4, :, offset:offset + CROP, offset:offset + CROP].float() / 127.5 - 1
        assert first[d].shape == (4, 3, CROP, CROP) and torch.allclose(first[d], centre)
    assert [len(v) for v in folder.examples(8).values()] == [6, 8]    # A has only 6 images
    assert torch.equal(folder.batch(torch.arange(4))["B"], first["B"])


def test_test_split_reads_the_test_folders(folder, tmp_path):
    test = UnpairedFolder(path=str(tmp_path), split="test", image_size=CROP, load_size=LOAD)
    assert (len(test.tensors["A"]), len(test.tensors["B"]), test.split) == (3, 2, "test")


def test_grayscale_files_become_the_requested_channels(tmp_path):
    gray = np.tile(np.arange(0, 240, 6)[None], (LOAD, 1))
    for name in ("trainA/g.png", "trainA/g.jpg", "trainB/g.png"):
        _save(tmp_path / name, gray)
    ds = UnpairedFolder(path=str(tmp_path), image_size=CROP, load_size=LOAD, flip=False)
    a = ds.tensors["A"]
    assert a.shape == (2, 3, LOAD, LOAD) and torch.equal(a[:, 0], a[:, 1]) and torch.equal(a[:, 0], a[:, 2])
    one = UnpairedFolder(path=str(tmp_path), image_size=CROP, load_size=LOAD, channels=1)
    assert one.channels == 1 and one.tensors["B"].shape == (1, 1, LOAD, LOAD)


# --- shapes ---------------------------------------------------------------------------------------

def test_shapes_hidden_pairs_align():
    ds = ShapesUnpaired(count=128, seed=2)
    a, b = ds.tensors["A"], ds.tensors["B"]
    assert (ds.kind, ds.paired, ds.image_size, ds.channels, len(ds)) == ("unpaired", True, 32, 3, 128)
    reference = ShapesPaired(count=128, seed=2)
    assert torch.equal(a, reference.tensors["input"]) and torch.equal(b, reference.tensors["target"])
    ink, fill = a.amax(1) > 0, b.amax(1) > 0
    assert bool((ink <= fill).all()) and bool((a <= b).all())          # the outline lies in its own shape
    assert bool((ink.sum((1, 2)) > 0).all())
    # A shifted partner is almost never contained: the pairing is a property of the index.
    assert (a <= b.roll(1, 0)).flatten(1).all(1).float().mean() < 0.05


def test_shapes_test_split_holds_unseen_shapes():
    train, test = ShapesUnpaired(count=64, seed=0), ShapesUnpaired(count=64, seed=0, split="test")
    assert test.split == "test" and test.paired
    assert not torch.equal(train.tensors["B"], test.tensors["B"])
    same = (train.tensors["B"][:, None] == test.tensors["B"][None]).flatten(2).all(2)
    assert not bool(same.any())                                      # no test image is a train image
    assert bool(_is_partner(test.examples(64)["A"], test.examples(64)["B"]).all())


# --- errors ---------------------------------------------------------------------------------------

def test_missing_folder_names_it(tmp_path):
    _coordinate_folder(tmp_path, {"trainA": 2})
    with pytest.raises(DataNotFoundError, match="No unpaired images in trainB:") as err:
        UnpairedFolder(path=str(tmp_path), image_size=CROP, load_size=LOAD)
    message = str(err.value)
    assert str(tmp_path / "trainA") in message and str(tmp_path / "trainB") in message
    assert "download_cyclegan_dataset.sh summer2winter_yosemite" in message
    with pytest.raises(DataNotFoundError, match="testA and testB"):
        UnpairedFolder(path=str(tmp_path), split="test")
    with pytest.raises(DataNotFoundError, match=str(tmp_path / "train")):
        UnpairedFromPairs(path=str(tmp_path))


@pytest.mark.parametrize("kwargs, key", [
    ({"image_size": 80, "load_size": 72}, r"dataset\.load_size \(72\) must be >= dataset\.image_size"),
    ({"image_size": 0}, r"dataset\.image_size"),
    ({"flip": "yes"}, r"dataset\.flip"),
    ({"channels": 2}, r"dataset\.channels"),
    ({"split": "val"}, r"dataset\.split"),
])
def test_invalid_arguments_name_the_key(tmp_path, kwargs, key):
    with pytest.raises(ValueError, match=key):
        UnpairedFolder(path=str(tmp_path), **kwargs)


def test_shapes_invalid_split_and_seed_name_the_key():
    with pytest.raises(ValueError, match=r"dataset\.split"):
        ShapesUnpaired(count=8, split="val")
    with pytest.raises(ValueError, match=r"dataset\.seed must be below 2\*\*31"):
        ShapesUnpaired(count=8, seed=2 ** 31)                       # its train set would be seed 0's test set


# --- configs and real data ------------------------------------------------------------------------

@pytest.mark.parametrize("name, data", [("shapes_unpaired", None), ("unpaired_folder", "summer2winter_yosemite"),
                                        ("facades_unpaired", "facades")])
def test_configs_instantiate(name, data, monkeypatch):
    if data is not None:
        monkeypatch.setenv("GAN_LAB_DATA", str(require_data(data).parent))
    cfg = OmegaConf.load(CONFIGS / f"{name}.yaml")
    ds = instantiate(cfg)
    assert ds.kind == "unpaired" and (ds.image_size, ds.channels, ds.split) == (cfg.image_size, cfg.channels, "train")
    batch = ds.batch_at(0, 4, seed=0)
    assert {k: tuple(v.shape) for k, v in batch.items()} == {d: (4, cfg.channels, cfg.image_size, cfg.image_size)
                                                            for d in ("A", "B")}


def test_summer2winter_from_the_shared_data():
    root = require_data("summer2winter_yosemite")
    train = UnpairedFolder(path=str(root))
    assert (len(train.tensors["A"]), len(train.tensors["B"]), train.paired) == (100, 100, False)
    assert train.tensors["A"].shape == (100, 3, 72, 72) and train.tensors["B"].dtype == torch.uint8
    # Winter (B) is brighter and less saturated than summer (A).
    def saturation(x):
        return (x.amax(1) - x.amin(1)).float().mean()
    assert saturation(train.tensors["B"]) < saturation(train.tensors["A"])
    test = UnpairedFolder(path=str(root), split="test", image_size=32, load_size=32, flip=False)
    assert (len(test.tensors["A"]), len(test.tensors["B"])) == (30, 30)


def test_facades_unpaired_keeps_the_hidden_pairs():
    root = require_data("facades")
    ds = UnpairedFromPairs(path=str(root), split="val", image_size=64, load_size=64)
    assert (len(ds), ds.paired, ds.split) == (100, True, "val")
    with Image.open(root / "val" / "1.jpg") as img:            # sorted names: 1.jpg comes first
        rgb = np.asarray(img.convert("RGB"))
    half = rgb.shape[1] // 2
    for d, part in (("A", rgb[:, :half]), ("B", rgb[:, half:])):
        expected = torch.from_numpy(np.asarray(Image.fromarray(part).resize((64, 64), Image.BILINEAR)).copy())
        assert torch.equal(ds.tensors[d][0], expected.permute(2, 0, 1))
