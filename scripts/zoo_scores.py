"""Scores of the zoo's translation rows that `gan-lab eval` does not give: the untranslated input (the floor), an
all-black image, and pix2pix on shapes_unpaired's test pairs (`gan-lab eval` scores a shapes_paired run on its
training pairs, since that dataset has no test split). All use the pairs and the functions `gan-lab eval` uses for
translators (gan_lab/metrics/evaluate.py, image_quality.py): the first ``eval.num_samples`` test pairs, L1/PSNR/SSIM
of [0, 1] images averaged over pairs. Also: the published numbers the super-resolution rows are shown beside; the
text suite's floor, real-image and Stage-I rows; the lapgan suite's networks' sizes, LAPGAN's per-level D
accuracy and the largest class share of their samples (:func:`sizes_and_levels`); BEGAN's k and M_global, read
from the run's TensorBoard log, and their curve as a PNG (:func:`equilibrium`, :func:`equilibrium_curves`).
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


def published(source: str, values: dict) -> Callable[[None], dict]:
    """A row of published numbers (no run): ``values`` by column, ``source`` says where they come from."""
    def score(_: None) -> dict:
        return dict(values)

    score.__doc__ = source
    return score


def paper(name: str, values: tuple[float, float]) -> Callable[[None], dict]:
    """A super-resolution row of Ledig et al. 2017, Table 2."""
    return published(f"{name} in Ledig et al. 2017, Table 2 (Set14, 4x; as recalled in the spec, not verified; "
                      f"other data, networks and budget)", {"PSNR-Y": values[0], "SSIM-Y": values[1]})


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


# -- energy-based GANs (suite "energy"): BEGAN's equilibrium, from the run's TensorBoard scalars --

def _scalars(run_dir: Path, *tags: str) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in tags}


def equilibrium(run_dir: Path) -> dict:
    """BEGAN's k after the last step and M_global, the mean of the first and of the last 50 logged steps."""
    logged = _scalars(run_dir, "began/k", "began/M_global")
    m = [value for _, value in logged["began/M_global"]]
    span = min(len(m), max(1, 50 * len(m) // logged["began/M_global"][-1][0]))  # logged points per 50 steps
    return {"k (end)": f"{logged['began/k'][-1][1]:.4f}",
            "M_global": f"{sum(m[:span]) / span:.3f} -> {sum(m[-span:]) / span:.3f}"}


def equilibrium_curves(run_dir: Path, dest: Path, stem: str) -> list[tuple[str, str]]:
    """``<stem>_equilibrium.png``: BEGAN's M_global (top) and k (bottom) against the step, each point the mean over
    a logging window (``train.log_every`` steps), drawn with Pillow (the lab has no plotting library)."""
    from PIL import Image, ImageDraw

    logged = _scalars(run_dir, "began/M_global", "began/k")
    width, height, left, right, top = 640, 420, 64, 16, 24
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    last = max(step for series in logged.values() for step, _ in series)
    panels = [("M_global = L(x) + |gamma L(x) - L(G(z))|", logged["began/M_global"], (200, 40, 40)),
              ("k_t", logged["began/k"], (40, 80, 200))]
    panel_h = (height - top - 40) // len(panels)
    for i, (title, series, colour) in enumerate(panels):
        y0 = top + i * (panel_h + 20)
        y1 = y0 + panel_h - 20
        low, high = min(v for _, v in series), max(v for _, v in series)
        high = high if high > low else low + 1e-6
        draw.rectangle([left, y0, width - right, y1], outline="black")
        draw.text((left + 6, y0 + 4), title, fill="black")
        draw.text((4, y0), f"{high:.3g}", fill="black")
        draw.text((4, y1 - 10), f"{low:.3g}", fill="black")
        points = [(left + (width - right - left) * step / last, y1 - (y1 - y0) * (value - low) / (high - low))
                  for step, value in series]
        draw.line(points, fill=colour, width=2)
    draw.text((left, height - 30), "0", fill="black")
    draw.text((width - right - 60, height - 30), f"step {last}", fill="black")
    name = f"{stem}_equilibrium.png"
    image.save(dest / name)
    return [(f"{stem} M_global and k", name)]
