"""Make docs/theory.md and its figures (issue 16): every ``gan-lab theory`` figure, run as a user types it,
its PNG and JSON copied into docs/theory/, its one-line summary and command written beside it.

    python scripts/theory_figures.py                       # all five figures, ~2-3 minutes on a 2-core CPU
    python scripts/theory_figures.py --doc /tmp/theory.md  # write elsewhere (the PNGs go beside it in theory/)

Runs on the CPU with OMP_NUM_THREADS=1; the run directories (mode_collapse's training run included) stay in a
temporary folder, only the figures and their numbers are kept.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from gan_lab.environment import cpu_model

ROOT = Path(__file__).resolve().parent.parent

# name -> (title, what it shows and where it comes from)
FIGURES = {
    "optimal_d": (
        "The optimal discriminator and the value of the game",
        "For a fixed G the best D is D*(x) = p_data(x) / (p_data(x) + p_g(x)), and at D* the game's value "
        "is -2 log 2 + 2 JS(p_data || p_g) (Goodfellow et al. 2014, §4.1, Proposition 1 and Theorem 1). "
        "Here D is `model=gan`'s maxout discriminator (2x64 units, no dropout) trained with the lab's "
        "cross-entropy D loss (`loss=minimax`, which every cross-entropy game shares) between p_data = N(0, 1) "
        "and p_g = N(1.5, 0.7); its value is minus its loss on fresh samples, JS is computed by quadrature."),
    "divergences": (
        "JS against Wasserstein on the parallel lines",
        "P_0 = (0, Z) and P_theta = (theta, Z) with Z ~ U[0, 1]: for theta != 0 KL is infinite and JS is log 2 "
        "whatever theta, so neither tells G which way to move; W1 = |theta| does (Arjovsky, Chintala & Bottou "
        "2017, §2, Example 1). The estimates come from critics the lab's losses train on the two point sets: W1 "
        "as minus the critic's `loss=wasserstein` loss with the WGAN-GP penalty (lambda 10), JS as "
        "log 2 - D's `loss=minimax` loss / 2 (the value of the game is -2 log 2 + 2 JS)."),
    "saturation": (
        "Saturation: the gradient G receives as D improves",
        "G is fixed near 0, the data are N(4, 0.5), and D is trained towards optimality under every loss in "
        "`configs/loss` (a new loss there appears here without new code; one the toy cannot run is listed as "
        "skipped with its reason in the JSON). With the minimax cost log(1 - D(G(z))) G's gradient vanishes as D "
        "learns to reject its samples; the non-saturating -log D(G(z)) keeps it (Goodfellow et al. 2014, §3; "
        "Goodfellow 2016 tutorial, §3.2.3; Arjovsky & Bottou 2017, §2.2). The maximum-likelihood cost fades too "
        "(at the optimal D, exp(logit) = p_data / p_g is tiny where G's samples lie), and so, by orders of "
        "magnitude less, does least squares'; the critics keep a gradient of order 1. Losses whose D objective "
        "is unbounded on a free output (wasserstein, energy) get a 1-Lipschitz critic through the lab's gradient "
        "penalty, as `model=wgan_gp` does; the energy loss is then run on that critic, not on EBGAN's auto-encoder."),
    "xy_game": (
        "Gradient play on min_x max_y xy",
        "The only equilibrium is (0, 0). Simultaneous gradient steps multiply the radius by sqrt(1 + lr^2) "
        "every step (checked exactly in tests/test_theory.py), alternating steps circle, extragradient "
        "(Korpelevich 1976) spirals in, and so does an R1 gradient penalty on the max player (the lab's "
        "`r1_penalty` on D_y(x) = y x, Mescheder et al. 2018's Dirac-GAN, §4.1). Goodfellow 2016 tutorial, "
        "§8.2 (the solution of exercise 7.2)."),
    "mode_collapse": (
        "Mode collapse on the ring of 8",
        "A `gan-lab train` run with the toy2d zoo's settings (docs/results.md), its scatter plots (drawn by the "
        "engine's recorder every 250 steps) in one row, each titled with the modes its checkpoint's samples "
        "cover (`gan_lab.metrics.toy2d`, 2500 samples; VEEGAN's 3-std rule). The generator covers some modes "
        "and moves between them rather than spreading over all 8 (Goodfellow 2016 tutorial, §5.1.1; Metz et al. "
        "2017, §3.1)."),
}


def run(name: str, work: Path) -> tuple[dict, float]:
    out = work / name
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "gan_lab", "theory", name, f"out={out}"], capture_output=True,
                          text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        sys.exit(f"gan-lab theory {name} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return json.loads((out / f"{name}.json").read_text()), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "theory.md")
    args = parser.parse_args()
    figures = args.doc.parent / "theory"
    figures.mkdir(parents=True, exist_ok=True)
    lines = ["# The theory behind the losses, as figures", "",
             "Produced by `python scripts/theory_figures.py`; do not edit by hand. Each figure is one "
             "`gan-lab theory <name>` run (settings in `configs/theory.yaml`, overrides as `<name>.<key>=`), "
             "which writes `<name>.png` and `<name>.json` (the numbers) into its run directory "
             "(`outputs/theory/<name>/<date>_<time>`, or `out=`) and prints one line; that line is quoted under "
             "each figure. Paper sections are cited as recalled: no copy of the papers was at hand to check the "
             "numbers against.", "",
             f"Machine: {cpu_model()}, {os.cpu_count()} cores (shared with other jobs), Python "
             f"{platform.python_version()}, torch {torch.__version__}, CPU only, OMP_NUM_THREADS=1, seed 0. "
             "*seconds*: wall time of the command, start-up included.", ""]
    with tempfile.TemporaryDirectory(prefix="gan_lab_theory_") as tmp:
        for name, (title, about) in FIGURES.items():
            numbers, seconds = run(name, Path(tmp))
            for suffix in (".png", ".json"):
                shutil.copyfile(Path(tmp) / name / f"{name}{suffix}", figures / f"{name}{suffix}")
            print(f"{name} ({seconds:.0f} s): {numbers['summary']}", flush=True)
            lines += [f"## {title}", "", about, "", f"![{name}](theory/{name}.png)", "",
                      f"`gan-lab theory {name}` ({seconds:.0f} s): {numbers['summary'].split('; run and')[0]}.",
                      "", f"Numbers: [theory/{name}.json](theory/{name}.json).", ""]
    args.doc.write_text("\n".join(lines))
    print(f"wrote {args.doc} and {figures}/")


if __name__ == "__main__":
    main()
