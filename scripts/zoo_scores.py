"""Scores of the zoo's translation rows that `gan-lab eval` does not give: the untranslated input (the floor), an
all-black image, and pix2pix on shapes_unpaired's test pairs (`gan-lab eval` scores a shapes_paired run on its
training pairs, since that dataset has no test split). All use the pairs and the functions `gan-lab eval` uses for
translators (gan_lab/metrics/evaluate.py, image_quality.py): the first ``eval.num_samples`` test pairs, L1/PSNR/SSIM
of [0, 1] images averaged over pairs. The lapgan suite's rows add their networks' sizes, LAPGAN's per-level D accuracy
and the largest class share of their samples (:func:`sizes_and_levels`).
"""

from __future__ import annotations

import json
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
