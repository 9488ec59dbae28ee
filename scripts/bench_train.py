"""Training throughput of each model on this machine, as a share of the precision's matmul rate.

For every model config (``configs/model/*.yaml``, each on its default dataset unless overridden) it
runs the engine's own ``train_step`` under the run's process flags: a warm-up, then the median of
several timed windows. It reports images/s, the FLOPs of one training iteration (forward and backward
of every network, gradient penalties' double backward included, counted by ``torch.utils.flop_counter``),
the achieved GFLOP/s, and that as a share of the limit: the dense matmul rate of the precision the run
uses (fp32; bf16 under bf16 autocast; TF32 on CUDA when allowed; fp16), with the fp32 rate beside it.
Both matmul windows are timed after every training window, so all rates see the same machine (shared
CPUs drift by tens of percent over a minute). ``--compare`` runs every model in fp32 and in bf16 and
prints them side by side. Progressive GAN is measured at full resolution, past its growing schedule
(``MODEL_OVERRIDES``; the command line can override it).

    python scripts/bench_train.py                        # every model, hardware=auto
    python scripts/bench_train.py --compare -- train.batch_size=64
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
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from gan_lab import config as config_lib
from gan_lab.engine.loop import FiniteGuard, train_step
from gan_lab.engine.precision import process_flags, resolve_device
from gan_lab.environment import cpu_model
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


def matmul_rate(device: torch.device, dtype: torch.dtype | None = None, n: int = 2048, repeats: int = 3) -> float:
    """Dense matmul GFLOP/s in ``dtype`` (fp32 when None; TF32 where the process flags allow it) over one
    window: the machine's practical peak for that precision right now."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype or torch.float32) for _ in range(2))
    a @ b  # warm-up
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * n**3 * repeats / (time.perf_counter() - t0) / 1e9


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously), so a clock read after it is fair."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compose_train(overrides: list[str]) -> DictConfig:
    """The config ``gan-lab train <overrides>`` would run."""
    config_lib.register()
    with initialize_config_module("gan_lab.configs", version_base="1.3"):
        return compose("train", overrides=overrides)


def bench_model(model: str, overrides: list[str], warmup: int, windows: int, steps: int) -> dict:
    _, phase_overrides = MODEL_OVERRIDES.get(model, ("", []))
    cfg = compose_train([f"model={model}", "train.steps=1000000", *phase_overrides, *overrides])
    with process_flags(cfg.hardware, resolve_device(cfg.hardware)):
        return _bench(model, cfg, warmup, windows, steps)


def _bench(model: str, cfg, warmup: int, windows: int, steps: int) -> dict:
    state, data, hw = setup(cfg)
    tc, guard = cfg.train, FiniteGuard()
    for _ in range(warmup):
        train_step(state, data, hw, cfg, guard)
    guard.check(Path("."))
    batches = state.batches
    flops = count_flops(lambda: train_step(state, data, hw, cfg, guard))
    per_step = state.batches - batches  # batches drawn by one step: every phase's, for any phase list
    rates, peaks, fp32_peaks = [], [], []
    for _ in range(windows):
        sync(hw.device)
        t0 = time.perf_counter()
        for _ in range(steps):
            train_step(state, data, hw, cfg, guard)
        guard.check(Path("."))
        sync(hw.device)
        rates.append(steps / (time.perf_counter() - t0))
        peaks.append(matmul_rate(hw.device, hw.dtype))
        fp32_peaks.append(matmul_rate(hw.device) if hw.dtype is not None else peaks[-1])
    it_per_s = statistics.median(rates)
    gflops = flops * it_per_s / 1e9
    peak, fp32_peak = statistics.median(peaks), statistics.median(fp32_peaks)
    return {"model": model, "precision": _limit_name(hw), "batch": tc.batch_size * per_step,
            "img/s": it_per_s * tc.batch_size * per_step, "gflop": flops / 1e9, "gflops": gflops,
            "peak": peak, "share": gflops / peak, "fp32_peak": fp32_peak, "fp32_share": gflops / fp32_peak,
            "device": hw.device}


def _limit_name(hw) -> str:
    """The matmul precision that bounds the run: ``tf32`` for fp32 on CUDA with TF32 matmuls allowed."""
    tf32 = hw.device.type == "cuda" and hw.dtype is None and torch.backends.cuda.matmul.allow_tf32
    return "tf32" if tf32 else hw.precision


def machine() -> str:
    return f"{cpu_model()}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def show(title: str, columns: list[str], rows: list[list[str]], caption: str, markdown: bool) -> None:
    """A rich table, or a Markdown one (for the README) with the title and caption as its lines."""
    if markdown:
        print(f"{title}\n\n| {' | '.join(columns)} |\n|{'---|' * len(columns)}")
        print("\n".join(f"| {' | '.join(row)} |" for row in rows) + (f"\n\n{caption}" if caption else ""))
        return
    table = Table(title=title, caption=caption)
    for col in columns:
        table.add_column(col, justify="left" if col == "model" else "right")
    for row in rows:
        table.add_row(*row)
    Console(width=160).print(table)


def pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--warmup", type=int, default=3, help="untimed iterations first")
    parser.add_argument("--windows", type=int, default=5, help="timed windows; the median is reported")
    parser.add_argument("--steps", type=int, default=5, help="iterations per window")
    parser.add_argument("--compare", action="store_true", help="every model in fp32 and in bf16, side by side")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides applied to every model")
    args = parser.parse_args(argv)

    def bench(model: str, *extra: str) -> dict:
        return bench_model(model, [*args.overrides, *extra], args.warmup, args.windows, args.steps)

    caption = "; ".join(f"{m}: {phase} ({' '.join(o)})" for m, (phase, o) in MODEL_OVERRIDES.items()
                        if m in args.models)
    if args.compare:
        pairs = [(bench(m, "hardware.precision=fp32"), bench(m, "hardware.precision=bf16")) for m in args.models]
        rates = (f"median matmul GFLOP/s: fp32 {statistics.median(f['peak'] for f, _ in pairs):.0f}, "
                 f"bf16 {statistics.median(b['peak'] for _, b in pairs):.0f}")
        show(f"fp32 vs bf16 training on {pairs[0][0]['device']} ({machine()})",
             ["model", "batch", "fp32 images/s", "% of fp32 matmul", "bf16 images/s", "% of bf16 matmul",
              "% of fp32 matmul", "bf16 / fp32"],
             [[f["model"], str(f["batch"]), f"{f['img/s']:.1f}", pct(f["share"]), f"{b['img/s']:.1f}",
               pct(b["share"]), pct(b["fp32_share"]), f"{b['img/s'] / f['img/s']:.2f}x"] for f, b in pairs],
             "; ".join(filter(None, [rates, caption])), args.markdown)
        return
    rows = [bench(m) for m in args.models]
    show(f"gan-lab training throughput on {rows[0]['device']} ({machine()})",
         ["model", "precision", "batch", "images/s", "GFLOP/iter", "GFLOP/s", "matmul GFLOP/s", "% of matmul",
          "% of fp32 matmul"],
         [[r["model"], r["precision"], str(r["batch"]), f"{r['img/s']:.1f}", f"{r['gflop']:.2f}", f"{r['gflops']:.1f}",
           f"{r['peak']:.1f}", pct(r["share"]), pct(r["fp32_share"])] for r in rows],
         caption, args.markdown)


if __name__ == "__main__":
    main()
