"""Figure files of ``gan-lab theory``: matplotlib imported on first use, each figure written as
``<name>.png`` beside ``<name>.json`` (its numbers)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from gan_lab.errors import GanLabError


def figure(ncols: int = 1, width: float = 4.2, height: float = 3.4):
    """A matplotlib Figure (no pyplot: no display, no global state) with ``ncols`` axes."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise GanLabError("gan-lab theory draws its figures with matplotlib: pip install -e '.[report]'") from None
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _finite(value):
    """JSON has no infinity: inf becomes the string "inf"."""
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def save(fig, out: Path, name: str, numbers: dict) -> Path:
    """Write ``out/<name>.png`` (96 dpi: a few tens of KB) and ``out/<name>.json``; returns the PNG's path."""
    out.mkdir(parents=True, exist_ok=True)
    png = out / f"{name}.png"
    fig.savefig(png, dpi=96)
    (out / f"{name}.json").write_text(json.dumps(_finite(numbers), indent=1) + "\n")
    return png
