"""The ``gan-lab`` command: a small dispatcher in front of one Hydra app per subcommand.

``gan-lab train model=pix2pix`` runs the Hydra app in ``gan_lab.train`` with
``sys.argv = ["gan-lab", "model=pix2pix"]``, so everything after the command
(overrides, ``-m``, ``--cfg job``, ``--help``) is Hydra's.
"""

from __future__ import annotations

import importlib
import os
import sys

from gan_lab import __version__

COMMANDS = {
    "train": ("gan_lab.train", "train a GAN from a composed config (model=, dataset=, loss=, tricks=, hardware=)"),
    "eval": ("gan_lab.eval", "metrics of a checkpoint against real data: FID, IS, KID, precision/recall (ckpt=)"),
    "sample": ("gan_lab.sample", "sample grids, interpolations or folder translations from a checkpoint (ckpt=)"),
    "project": ("gan_lab.project",
                "project images onto a generator's manifold, edit them with a colour brush, interpolate (iGAN)"),
    "anomaly": ("gan_lab.anomaly", "AnoGAN / f-AnoGAN anomaly scores and AUROC of a one-class checkpoint (ckpt=)"),
    "report": ("gan_lab.report", "one self-contained HTML page (and markdown) of a run or a sweep (path=)"),
    "theory": ("gan_lab.theory",
               "figures of the theory behind the losses: optimal_d, divergences, saturation, xy_game, mode_collapse"),
    "train-classifier": ("gan_lab.train_classifier",
                         "train and cache the classifier behind eval.features=classifier (dataset=)"),
    "train-text-encoder": ("gan_lab.train_text_encoder",
                           "train and cache the text encoder of dataset=shapes_text (encoder=trained)"),
}


def _usage() -> str:
    lines = ["usage: gan-lab <command> [hydra overrides ...]", "", "commands:"]
    width = max(map(len, COMMANDS))
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "`gan-lab <command> --help` shows a command's config groups and options.",
              "examples: gan-lab train | gan-lab train model=pix2pix | gan-lab train -m loss=minimax,nonsaturating"]
    return "\n".join(lines)


def _run(name: str, args: list[str]) -> None:
    sys.argv = [sys.argv[0], *args]  # Hydra sees only its own arguments
    importlib.import_module(COMMANDS[name][0]).main()


def _completion(args: list[str]) -> None:
    """Hydra's bash completion calls ``gan-lab -sc query=bash`` with the line in COMP_LINE."""
    words = os.environ.get("COMP_LINE", "").split(" ")
    if len(words) > 2 and words[1] in COMMANDS:  # `gan-lab train mod<TAB>`: let that app complete
        os.environ["COMP_LINE"] = " ".join([words[0], *words[2:]])
        return _run(words[1], args)
    if any(a.startswith("query=") for a in args):  # `gan-lab tr<TAB>`: complete the command name
        prefix = words[1] if len(words) > 1 else ""
        print(" ".join(n for n in COMMANDS if n.startswith(prefix)))
        return None
    return _run("train", args)  # install/uninstall: registers the `gan-lab` executable


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] in (["-sc"], ["--shell-completion"]):
        return _completion(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        sys.exit(0 if argv else 2)
    if argv[0] in ("-V", "--version"):
        print(f"gan-lab {__version__}")
        return None
    if argv[0] not in COMMANDS:
        print(f"gan-lab: unknown command {argv[0]!r}\n\n{_usage()}", file=sys.stderr)
        sys.exit(2)
    return _run(argv[0], argv[1:])
