"""Scores of the zoo's translation rows that `gan-lab eval` does not give: the untranslated input (the floor), an
all-black image, and pix2pix on shapes_unpaired's test pairs (`gan-lab eval` scores a shapes_paired run on its
training pairs, since that dataset has no test split). All use the pairs and the functions `gan-lab eval` uses for
translators (gan_lab/metrics/evaluate.py, image_quality.py): the first ``eval.num_samples`` test pairs, L1/PSNR/SSIM
of [0, 1] images averaged over pairs. Also: the published numbers the super-resolution rows are shown beside; the
text suite's floor, real-image and Stage-I rows; and the lapgan suite's networks' sizes, LAPGAN's per-level D
accuracy and the largest class share of their samples (:func:`sizes_and_levels`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gan_lab.engine import checkpoint
from gan_lab.engine.inference import inference
from gan_lab.engine.restore import restore
from gan_lab.metrics.image_quality import l1, psnr, ssim

SHAPES_UNPAIRED = Path(__file__).resolve().parents[1] / "configs" / "dataset" / "shapes_unpaired.yaml"
TEST_PAIRS = 256  # of the 2048 in shapes_unpaired's test split


def shapes_test_pairs() -> dict[str, torch.Tensor]:
    """The first TEST_PAIRS of the test split, A (outlines) and B (filled) in [-1, 1], as `gan-lab eval` takes them."""
    return instantiate(OmegaConf.merge(OmegaConf.load(SHAPES_UNPAIRED), {"split": "test"})).examples(TEST_PAIRS)


def quality(out: torch.Tensor, target: torch.Tensor, direction: str) -> dict:
    a, b = out * 0.5 + 0.5, target * 0.5 + 0.5
    return {f"{direction} {name}": float(fn(a, b).mean()) for name, fn in (("L1", l1), ("PSNR", psnr), ("SSIM", ssim))}


def untranslated(_: None) -> dict:
    """the input itself scored against its true partner on the test pairs (the floor)."""
    pairs = shapes_test_pairs()
    return {**quality(pairs["A"], pairs["B"], "AtoB"), **quality(pairs["B"], pairs["A"], "BtoA")}


def black(_: None) -> dict:
    """an all-black image scored against each test image's partner (the score of translating to nothing)."""
    pairs = shapes_test_pairs()
    dark = -torch.ones_like(pairs["A"])
    return {**quality(dark, pairs["B"], "AtoB"), **quality(dark, pairs["A"], "BtoA")}


def supervised(run_dir: Path) -> dict:
    """pix2pix (outline -> filled = AtoB) on the test pairs; its run must have trained on the training pairs."""
    run = restore(run_dir, torch.device("cpu"))
    trained = OmegaConf.to_container(run.config.dataset, resolve=True)
    unpaired = OmegaConf.to_container(OmegaConf.load(SHAPES_UNPAIRED))
    if any(trained[k] != unpaired[k] for k in ("image_size", "channels", "count", "seed", "scale", "max_tilt")):
        raise RuntimeError(f"{run_dir} was not trained on shapes_unpaired's training pairs: {trained}")
    torch.manual_seed(0)  # pix2pix samples with dropout on (its §3.3); gan-lab eval also starts from seed 0
    pairs = shapes_test_pairs()
    with inference(run.task, run.generator):
        out = torch.cat([run.task.sample(len(x), run.generator, input=x)["samples"] for x in pairs["A"].split(100)])
    return quality(out, pairs["B"], "AtoB")


# Ledig et al. 2017, Table 2, Set14 at 4x (PSNR dB / SSIM on Y), as recalled in the spec, not verified.
SET14_X4 = {"bicubic": (25.99, 0.7486), "SRResNet": (28.49, 0.8184), "SRGAN": (26.02, 0.7397)}


def paper(name: str, values: tuple[float, float]) -> Callable[[None], dict]:
    """A row of published numbers (no run)."""
    def score(_: None) -> dict:
        return {"PSNR-Y": values[0], "SSIM-Y": values[1]}

    score.__doc__ = (f"{name} in Ledig et al. 2017, Table 2 (Set14, 4x; as recalled in the spec, not verified; "
                     f"other data, networks and budget)")
    return score


# -- text-to-image (suite "text"): shapes_text caption accuracy and retrieval outside `gan-lab eval` --

SHAPES_TEXT = Path(__file__).resolve().parents[1] / "configs" / "dataset" / "shapes_text.yaml"
EVAL_DEFAULT = Path(__file__).resolve().parents[1] / "configs" / "eval" / "default.yaml"
HELDOUT_CAPTIONS = 1000  # of shapes_text's 1024 held-out captions; `gan-lab eval eval.num_samples` in the suite


def _caption_scores(data, images: torch.Tensor, text: torch.Tensor, attributes: torch.Tensor) -> dict:
    """caption_accuracy and caption_retrieval's values for [-1, 1] ``images`` drawn for ``text``, computed with
    the functions and cached networks of `gan-lab eval` (gan_lab/metrics/captions.py)."""
    from gan_lab.metrics.captions import attribute_accuracy, image_to_caption_top1, load_or_train
    from gan_lab.metrics.evaluate import to_uint8

    metric = instantiate(OmegaConf.load(EVAL_DEFAULT).available.caption_accuracy)
    clf = load_or_train(data, metric.settings, torch.device("cpu"))
    uint8 = to_uint8(images)
    values = {f"caption accuracy {k}": v for k, v in attribute_accuracy(clf.net, uint8, attributes).items()}
    embedded = data.text_encoder.net.embed_images(uint8)
    values["caption retrieval top-1"] = image_to_caption_top1(embedded, text.cpu(), attributes)
    return values


def real_captioned(image_size: int):
    """The score of the held-out real images at ``image_size`` px (the ceiling of the generated rows)."""
    def score(_: None) -> dict:
        data = instantiate(OmegaConf.merge(OmegaConf.load(SHAPES_TEXT), {"image_size": image_size}))
        conditions = data.eval_conditions(HELDOUT_CAPTIONS)
        return _caption_scores(data, conditions["real"], conditions["text"], conditions["attributes"])
    score.__doc__ = f"the {HELDOUT_CAPTIONS} held-out real images of shapes_text at {image_size} px, with their captions"
    return score


def most_frequent_guess(_: None) -> dict:
    """a constant guess of each attribute's most frequent value among the held-out captions (the floor of
    caption accuracy: a generator whose every sample reads as the same shape, colour, size and position)."""
    data = instantiate(OmegaConf.merge(OmegaConf.load(SHAPES_TEXT), {"encoder": "oracle"}))
    from gan_lab.data.text import ATTRIBUTE_NAMES

    attributes = data.eval_conditions(HELDOUT_CAPTIONS)["attributes"].cpu()
    shares = [float(torch.bincount(column).max()) / len(column) for column in attributes.T]
    return {**{f"caption accuracy {name}": s for name, s in zip(ATTRIBUTE_NAMES, shares)},
            "caption accuracy mean": sum(shares) / len(shares)}


def sizes_and_levels(run_dir: Path) -> dict:
    """The parameter counts of G and D; for a pyramid (LAPGAN), each level's D accuracy (real logits > 0, fake < 0)
    on its training batches, averaged over the last logged window (`train.log_every` steps); and the largest share
    of one class among the samples of the run's last `gan-lab eval` (by the classifier: 0.1 for balanced digits)."""
    run = restore(run_dir, torch.device("cpu"))
    state = checkpoint.load(run_dir / "checkpoints" / "last.pt")
    size = run.config.dataset.image_size
    levels = {f"D acc {size >> int(key[5:].split('/')[0])} px": value for key, value in state["last_losses"].items()
              if key.startswith("level") and key.endswith("/D_accuracy")}
    shares = json.loads(max((run_dir / "eval").glob("*.json")).read_text())["metrics"]
    top = max((v, k.split()[1]) for k, v in shares.items() if k.startswith("share "))
    return {"G params": f"{sum(p.numel() for p in run.task.G.parameters()) / 1e6:.2f}M",
            "D params": f"{sum(p.numel() for p in run.task.D.parameters()) / 1e6:.2f}M", **levels,
            "largest class share": f"{top[0]:.2f} ({top[1]})"}


# -- BiGAN / ALI (suite "bigan"): the BiGAN code's own MNIST log --

def bigan_readme(_: None) -> dict:
    return {"reconstruction L2": 5.95, "reconstruction L2 shuffled": 9.60}


bigan_readme.__doc__ = (
    "the BiGAN code's MNIST log after 400 epochs (jeffdonahue/bigan README, `EGr` and `EGr_b`; 187,200 steps of 128, "
    "a sigmoid G on [0, 1] images, 28 px). Its feature scores there are other classifiers: 92.10% 1-NN on E(x) "
    "(`NNC_e`) and 79.48% logistic regression on E's 1024-d last hidden layer (`CLS_e-`), which was 91.39% at "
    "initialisation (random features are a strong MNIST baseline); at initialisation `EGr` = `EGr_b` = 13.64")
