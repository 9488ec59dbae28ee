"""Training throughput of each model on this machine.

For every model config (``configs/model/*.yaml``, each on its default dataset unless overridden) it
runs the engine's own ``train_step``: a warm-up, then the median of several timed windows. It
reports images/s, the FLOPs of one training iteration (forward and backward of every network,
gradient penalties' double backward included, counted by ``torch.utils.flop_counter``), the
achieved GFLOP/s, and that as a share of the dense fp32 matrix-multiply rate measured in the same
run: a matmul window is timed after every training window, so both rates see the same machine
(shared CPUs drift by tens of percent over a minute). Progressive GAN is measured at full
resolution, past its growing schedule (``MODEL_OVERRIDES``; the command line can override it).

    python scripts/bench_train.py                        # every model, hardware=auto
    python scripts/bench_train.py --models dcgan --windows 7 -- hardware=cpu model.generator.width=64
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from pathlib import Path
from importlib.resources import files

import torch
from hydra import compose, initialize_config_module
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from gan_lab import config as config_lib
from gan_lab.engine.loop import FiniteGuard, train_step
from gan_lab.train import setup

MODELS = sorted(f.name.removesuffix(".yaml") for f in (files("gan_lab.configs") / "model").iterdir()
                if f.name.endswith(".yaml"))
# The phase measured for models whose cost changes during training (before the command line's overrides):
# ProGAN with a 0/0 growing schedule trains at full size from step 1.
MODEL_OVERRIDES = {"progan": ("full resolution", ["model.stabilize_steps=0", "model.fade_steps=0"])}


class _GlobalOnly(contextlib.nullcontext):
    """Stands in for FlopCounterMode's ModuleTracker: every FLOP goes to the "Global" total only."""

    parents = {"Global"}


def count_flops(fn) -> int:
    """FLOPs of ``fn()`` by FlopCounterMode's own dispatch and formulas, without its per-module
    attribution: the ModuleTracker's backward hooks raise inside ``autograd.grad(create_graph=True)``
    (gradient penalties: "A leaf node was passed to _will_engine_execute_node"). The tracker only
    picks the buckets an op is added to, and "Global" is always one of them, so the total is unchanged."""
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _GlobalOnly()
    with counter:
        fn()
    return counter.get_total_flops()


def matmul_rate(device: torch.device, n: int = 2048, repeats: int = 3) -> float:
    """Dense fp32 matmul GFLOP/s over one window: the machine's practical peak right now."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    return 2 * n**3 * repeats / (time.perf_counter() - t0) / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_model(model: str, overrides: list[str], warmup: int, windows: int, steps: int) -> dict:
    config_lib.register()
    _, phase_overrides = MODEL_OVERRIDES.get(model, ("", []))
    with initialize_config_module("gan_lab.configs", version_base="1.3"):
        cfg = compose("train", overrides=[f"model={model}", "train.steps=1000000", *phase_overrides, *overrides])
    state, data, hw = setup(cfg)
    tc, guard = cfg.train, FiniteGuard()
    for _ in range(warmup):
        train_step(state, data, hw, cfg, guard)
    guard.check(Path("."))
    batches = state.batches
    flops = count_flops(lambda: train_step(state, data, hw, cfg, guard))
    per_step = state.batches - batches  # batches drawn by one step: every phase's, for any phase list
    rates, peaks = [], []
    for _ in range(windows):
        _sync(hw.device)
        t0 = time.perf_counter()
        for _ in range(steps):
            train_step(state, data, hw, cfg, guard)
        guard.check(Path("."))
        _sync(hw.device)
        rates.append(steps / (time.perf_counter() - t0))
        peaks.append(matmul_rate(hw.device))
    it_per_s = statistics.median(rates)
    return {"model": model, "batch": tc.batch_size * per_step, "img/s": it_per_s * tc.batch_size * per_step,
            "gflop": flops / 1e9, "gflops": flops * it_per_s / 1e9, "peak": statistics.median(peaks),
            "device": hw.device}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--warmup", type=int, default=3, help="untimed iterations first")
    parser.add_argument("--windows", type=int, default=5, help="timed windows; the median is reported")
    parser.add_argument("--steps", type=int, default=5, help="iterations per window")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides applied to every model")
    args = parser.parse_args()

    rows = [bench_model(m, args.overrides, args.warmup, args.windows, args.steps) for m in args.models]
    table = Table(title=f"gan-lab training throughput on {rows[0]['device']} ({torch.get_num_threads()} threads)")
    for col in ("model", "batch", "images/s", "GFLOP/iter", "GFLOP/s", "fp32 matmul GFLOP/s", "% of matmul"):
        table.add_column(col, justify="right" if col != "model" else "left")
    for r in rows:
        table.add_row(r["model"], str(r["batch"]), f"{r['img/s']:.0f}", f"{r['gflop']:.2f}",
                      f"{r['gflops']:.1f}", f"{r['peak']:.1f}", f"{100 * r['gflops'] / r['peak']:.0f}%")
    table.caption = "; ".join(f"{m}: {phase} ({' '.join(o)})" for m, (phase, o) in MODEL_OVERRIDES.items()
                              if m in args.models)
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
