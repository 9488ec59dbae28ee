"""Training throughput of each model on this machine.

For every model (on its default dataset unless overridden) it runs the engine's own
``train_step``: a warm-up, then the median of several timed windows. It reports
images/s, the FLOPs of one training iteration (forward and backward of every
network, counted by ``torch.utils.flop_counter``), the achieved GFLOP/s, and that
as a share of the dense fp32 matrix-multiply rate measured in the same run: a
matmul window is timed after every training window, so both rates see the same
machine (shared CPUs drift by tens of percent over a minute).

    python scripts/bench_train.py                        # every model, hardware=auto
    python scripts/bench_train.py --models dcgan --windows 7 -- hardware=cpu model.generator.width=64
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from hydra import compose, initialize_config_module
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from gan_lab import config as config_lib
from gan_lab.data.base import BatchSampler
from gan_lab.engine.loop import train_step
from gan_lab.train import setup

MODELS = ["gan", "dcgan", "cgan", "pix2pix"]


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
    with initialize_config_module("gan_lab.configs", version_base="1.3"):
        cfg = compose("train", overrides=[f"model={model}", "train.steps=1000000", *overrides])
    state, data, hw = setup(cfg)
    tc = cfg.train
    sampler = BatchSampler(len(data), tc.batch_size, cfg.seed)
    for _ in range(warmup):
        train_step(state, data, sampler, hw, tc)
    with FlopCounterMode(display=False) as counter:
        train_step(state, data, sampler, hw, tc)
    flops = counter.get_total_flops()
    rates, peaks = [], []
    for _ in range(windows):
        _sync(hw.device)
        t0 = time.perf_counter()
        for _ in range(steps):
            train_step(state, data, sampler, hw, tc)
        _sync(hw.device)
        rates.append(steps / (time.perf_counter() - t0))
        peaks.append(matmul_rate(hw.device))
    it_per_s = statistics.median(rates)
    return {"model": model, "batch": tc.batch_size * tc.n_critic, "img/s": it_per_s * tc.batch_size * tc.n_critic,
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
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
