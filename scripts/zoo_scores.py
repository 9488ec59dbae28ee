"""Scores of the zoo's translation rows that `gan-lab eval` does not give: the untranslated input (the floor), an
all-black image, and pix2pix on shapes_unpaired's test pairs (`gan-lab eval` scores a shapes_paired run on its
training pairs, since that dataset has no test split). All use the pairs and the functions `gan-lab eval` uses for
translators (gan_lab/metrics/evaluate.py, image_quality.py): the first ``eval.num_samples`` test pairs, L1/PSNR/SSIM
of [0, 1] images averaged over pairs. Also: the published numbers the super-resolution rows are shown beside; the
text suite's floor, real-image and Stage-I rows; the lapgan suite's networks' sizes, LAPGAN's per-level D
accuracy and the largest class share of their samples (:func:`sizes_and_levels`); the project suite's
`gan-lab project` runs (:func:`projection_gap`); the anogan suite's `gan-lab anomaly` runs
(:func:`anomaly_scores`); the musegan suite's chorale rows and the paper's tables (:func:`bach_data`,
:func:`musegan_paper`); BEGAN's k and M_global, read from the run's TensorBoard log, and their curve as a PNG
(:func:`equilibrium`); the BiGAN code's own MNIST log (:data:`bigan_readme`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image
from torchvision.utils import save_image

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


# -- iGAN projection (suite "project"): `gan-lab project` on held-out real shapes and on G's own samples --

SHAPES = Path(__file__).resolve().parents[1] / "configs" / "dataset" / "shapes.yaml"
PROJECTED = 8  # images per set
PROJECT = ["starts=4", "steps=500"]  # the suite's search budget (the command's defaults: 8 starts)


def _project(run_dir: Path, name: str, *args: str) -> dict:
    """`gan-lab project ckpt=<run> ... out=<run>/project/<name>` as a user types it (one thread); returns its
    projection.json and ``out``."""
    out = run_dir / "project" / name
    cmd = [shutil.which("gan-lab") or "gan-lab", "project", f"ckpt={run_dir}", *args, f"out={out}"]
    done = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return {"out": out, **json.loads((out / "projection.json").read_text())}


def projection_gap(run_dir: Path) -> dict:
    """Projection error (RMSE and PSNR of [0, 1] images, mean over images) of held-out real shapes (seed 1, unseen
    in training) and of the generator's own samples, a colour edit of the first real image (its shape's pixels
    painted the complement of its colour) and an interpolation between the first two; the pictures for the doc."""
    run = restore(run_dir, torch.device("cpu"))
    folder = run_dir / "project-inputs"
    folder.mkdir(exist_ok=True)
    real = instantiate(OmegaConf.merge(OmegaConf.load(SHAPES), {"seed": 1, "count": PROJECTED})).examples(PROJECTED)
    torch.manual_seed(0)
    with inference(run.task, run.generator):
        own = run.generator(torch.randn(PROJECTED, run.task.z_dim))
    files = []
    for name, images in (("real", real["real"]), ("own", own)):
        for i, image in enumerate(images):
            files.append(folder / f"{name}{i}.png")
            save_image(image * 0.5 + 0.5, files[-1])
    batch = _project(run_dir, "gap", f"image=[{','.join(map(str, files))}]", *PROJECT)
    rmse, psnr = batch["rmse"], batch["psnr"]
    shape = real["real"][0] * 0.5 + 0.5
    inside = shape.amax(0) > 0.25  # the shape's pixels (the background is black)
    save_image(inside.float()[None], folder / "mask.png")
    colour = (1 - shape[:, inside].mean(1)).clamp(0, 1)
    color = "[" + ",".join(f"{c:.2f}" for c in colour.tolist()) + "]"
    edit = _project(run_dir, "edit", f"image={files[0]}", f"mask={folder / 'mask.png'}", f"color={color}", *PROJECT)
    interp = _project(run_dir, "interpolation", f"image=[{files[0]},{files[1]}]", "interpolate=8", *PROJECT)
    grid = folder / "projections.png"  # inputs above their projections
    rows = [torch.from_numpy(np.array(Image.open(batch["out"] / f"{n}.png"))) for n in ("input", "projection")]
    Image.fromarray(torch.cat(rows).numpy()).save(grid)
    n = PROJECTED
    return {"real RMSE": sum(rmse[:n]) / n, "real PSNR": sum(psnr[:n]) / n,
            "own RMSE": sum(rmse[n:]) / n, "own PSNR": sum(psnr[n:]) / n,
            "edit masked RMSE": f"{edit['edit']['masked_rmse_before']:.3f} -> {edit['edit']['masked_rmse_after']:.3f}",
            "pictures": [("projections: 8 held-out real shapes and 8 G samples above their projections", grid),
                         ("colour edit: input, projection, constraint, edit", edit["out"] / "edit_strip.png"),
                         ("interpolation: input a, 8 steps, input b", interp["out"] / "interpolation.png")]}


# -- one-class anomaly detection (suite "anogan"): `gan-lab anomaly` on a one-digit DCGAN ---------------------------

# Ruff et al. 2018, "Deep One-Class Classification" (ICML), Table 1: AnoGAN's mean AUROC (%) over 10 seeds on MNIST,
# digit c normal; as recalled in the spec (shared/specs/applications.md §1.5), not verified against the paper.
RUFF_ANOGAN_MNIST = (96.6, 99.2, 85.0, 88.7, 89.4, 88.3, 94.7, 93.5, 84.9, 92.4)


def anomaly_report(run_dir: Path, method: str, overrides: list[str], env: dict[str, str]) -> dict:
    """The newest report of `gan-lab anomaly method=<method> <overrides>` on the run: one already in
    ``<run>/anomaly/`` with those settings (as the zoo keeps finished runs), else a fresh one (in ``env``)."""
    def matches(report: dict) -> bool:
        for override in overrides:
            key, value = override.split("=", 1)
            node = report
            for part in key.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node is None or str(node) != value:
                return False
        return True

    for path in sorted((run_dir / "anomaly").glob(f"*-{method}.json"), reverse=True):
        report = json.loads(path.read_text())
        if matches(report):
            return report
    done = subprocess.run([shutil.which("gan-lab") or "gan-lab", "anomaly", f"ckpt={run_dir}", f"method={method}",
                           "progress=plain", *overrides], env={**os.environ, **env}, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"gan-lab anomaly method={method} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return json.loads(max((run_dir / "anomaly").glob(f"*-{method}.json")).read_text())


def anomaly_scores(digit: int, search: list[str], encoder: list[str], env: dict[str, str]) -> Callable[[Path], dict]:
    """`gan-lab anomaly` of the run (:func:`anomaly_report`), once per method (``search`` and ``encoder``: their
    overrides); the AUROCs, the seconds per scored image and the encoder's training seconds, beside Ruff et al.'s
    AnoGAN AUROC of the digit, and the search's grid (the first 8 normal and 8 anomalous test images scored)."""
    def score(run_dir: Path) -> dict:
        values = {"AUROC AnoGAN, Ruff et al. (%)": RUFF_ANOGAN_MNIST[digit]}
        for method, overrides in (("search", search), ("encoder", encoder)):
            report = anomaly_report(run_dir, method, overrides, env)
            values.update({f"AUROC {method}": report["auroc"], f"s/image {method}": report["seconds_per_image"],
                           f"images {method}": report["images"]})
            if method == "encoder":
                values["encoder train s"] = report["encoder"]["train_seconds"]
            else:
                values["pictures"] = [("search: queries, G(z*), residuals", Path(report["files"]["png"]))]
        return values



# -- MuseGAN (suite "musegan"): per-track metrics joined into one cell per metric, as the paper's tables --

VOICES = ("soprano", "alto", "tenor", "bass")
VOICE_PAIRS = [(a, b) for i, a in enumerate(VOICES) for b in VOICES[i + 1:]]
BACH = Path(__file__).resolve().parents[1] / "configs" / "dataset" / "bach_chorales.yaml"
QN_THRESHOLD = 2  # eval.available.qn.threshold's default


def music_cells(values: dict, suffix: str = "") -> dict:
    """A `gan-lab eval` report's per-track MuseGAN metrics as the table's four cells."""
    def cell(keys):
        return "/".join(f"{values[k]:.3g}" for k in keys)

    return {"EB % S/A/T/B": cell([f"EB % {v}{suffix}" for v in VOICES]),
            "UPC S/A/T/B": cell([f"UPC {v}{suffix}" for v in VOICES]),
            "QN % S/A/T/B": cell([f"QN % {v}{suffix}" for v in VOICES]),
            "TD SA/ST/SB/AT/AB/TB": cell([f"TD {a}-{b}{suffix}" for a, b in VOICE_PAIRS])}


def music_generated(run_dir: Path) -> dict:
    """the run's latest `gan-lab eval` report, its generated samples' values"""
    return music_cells(json.loads(max((run_dir / "eval").glob("*.json")).read_text())["metrics"])


def bach_data(shuffled: bool) -> Callable[[None], dict]:
    """All phrases of dataset=bach_chorales through gan_lab.metrics.music; TD ``shuffled``: each voice's phrases
    re-paired at random (TonalDistance's seed-0 permutation, the paper's "train (shuffled)" row)."""
    from gan_lab.metrics import music

    def score(_: None) -> dict:
        data = instantiate(OmegaConf.load(BACH))
        rolls = data.tensors["real"] > 0
        eb = music.empty_bars(rolls, data.steps_per_bar)
        upc = music.used_pitch_classes(rolls, data.steps_per_bar, data.lowest_pitch)
        qn = music.qualified_notes(rolls, QN_THRESHOLD)
        values = {**{f"EB % {v}": 100 * float(x) for v, x in zip(VOICES, eb)},
                  **{f"UPC {v}": float(x) for v, x in zip(VOICES, upc)},
                  **{f"QN % {v}": 100 * float(x) for v, x in zip(VOICES, qn)}}
        if shuffled:
            gen = torch.Generator().manual_seed(0)
            rolls = torch.stack([rolls[torch.randperm(len(rolls), generator=gen), k] for k in range(4)], 1)
        values.update({f"TD {a}-{b}": music.tonal_distance(rolls[:, VOICES.index(a)], rolls[:, VOICES.index(b)],
                                                          data.beat_resolution, data.lowest_pitch)
                       for a, b in VOICE_PAIRS})
        cells = music_cells(values)
        if shuffled:  # only TD changes with re-pairing
            cells = {k: (v if k.startswith("TD") else "") for k, v in cells.items()}
        return cells

    score.__doc__ = (f"the {len(VOICES)}-voice Bach chorales themselves, all phrases"
                     f"{', voices re-paired at random across phrases' if shuffled else ''} (gan_lab.metrics.music)")
    return score


# Dong et al. 2018, Tables 1 and 2 (read from the paper's PDF for the spec): LPD-5 rock phrases, 5 tracks
# bass/drums/guitar/piano/strings at 24 steps per beat, 20,000 generated bars, QN >= 3 steps, chroma computed with
# the code's grouping of consecutive semitones (see gan_lab/metrics/music.py). TD pairs B-G, B-S, B-P, G-S, G-P, S-P.
MUSEGAN_PAPER = {
    "training data": ("8.06/8.06/19.4/24.8/10.1", "1.71/3.08/3.28/3.38", "90.0/81.9/88.4/89.6",
                      "1.57/1.58/1.51/1.10/1.02/1.04"),
    "training data, shuffled": ("", "", "", "1.59/1.59/1.56/1.14/1.12/1.13"),
    "jamming": ("6.59/2.33/18.3/22.6/6.10", "1.53/3.69/4.13/4.09", "71.5/56.6/62.2/63.1",
                "1.56/1.60/1.54/1.05/0.99/1.05"),
    "composer": ("0.01/28.9/1.34/0.02/0.01", "2.51/4.20/4.89/5.19", "49.5/47.4/49.9/52.5",
                 "1.37/1.36/1.30/0.95/0.98/0.91"),
    "hybrid": ("2.14/29.7/11.7/17.8/6.04", "2.35/4.76/5.45/5.24", "44.6/43.2/45.5/52.0",
               "1.34/1.35/1.32/0.85/0.85/0.83"),
}


def musegan_paper(name: str) -> Callable[[None], dict]:
    """A row of Dong et al. 2018's Tables 1-2 (other data: 5 LPD rock tracks, per-track order B/D/G/P/S)."""
    return published(f"Dong et al. 2018, Tables 1-2, {name} (LPD-5 rock, tracks B/D/G/P/S (EB), B/G/P/S (UPC, "
                     f"QN), pairs B-G/B-S/B-P/G-S/G-P/S-P (TD); the code's faulty chroma; not comparable)",
                     dict(zip(("EB % S/A/T/B", "UPC S/A/T/B", "QN % S/A/T/B", "TD SA/ST/SB/AT/AB/TB"),
                              MUSEGAN_PAPER[name])))


# -- energy-based GANs (suite "energy"): BEGAN's equilibrium, from the run's TensorBoard scalars --

def _scalars(run_dir: Path, *tags: str) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in tags}


def equilibrium(run_dir: Path) -> dict:
    """BEGAN's k after the last step and M_global, the mean of the first and of the last 50 logged steps, and their
    curves (:func:`equilibrium_curves`)."""
    logged = _scalars(run_dir, "began/k", "began/M_global")
    m = [value for _, value in logged["began/M_global"]]
    span = min(len(m), max(1, 50 * len(m) // logged["began/M_global"][-1][0]))  # logged points per 50 steps
    return {"k (end)": f"{logged['began/k'][-1][1]:.4f}",
            "M_global": f"{sum(m[:span]) / span:.3f} -> {sum(m[-span:]) / span:.3f}",
            "pictures": [("equilibrium: M_global and k against the step", equilibrium_curves(run_dir))]}


def equilibrium_curves(run_dir: Path) -> Path:
    """``<run>/equilibrium.png``: BEGAN's M_global (top) and k (bottom) against the step, each point the mean over
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
    image.save(run_dir / "equilibrium.png")
    return run_dir / "equilibrium.png"


# -- BiGAN / ALI (suite "bigan"): the BiGAN code's own MNIST log --

bigan_readme = published(
    "the BiGAN code's MNIST log after 400 epochs (jeffdonahue/bigan README, `EGr` and `EGr_b`; 187,200 steps of 128, "
    "a sigmoid G on [0, 1] images, 28 px). Its feature scores there are other classifiers: 92.10% 1-NN on E(x) "
    "(`NNC_e`) and 79.48% logistic regression on E's 1024-d last hidden layer (`CLS_e-`), which was 91.39% at "
    "initialisation (random features are a strong MNIST baseline); at initialisation `EGr` = `EGr_b` = 13.64",
    {"reconstruction L2": 5.95, "reconstruction L2 shuffled": 9.60})
