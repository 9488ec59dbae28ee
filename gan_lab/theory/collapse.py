"""``mode_collapse``: a ``gan-lab train`` run on ``dataset=toy2d`` (the ring of 8) with the settings of the
toy2d zoo, its scatter plots (``<run>/samples/points_<step>.png``, drawn by the engine's recorder) laid out
as one row over training: the generator visits some modes and drops others (Metz et al. 2017, §3.1 and
Fig. 2; Goodfellow 2016 tutorial, §5.1.1, as recalled)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from omegaconf import DictConfig

from gan_lab.errors import GanLabError
from gan_lab.theory.plot import figure, save


def train_command(cfg: DictConfig, run_dir: Path) -> list[str]:
    """The ``gan-lab train`` command line (as ``python -m gan_lab.train``) that makes the snapshots."""
    return [sys.executable, "-m", "gan_lab.train", *cfg.overrides, f"train.steps={cfg.steps}",
            f"train.sample_every={cfg.every}", f"seed={cfg.seed}", f"hydra.run.dir={run_dir}"]


def mode_collapse(cfg: DictConfig, out: Path) -> str:
    run_dir = out / "mode_collapse_run"
    command = train_command(cfg, run_dir)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise GanLabError(f"mode_collapse: the training run failed ({' '.join(command[3:])}): "
                          f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    shots = sorted((run_dir / "samples").glob("*.png"))
    if not shots:
        raise GanLabError(f"mode_collapse: the run wrote no scatter plots under {run_dir / 'samples'} "
                          "(is the dataset 2-D points?)")
    fig, axes = figure(len(shots), width=2.0, height=2.3)
    from matplotlib.image import imread  # after figure(), which names the extra when matplotlib is missing

    steps = [int(p.stem.rsplit("_", 1)[1]) for p in shots]
    for ax, path, step in zip(axes, shots, steps):
        ax.imshow(imread(path))
        ax.set_title(f"step {step}", fontsize=9)
        ax.axis("off")
    fig.suptitle("samples (blue) over the ring of 8 (grey): " + " ".join(cfg.overrides), fontsize=8)
    save(fig, out, "mode_collapse", {"command": ["gan-lab", "train", *command[3:-1]], "steps": steps,
                                     "snapshots": [str(p) for p in shots], "run": str(run_dir)})
    return (f"{len(shots)} snapshots of {' '.join(cfg.overrides)} over {cfg.steps} steps: the samples move between "
            f"modes of the ring instead of covering all 8; run and scatter plots in {run_dir}")
