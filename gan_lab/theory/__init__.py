"""``gan-lab theory <name>``: the theory behind the losses as figures (issue 16). Each figure writes
``<name>.png`` and ``<name>.json`` (its numbers) into ``out``, its run directory, and prints one
line saying what it shows. ``gan-lab theory xy_game`` is ``gan-lab theory name=xy_game``; a figure's
settings are ``<name>.<key>=`` overrides (``gan-lab theory xy_game xy_game.lr=0.2``)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from gan_lab import config as config_lib
from gan_lab.errors import ConfigError, exit_on_error
from gan_lab.theory.collapse import mode_collapse
from gan_lab.theory.divergences import divergences, optimal_d
from gan_lab.theory.games import saturation, xy_game

log = logging.getLogger("gan_lab")

FIGURES = {"optimal_d": optimal_d, "divergences": divergences, "saturation": saturation, "xy_game": xy_game,
           "mode_collapse": mode_collapse}

config_lib.register()


def make(cfg: DictConfig, out: Path) -> str:
    """Draw figure ``cfg.name`` into ``out``; returns its one-line summary, also stored in its JSON."""
    if cfg.name not in FIGURES:
        raise ConfigError(f"name={cfg.name}: choose one of {', '.join(FIGURES)}")
    torch.set_num_threads(1)  # toy sizes: threads cost more than they give
    summary = FIGURES[cfg.name](cfg[cfg.name], out)
    numbers = out / f"{cfg.name}.json"
    numbers.write_text(json.dumps({"summary": summary, **json.loads(numbers.read_text())}, indent=1) + "\n")
    return summary


def _run(cfg: DictConfig) -> None:
    out = Path(HydraConfig.get().runtime.output_dir)  # hydra.run.dir is ``out``
    summary = make(cfg, out)
    log.info("%s: %s (%s)", cfg.name, summary, out / f"{cfg.name}.png")


@hydra.main(config_path="pkg://gan_lab.configs", config_name="theory", version_base="1.3")
def _app(cfg: DictConfig) -> None:
    exit_on_error(_run, cfg)


def main() -> None:
    """A first argument naming a figure becomes ``name=<it>``; the rest goes to Hydra. Without a figure (and no
    Hydra flag such as ``--help``) the command says which there are, before Hydra makes a run directory."""
    args = sys.argv[1:]
    if args and args[0] in FIGURES:
        sys.argv[1] = f"name={args[0]}"
    elif not any(a.startswith(("name=", "-")) for a in args):
        print(f"gan-lab theory: name a figure first: gan-lab theory {{{','.join(FIGURES)}}} [overrides]",
              file=sys.stderr)
        raise SystemExit(1)
    _app()
