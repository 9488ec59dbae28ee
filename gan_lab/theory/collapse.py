"""``mode_collapse``: a ``gan-lab train`` run on ``dataset=toy2d`` (the ring of 8) with the settings of the
toy2d zoo, its scatter plots (``<run>/samples/points_<step>.png``, drawn by the engine's recorder) laid out
as one row over training, with the modes each snapshot covers (``gan_lab.metrics.toy2d``, on samples of
the checkpoint of that step): the generator visits some modes and drops others (Metz et al. 2017, §3.1 and
Fig. 2; Goodfellow 2016 tutorial, §5.1.1, as recalled)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from omegaconf import DictConfig

from gan_lab.data.toy2d import mixture_modes
from gan_lab.engine.restore import restore
from gan_lab.errors import GanLabError
from gan_lab.metrics.toy2d import mode_coverage
from gan_lab.theory.plot import figure, save


def train_command(cfg: DictConfig, run_dir: Path) -> list[str]:
    """The ``gan-lab train`` command line (as ``python -m gan_lab.train``) that makes the snapshots."""
    return [sys.executable, "-m", "gan_lab.train", *cfg.overrides, f"train.steps={cfg.steps}",
            f"train.sample_every={cfg.every}", f"train.ckpt_every={cfg.every}", "train.keep_ckpts=1000",
            f"train.grid_size={cfg.points}", f"seed={cfg.seed}", f"hydra.run.dir={run_dir}"]


@torch.no_grad()
def coverage(ckpt: Path, n: int = 2500) -> tuple[int, int, float]:
    """(modes covered, modes, high-quality fraction) of ``n`` samples of a toy2d checkpoint."""
    run = restore(ckpt, torch.device("cpu"))
    run.task.seed_latent(0)
    modes, std = mixture_modes(run.config.dataset.mixture)
    covered, quality = mode_coverage(run.task.sample(n, run.generator)["samples"], modes, std)
    return covered, len(modes), quality


def mode_collapse(cfg: DictConfig, out: Path) -> str:
    run_dir = out / "mode_collapse_run"
    command = train_command(cfg, run_dir)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        said = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()
                and "HYDRA_FULL_ERROR" not in line]  # its error, not Hydra's trailer
        raise GanLabError(f"mode_collapse: the training run failed ({' '.join(command[3:])}): {''.join(said[-1:])}")
    shots = sorted((run_dir / "samples").glob("*.png"))
    if not shots:
        raise GanLabError(f"mode_collapse: the run wrote no scatter plots under {run_dir / 'samples'} "
                          "(is the dataset 2-D points?)")
    fig, axes = figure(len(shots), width=2.0, height=2.3)
    from matplotlib.image import imread  # after figure(), which names the extra when matplotlib is missing

    steps = [int(p.stem.rsplit("_", 1)[1]) for p in shots]
    covered = [coverage(run_dir / "checkpoints" / f"step_{step:07d}.pt") for step in steps]
    for ax, path, step, (k, modes, quality) in zip(axes, shots, steps, covered):
        ax.imshow(imread(path))
        ax.set_title(f"step {step}: {k}/{modes} modes", fontsize=9)
        ax.axis("off")
    fig.suptitle(f"samples (blue) over the data (grey): gan-lab train {' '.join(cfg.overrides)}", fontsize=7,
                 wrap=True)
    save(fig, out, "mode_collapse", {"command": ["gan-lab", "train", *command[3:-1]], "steps": steps,
                                     "modes_covered": [c[0] for c in covered], "modes": covered[0][1],
                                     "high_quality_fraction": [c[2] for c in covered],
                                     "snapshots": [str(p.relative_to(out)) for p in shots]})
    trail = ", ".join(f"{k}" for k, _, _ in covered)
    return (f"modes covered at steps {', '.join(map(str, steps))}: {trail} of {covered[0][1]} "
            f"({' '.join(cfg.overrides)}); run and scatter plots in {run_dir}")
