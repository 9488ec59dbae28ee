"""The model zoo: train every configuration of a suite with the same seed and steps, evaluate
each with ``gan-lab eval``, print a table, and write the table and the last sample grids into
``docs/results.md`` (each suite owns the section between its markers; the rest of the file is kept).

    python scripts/zoo.py toy2d                 # ring of 8: modes covered, high-quality fraction
    python scripts/zoo.py mnist                 # MNIST: classifier-FID (offline), after `gan-lab train-classifier`
    python scripts/zoo.py toy2d --steps 200 --only nonsaturating,wgan_gp --out /tmp/zoo --doc /tmp/results.md

Every run goes through the ``gan-lab`` command exactly as a user would type it; the command of each
row is in the document. Runs already finished in ``--out`` are evaluated again, not retrained.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gan_lab.engine import checkpoint

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Suite:
    title: str
    about: str  # one paragraph for the document: data, networks, budget, metric definitions
    common: list[str]  # overrides of every run
    rows: dict[str, list[str]]  # row name -> its own overrides
    eval: list[str]
    metrics: list[str]  # report keys shown as columns
    steps: int
    env: dict[str, str] = field(default_factory=dict)


# Wasserstein rows on MLPs spell out their papers' optimizers (the model configs of the same name
# build DCGAN networks for images).
FRESH_Z = ["+model.reuse_fake=false"]  # Algorithm 1 of the WGAN family: G's step draws its own z
RMSPROP = ["optim.G._target_=torch.optim.RMSprop", "~optim.G.betas", "optim.G.lr=5e-5",
           "optim.D._target_=torch.optim.RMSprop", "~optim.D.betas", "optim.D.lr=5e-5"]
ADAM_GP = ["optim.G.lr=1e-4", "optim.G.betas=[0.0,0.9]", "optim.D.lr=1e-4", "optim.D.betas=[0.0,0.9]"]

SUITES = {
    "toy2d": Suite(
        title="Ring of 8 Gaussians (toy2d)",
        about=(
            "`dataset=toy2d` (8 modes on a circle of radius 2, std 0.02; Metz et al. 2017, Srivastava et al. "
            "2017) with the MLP GAN of `model=gan` at the toy-experiment size of Metz et al. 2017 (G 2x128 ReLU, "
            "D 2x128 maxout units, no dropout), batch 256, seed 0, the same number of generator steps for every "
            "row. *Modes covered*: modes that are the nearest mode of at least one high-quality sample; "
            "*high-quality fraction*: samples within 3 standard deviations of a mode centre (VEEGAN, §5.1), "
            "from 2500 samples of `gan-lab eval`. One seed per row: differences of a mode or two are within "
            "seed-to-seed variation. *train s*: training seconds on a shared 2-core CPU (other jobs ran beside "
            "some rows)."),
        common=["model=gan", "dataset=toy2d", "train.batch_size=256", "model.generator.hidden=[128,128]",
                "model.discriminator.units=[128,128]", "model.discriminator.input_dropout=0",
                "model.discriminator.dropout=0"],
        rows={
            "nonsaturating": ["loss=nonsaturating"],
            "minimax": ["loss=minimax"],
            "maxlikelihood": ["loss=maxlikelihood"],
            "leastsquares (LSGAN)": ["loss=leastsquares"],
            "hinge": ["loss=hinge"],
            "wgan (clipping)": ["loss=wasserstein", "tricks=[weight_clipping]", "train.n_critic=5", *RMSPROP, *FRESH_Z],
            "wgan_gp": ["loss=wasserstein", "tricks=[gradient_penalty]", "train.n_critic=5", *ADAM_GP, *FRESH_Z],
            "wgan_div": ["loss=wasserstein", "tricks=[wgan_div]", "train.n_critic=5", *ADAM_GP, *FRESH_Z],
            "r1": ["tricks=[r1]"],
            "spectral_norm": ["tricks=[spectral_norm]"],
            "spectral_norm + hinge + ttur": ["loss=hinge", "tricks=[spectral_norm,ttur]"],
            "feature_matching": ["tricks=[feature_matching]"],
            "minibatch_discrimination": ["tricks=[minibatch_discrimination]"],
            "minibatch_stddev": ["tricks=[minibatch_stddev]"],
            "historical_averaging": ["tricks=[historical_averaging]"],
            "label_smoothing": ["tricks=[label_smoothing]"],
            "instance_noise": ["tricks=[instance_noise]"],
            "ema": ["tricks=[ema]"],
        },
        eval=["eval.num_samples=2500"],
        metrics=["modes covered", "high-quality fraction"],
        steps=1500,
    ),
    "mnist": Suite(
        title="MNIST, classifier-FID",
        about=(
            "`dataset=mnist` (32 px), each model's own networks and optimizers, batch 64, seed 0, the same "
            "number of generator steps for every row. *classifier-FID*: FID computed on the features of "
            "gan-lab's MNIST classifier (`gan-lab train-classifier dataset=mnist`, about 98.6% test "
            "accuracy) between 2000 samples and the test split. It ranks models on this machine without the "
            "Inception weights; it is not comparable to published (Inception) FID. *classifier_accuracy*: the "
            "semi-supervised GAN's D as a classifier on the test split (its `model.labelled` default: 40 labels). "
            "*train s*: training seconds on a shared 2-core CPU (other jobs ran beside some rows). "
            "Progressive GAN is left out: its schedule reaches 32 px only after 1500 steps, and its 32 px "
            "steps take about 1 s on this CPU."),
        common=["dataset=mnist", "train.batch_size=64"],
        rows={
            "dcgan": ["model=dcgan"],
            "lsgan": ["model=lsgan"],
            "dcgan + hinge": ["model=dcgan", "loss=hinge"],
            "wgan": ["model=wgan"],
            "wgan_gp": ["model=wgan_gp"],
            "sagan": ["model=sagan"],
            "infogan": ["model=infogan"],
            "ssgan": ["model=ssgan"],
            "dcgan + feature_matching": ["model=dcgan", "tricks=[feature_matching]"],
            "dcgan + minibatch_discrimination": ["model=dcgan", "tricks=[minibatch_discrimination]"],
            "dcgan + label_smoothing": ["model=dcgan", "tricks=[label_smoothing]"],
        },
        eval=["eval.features=classifier", "eval.metrics=[fid]", "eval.num_samples=2000"],
        metrics=["classifier-FID", "classifier_accuracy"],
        steps=600,
        env={"GAN_LAB_DATA": os.environ.get("GAN_LAB_DATA", str(REPO.parent / "shared" / "data"))},
    ),
}


def gan_lab(args: list[str], env: dict[str, str]) -> None:
    cmd = [shutil.which("gan-lab") or "gan-lab", *args]
    done = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def run_row(suite: Suite, overrides: list[str], run_dir: Path, steps: int) -> dict:
    """Train (unless ``run_dir`` already holds the finished run), evaluate; returns the eval report."""
    train = [*suite.common, *overrides, f"train.steps={steps}", "seed=0", "train.progress=plain",
             f"train.sample_every={steps}", f"train.ckpt_every={steps}", f"hydra.run.dir={run_dir}"]
    if not (run_dir / "checkpoints" / "last.pt").exists():
        gan_lab(["train", *train], suite.env)
    seconds = checkpoint.load(run_dir / "checkpoints" / "last.pt")["elapsed"]  # training time, all sessions
    gan_lab(["eval", f"ckpt={run_dir}", *suite.eval], suite.env)
    report = json.loads(max((run_dir / "eval").glob("*.json")).read_text())
    return {"command": shlex.join(["gan-lab", "train", *suite.common, *overrides, f"train.steps={steps}"]),
            "seconds": seconds, **report["metrics"]}


def fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else ("" if value is None else str(value))


def markdown(suite: Suite, name: str, results: dict[str, dict], steps: int, images: Path) -> str:
    lines = [f"<!-- zoo:{name}:start -->", f"## {suite.title}", "", suite.about, "",
             f"Generator steps per row: {steps}. Produced by `python scripts/zoo.py {name}`; do not edit by hand.",
             "", "| row | " + " | ".join(suite.metrics) + " | train s | samples |",
             "|---|" + "---|" * (len(suite.metrics) + 2)]
    for row, res in results.items():
        picture = f"![{row}]({images.name}/{name}/{slug(row)}.png)"
        lines.append(f"| {row} | " + " | ".join(fmt(res.get(m)) for m in suite.metrics)
                     + f" | {res['seconds']:.0f} | {picture} |")
    lines += ["", "Commands:", ""] + [f"- {row}: `{res['command']}`" for row, res in results.items()]
    return "\n".join(lines + [f"<!-- zoo:{name}:end -->"])


def slug(row: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in row).strip("_")


def write_section(doc: Path, name: str, section: str) -> None:
    text = doc.read_text() if doc.exists() else "# Results\n\nTables produced by `scripts/zoo.py`.\n"
    start, end = f"<!-- zoo:{name}:start -->", f"<!-- zoo:{name}:end -->"
    if start in text:
        text = text[:text.index(start)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    doc.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", choices=sorted(SUITES))
    parser.add_argument("--steps", type=int, help="generator steps per run (default: the suite's)")
    parser.add_argument("--only", help="comma-separated row names")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "zoo", help="run directories")
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "results.md")
    args = parser.parse_args()
    suite = SUITES[args.suite]
    steps = args.steps or suite.steps
    rows = {k: v for k, v in suite.rows.items() if not args.only or k in args.only.split(",")}
    images = args.doc.parent / "results"
    (images / args.suite).mkdir(parents=True, exist_ok=True)
    console = Console()
    table = Table(title=f"{suite.title}: {steps} steps, seed 0")
    for column in ("row", *suite.metrics, "train s"):
        table.add_column(column)
    results = {}
    for row, overrides in rows.items():
        run_dir = args.out / args.suite / f"{slug(row)}-{steps}"
        console.print(f"[bold]{escape(row)}[/]: {escape(' '.join(overrides))}")
        try:
            results[row] = run_row(suite, overrides, run_dir, steps)
        except RuntimeError as err:
            console.print(f"[red]{escape(row)} failed[/]: {escape(str(err))}")
            sys.exit(1)
        shutil.copy(max((run_dir / "samples").glob("*.png")), images / args.suite / f"{slug(row)}.png")
        table.add_row(row, *(fmt(results[row].get(m)) for m in suite.metrics), f"{results[row]['seconds']:.0f}")
    console.print(table)
    write_section(args.doc, args.suite, markdown(suite, args.suite, results, steps, images))
    console.print(f"wrote {args.doc}")


if __name__ == "__main__":
    main()
