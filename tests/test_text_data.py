"""shapes_text: captions true of their images, the held-out split, batching, embed() and its errors."""

from __future__ import annotations

import pytest
import torch

from gan_lab.data.text import (ATTRIBUTE_NAMES, COLOURS, HELDOUT_TEMPLATES, HUE_EDGES, POSITIONS, SIZES,
                               TRAIN_TEMPLATES, VOCABULARY, ShapesText, colour_index, hue_degrees,
                               parse_attributes, tokenize)
from gan_lab.errors import ConfigError


@pytest.fixture(scope="module")
def data():
    return ShapesText(image_size=32, count=512, seed=3, encoder="oracle")


def _words(ids) -> str:
    return " ".join(VOCABULARY[i] for i in ids if i)


def test_batch_contract(data):
    batch = data.batch_at(0, 16, seed=1)
    assert set(batch) == {"real", "text", "label"}
    assert batch["real"].shape == (16, 3, 32, 32) and batch["real"].dtype == torch.float32
    assert -1 <= batch["real"].min() and batch["real"].max() <= 1
    assert batch["text"].shape == (16, data.text_dim) and batch["text"].dtype == torch.float32
    assert batch["label"].dtype == torch.int64 and data.kind == "text" and data.num_classes == 6


def test_batches_are_a_pure_function_of_seed_and_step(data):
    again = ShapesText(image_size=32, count=512, seed=3, encoder="oracle")
    a, b = data.batch_at(5, 16, seed=1), again.batch_at(5, 16, seed=1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = data.batch_at(6, 16, seed=1)
    assert not torch.equal(a["text"], other["text"])


def test_text_is_the_mean_of_captions_per_example_distinct_captions(data):
    # A trained-like encoder: give each caption slot its own embedding so the mean says which were picked.
    index = torch.arange(8)
    emb = data.tensors["embeddings"][index]                      # (8, K, D)
    batch = data.batch(index, augment=torch.Generator().manual_seed(0))
    # Which subset of 4 of the K captions reproduces the mean? (brute force over subsets)
    from itertools import combinations
    for i in range(8):
        hits = [c for c in combinations(range(emb.shape[1]), 4)
                if torch.allclose(emb[i, list(c)].mean(0), batch["text"][i], atol=1e-6)]
        assert hits, i
    first = data.batch(index)  # no augment generator: the first captions
    assert torch.allclose(first["text"], emb[:, :4].mean(1))
    one = ShapesText(image_size=16, count=64, seed=3, captions_per_example=1, encoder="oracle")
    assert torch.allclose(one.examples(8)["text"], one.tensors["embeddings"][:8, 0])


def test_every_caption_says_its_images_attributes(data):
    tokens = data.captions.flatten(0, 1)
    assert torch.equal(parse_attributes(tokens), data.attributes.repeat_interleave(len(TRAIN_TEMPLATES), 0))
    assert "circle" in _words(data.captions[(data.attributes[:, 0] == 0).nonzero()[0, 0], 0])


def test_colour_and_position_words_are_true_of_the_pixels(data):
    images = data.tensors["real"].float()                          # uint8 values as float
    mask = images.amax(1) > 200                                    # fully covered pixels of the shape
    for i in range(len(images)):
        pixels = images[i].flatten(1)[:, mask[i].flatten()]
        hue = float(hue_degrees(pixels.mean(1, keepdim=True).T))
        word = int(data.attributes[i, 1])
        low, high = HUE_EDGES[word - 1] if word else HUE_EDGES[-1] - 360, HUE_EDGES[word]
        hue = hue - 360 if word == 0 and hue >= HUE_EDGES[-1] else hue
        assert low - 1 <= hue <= high + 1, (i, COLOURS[word], hue)
        # The pixel centroid (fill-weighted) in [-1, 1] with y up, against the thirds of the image.
        weight = images[i].amax(0)
        t = (torch.arange(32) + 0.5) / 16 - 1
        x = float((weight.sum(0) * t).sum() / weight.sum())
        y = float(-(weight.sum(1) * t).sum() / weight.sum())
        position = POSITIONS[int(data.attributes[i, 3])]
        assert ("left" in position) == (x < -1 / 3 + 0.05) or abs(x + 1 / 3) < 0.05, (i, position, x)
        assert ("right" in position) == (x > 1 / 3 - 0.05) or abs(x - 1 / 3) < 0.05, (i, position, x)
        assert ("top" in position) == (y > 1 / 3 - 0.05) or abs(y - 1 / 3) < 0.05, (i, position, y)
        assert ("bottom" in position) == (y < -1 / 3 + 0.05) or abs(y + 1 / 3) < 0.05, (i, position, y)


def test_size_words_are_tertiles_of_the_scale(data):
    # Shape area grows with the size word: the mean covered area is ordered small < medium < large.
    area = (data.tensors["real"].amax(1) > 127).flatten(1).sum(1).float()
    shape = data.attributes[:, 0]
    for s in range(6):
        means = [area[(shape == s) & (data.attributes[:, 2] == z)].mean() for z in range(len(SIZES))]
        assert means[0] < means[1] < means[2], (s, means)


def test_colour_bins():
    rgb = torch.tensor([[1.0, 0, 0], [1, 0.5, 0], [1, 1, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1], [0.5, 0, 1],
                        [1, 0, 1], [1, 0, 0.1]])
    assert [COLOURS[i] for i in colour_index(rgb)] == [*COLOURS, "red"]


def test_heldout_captions_are_new_phrasings_of_training_words(data):
    train = {_words(ids) for ids in data.captions.flatten(0, 1).tolist()}
    c = data.eval_conditions(64)
    assert set(c) >= {"text", "captions", "attributes", "attribute_names", "real"}
    assert not train & set(c["captions"])
    assert not set(HELDOUT_TEMPLATES) & set(TRAIN_TEMPLATES)
    train_words = {w for ids in data.captions.flatten(0, 1).tolist() for w in _words(ids).split()}
    assert {w for s in c["captions"] for w in s.split()} <= train_words
    assert c["text"].shape == (64, data.text_dim) and c["attributes"].shape == (64, 4)
    assert c["attribute_names"] == ATTRIBUTE_NAMES == ["shape", "colour", "size", "position"]
    assert torch.equal(parse_attributes(tokenize(c["captions"])), c["attributes"])
    # The held-out images are other images than the training ones.
    assert not any(torch.equal(c["real"][0], x) for x in data.examples(512)["real"])
    with pytest.raises(ConfigError, match="heldout_count"):
        data.eval_conditions(data.heldout_count + 1)


def test_embed_encodes_new_sentences_and_names_unknown_words(data):
    a, b = data.embed(["a large blue star", "a large blue star on the left"])
    assert a.shape == (data.text_dim,) and not torch.equal(a, b)
    same = data.embed(["the blue star is large"])[0]
    assert torch.allclose(a, same)  # the oracle sees attributes, not word order
    with pytest.raises(ConfigError, match="'purplish'.*vocabulary.*circle"):
        data.embed(["a purplish circle"])


def test_64_px_and_bad_values():
    assert ShapesText(image_size=64, count=16, encoder="oracle").examples(4)["real"].shape == (4, 3, 64, 64)
    with pytest.raises(ValueError, match="captions_per_example"):
        ShapesText(count=16, captions_per_example=7, encoder="oracle")
    with pytest.raises(ValueError, match="dataset.encoder"):
        ShapesText(count=16, encoder="bert")


# -- StackGAN's birds/flowers layout, faked in tmp_path --

def _fake_stackgan(root, name: str, count: int = 6, dim: int = 16):
    """The files StackGAN's loaders read, in their formats (protocol-2 pickles, JPEGs)."""
    import pickle

    import numpy as np
    from PIL import Image

    base = root / name
    keys = [f"{'%03d' % (1 + i % 3)}.Class_{i % 3}/Bird_{i}" if name == "birds" else f"jpg/image_{i + 1:05d}"
            for i in range(count)]
    emb = np.random.default_rng(0).standard_normal((count, 10, dim)).astype(np.float32)
    for split in ("train", "test"):
        (base / split).mkdir(parents=True)
        for fname, obj in (("char-CNN-RNN-embeddings.pickle", emb), ("filenames.pickle", keys),
                           ("class_info.pickle", [1 + i % 3 for i in range(count)])):
            (base / split / fname).write_bytes(pickle.dumps(obj, protocol=2))
    images = base / "CUB_200_2011" / "images" if name == "birds" else base
    for i, key in enumerate(keys):
        (images / key).parent.mkdir(parents=True, exist_ok=True)
        pixels = np.zeros((40, 60, 3), dtype=np.uint8)
        pixels[10:30, 20:40] = (200, 30 * i, 10)  # the "bird": the box below
        Image.fromarray(pixels).save(images / f"{key}.jpg", quality=95)
    if name == "birds":
        cub = base / "CUB_200_2011"
        (cub / "images.txt").write_text("".join(f"{i + 1} {k}.jpg\n" for i, k in enumerate(keys)))
        (cub / "bounding_boxes.txt").write_text("".join(f"{i + 1} 20.0 10.0 20.0 20.0\n" for i in range(count)))
    return emb, keys


@pytest.mark.parametrize("name", ["birds", "flowers"])
def test_stackgan_layout(tmp_path, name):
    from gan_lab.data.text_embeddings import StackGANText

    emb, keys = _fake_stackgan(tmp_path, name)
    with pytest.raises(ConfigError, match="dataset.text_dim=1024.*16-d"):
        StackGANText(tmp_path, name=name, image_size=16, load_size=20)  # the default promises 1024
    data = StackGANText(tmp_path, name=name, image_size=16, load_size=20, captions_per_example=2, text_dim=16)
    assert data.kind == "text" and data.text_dim == 16 and len(data) == 6 and data.num_classes == 3
    assert data.filenames == keys and data.class_ids == [1, 2, 3]
    batch = data.batch_at(0, 4, seed=0)
    assert batch["real"].shape == (4, 3, 16, 16) and batch["text"].shape == (4, 16)
    assert torch.equal(data.examples(2)["text"], torch.from_numpy(emb[:2, :2].mean(1)))
    assert all(torch.equal(batch[k], data.batch_at(0, 4, seed=0)[k]) for k in batch)
    c = data.eval_conditions(3)
    assert c["attributes"] is None and c["captions"] == [f"{k} #0" for k in keys[:3]]
    assert torch.equal(c["text"], torch.from_numpy(emb[:3, 0]))
    with pytest.raises(ConfigError, match="precomputed"):
        data.embed(["a red bird"])
    if name == "birds":  # cropped to 1.5x the box around the bird: the bird fills the middle, no black border
        centre = data.tensors["real"][0, 0, 8:12, 8:12].float()
        assert centre.min() > 150
        assert data.tensors["real"][0, 0, 0, 0] < 40  # the corner is background around the box


def test_stackgan_missing_files_say_what_to_get(tmp_path):
    from gan_lab.data.text_embeddings import StackGANText
    from gan_lab.errors import DataNotFoundError

    with pytest.raises(DataNotFoundError) as err:
        StackGANText(tmp_path, name="birds")
    message = str(err.value)
    assert "\n" not in message
    assert str(tmp_path / "birds" / "train" / "char-CNN-RNN-embeddings.pickle") in message
    assert "0B3y_msrWZaXLT1BZdVdycDY5TEE" in message and "CUB-200-2011" in message and "dataset.root" in message
