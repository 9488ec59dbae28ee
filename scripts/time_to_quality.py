"""Time to quality: classifier-FID against seconds of training, for several hardware settings side by side.

Each run (``--runs``: one space-separated override list per run, applied after the shared overrides given
after ``--``; by default DCGAN on MNIST) trains in this process with the engine's own ``setup`` and
``train_step``, as ``scripts/bench_train.py`` does. At every ``--every`` seconds of training (``--unit steps``:
steps) it measures FID on the features of gan-lab's classifier of the dataset (``eval.features=classifier``,
through ``TrainingEvaluator``, as ``gan-lab train eval.every=N`` does): ``--samples`` samples of the EMA
generator when the run keeps one, else of G, drawn in fp32 from the same seeded latents each time, against the
first ``--samples`` images of the dataset's test split. The clock runs only around training steps: building
the classifier (trained and cached on first use) and every evaluation stay outside it. An evaluation comes at
the first step that reaches its mark, so it may see one step more. Every run has the same seed and evaluation
settings, so fp32, bf16 and batch sizes compare by the quality they reach per second, not only by images/s.
Learning-rate schedules keep ``train.steps`` as their horizon, however many steps the budget allows. Ctrl-C
prints (and writes) what was measured so far.

    python scripts/time_to_quality.py --budget 120 --every 20 \\
        --runs "hardware=cpu" "hardware=bf16" "hardware=bf16 train.batch_size=256" -- model=dcgan dataset=mnist
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from bench_train import compose_train, machine, show, sync
from gan_lab.engine.loop import FiniteGuard, train_step
from gan_lab.engine.precision import process_flags, resolve_device
from gan_lab.errors import ConfigError, NonFiniteLossError, exit_on_error
from gan_lab.metrics.evaluate import TrainingEvaluator
from gan_lab.train import setup

DEFAULTS = ["model=dcgan", "dataset=mnist"]  # before the shared overrides, which may replace them
RUNS = ["hardware.precision=fp32", "hardware.precision=bf16"]
SHARED_KEYS = ("seed", "eval")  # the same for every run, or the FIDs would not compare
UNITS = {"s": "training s", "steps": "steps"}
console = Console(width=160)


def marks(budget: float, every: float) -> list[float]:
    """The points of evaluation: every ``every`` up to ``budget``, and ``budget`` itself."""
    if not every > 0:
        raise ConfigError(f"--every must be positive, got {every}")
    if budget < every:
        raise ConfigError(f"--budget ({budget}) must be at least --every ({every})")
    points = [every * k for k in range(1, int(budget / every + 1e-9) + 1)]
    return points + [budget] if budget - points[-1] > 1e-9 * budget else points


def check_runs(runs: list[str]) -> list[list[str]]:
    """Each run's overrides; none of them may set what all runs share (the seed, the evaluation)."""
    split = [run.split() for run in runs]
    for run in split:
        for item in run:
            key = item.lstrip("+~").split("=", 1)[0]
            if key.split(".")[0] in SHARED_KEYS:
                raise ConfigError(f"--runs: '{item}' would make this run's FID incomparable with the others; "
                                  f"give {key} after -- (shared by every run) or with --seed / --samples")
    return split


def measure(overrides: list[str], at: list[float], unit: str, result: dict) -> None:
    """Train the run of ``overrides`` up to the last mark of ``at`` (in ``unit``), evaluating at each mark;
    fills ``result`` as it goes, so a run stopped by Ctrl-C keeps what it measured."""
    cfg = compose_train(overrides)
    with process_flags(cfg.hardware, resolve_device(cfg.hardware)):
        state, data, hw = setup(cfg)
        evaluate = TrainingEvaluator(cfg, state.task, hw.device)  # trains and caches the classifier if needed
        result.update(device=str(hw.device), precision=hw.precision, batch=cfg.train.batch_size,
                      generator="G_ema" if state.task.sampling_generator() is not state.task.G else "G",
                      steps=0, seconds=0.0, images_per_s=None, eval_seconds=0.0)
        guard, trained = FiniteGuard(), 0.0
        for mark in at:
            while (trained if unit == "s" else state.step) < mark:
                t0 = time.perf_counter()
                train_step(state, data, hw, cfg, guard)
                sync(hw.device)
                trained += time.perf_counter() - t0
            guard.check(Path("."))
            t0 = time.perf_counter()
            _, fid = evaluate(state)
            result["eval_seconds"] += time.perf_counter() - t0
            result.update(steps=state.step, seconds=trained,
                          images_per_s=state.batches * cfg.train.batch_size / trained)
            result["points"].append({"at": mark, "seconds": trained, "steps": state.step, "fid": fid})
            console.print(f"{result['run']}: {mark:g} {unit} | step {state.step} | {trained:.1f} s of training | "
                          f"classifier-FID {fid:.2f}", markup=False)


def compare(args: argparse.Namespace) -> dict:
    """Every run of ``args`` in turn; the report (also printed as a table and written to ``--json``)."""
    runs, at = check_runs(args.runs), marks(args.budget, args.every)
    shared = [*DEFAULTS, "eval.features=classifier", f"eval.num_samples={args.samples}", f"seed={args.seed}",
              *args.overrides]
    report = {"machine": machine(), "unit": args.unit, "budget": args.budget, "every": args.every, "marks": at,
              "samples": args.samples, "seed": args.seed, "shared": shared, "runs": [], "interrupted": False}
    try:
        for label, run in zip(args.runs, runs):
            result = {"run": label, "points": []}
            report["runs"].append(result)
            try:
                measure([*shared, *run], at, args.unit, result)
            except NonFiniteLossError as err:  # a diverged run is a result too (bf16 could be one)
                result["error"] = str(err)
                console.print(f"{label}: {err}", markup=False)
    except KeyboardInterrupt:
        report["interrupted"] = True
    print_report(report, args.markdown)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


def print_report(report: dict, markdown: bool) -> None:
    """One row per mark, one column per run (classifier-FID; "-": not reached), then each run's precision, batch,
    steps, training seconds and images/s."""
    runs = report["runs"]
    rows = []
    for i, mark in enumerate(report["marks"]):
        rows.append([f"{mark:g}", *(f"{r['points'][i]['fid']:.2f}" if i < len(r["points"])
                                    else "diverged" if "error" in r else "-" for r in runs)])
    for name, key, fmt in (("precision", "precision", "{}"), ("batch", "batch", "{}"), ("steps", "steps", "{}"),
                           ("training s", "seconds", "{:.1f}"), ("images/s", "images_per_s", "{:.0f}")):
        rows.append([name, *(fmt.format(r[key]) if r.get(key) is not None else "-" for r in runs)])
    device = runs[0].get("device", "?") if runs else "?"
    title = f"classifier-FID against {UNITS[report['unit']]} on {device} ({report['machine']})"
    caption = (f"FID of {report['samples']} samples (G_ema when the run has one) against {report['samples']} real "
               f"images (the test split where the dataset has one) on gan-lab's classifier features; clock: training "
               f"steps only; seed {report['seed']}; shared: {' '.join(report['shared'])}"
               + ("; INTERRUPTED" if report["interrupted"] else ""))
    columns = [UNITS[report["unit"]], *(r["run"] for r in runs)]
    if not markdown:  # override lists hold brackets (tricks=[ema]), which rich would read as markup
        title, caption, columns = escape(title), escape(caption), [escape(c) for c in columns]
    show(title, columns, rows, caption, markdown)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", default=RUNS, help="one quoted override list per run")
    parser.add_argument("--budget", type=float, default=120, help="training time per run (--unit)")
    parser.add_argument("--every", type=float, default=20, help="evaluate after each this much training")
    parser.add_argument("--unit", choices=list(UNITS), default="s", help="s: seconds of training; steps")
    parser.add_argument("--samples", type=int, default=2000, help="generated (and real) images per FID")
    parser.add_argument("--seed", type=int, default=0, help="every run's seed")
    parser.add_argument("--json", help="also write the numbers to this file")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides shared by every run")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    return exit_on_error(compare, parse(argv))


if __name__ == "__main__":
    main()
