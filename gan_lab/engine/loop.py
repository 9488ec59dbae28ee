"""The one training loop, for every model family.

Each generator step is ``n_critic`` discriminator steps on fresh batches, then
one generator step on the last batch. The engine alone owns ``zero_grad``,
``backward``, gradient scaling, clipping and stepping; a task only computes
losses (``gan_lab.models.base``). Cadences are step-based.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig

from gan_lab.data.base import BatchSampler, TensorDataset
from gan_lab.engine import checkpoint
from gan_lab.engine.precision import Hardware
from gan_lab.engine.recorder import Recorder
from gan_lab.engine.signals import StopFlag
from gan_lab.engine.state import TrainState
from gan_lab.errors import NonFiniteLossError
from gan_lab.ui import ProgressReport

log = logging.getLogger(__name__)


@dataclass
class RunIO:
    """Where a run writes, the stop flag set by Ctrl-C/SIGTERM, and the evaluation run
    every ``eval.every`` steps (``state -> (name, value)``, lower is better; None when off)."""

    run_dir: Path
    recorder: Recorder
    stop: StopFlag
    evaluate: Callable[[TrainState], tuple[str, float]] | None = None

    @property
    def ckpt_dir(self) -> Path:
        return self.run_dir / "checkpoints"


def train_loop(state: TrainState, data: TensorDataset, cfg: DictConfig, hw: Hardware, io: RunIO) -> str:
    """Train until ``cfg.train.steps`` or a stop signal; returns why it ended ("done" or the signal)."""
    tc = cfg.train
    sampler = BatchSampler(len(data), tc.batch_size, cfg.seed)
    images_per_step = tc.batch_size * tc.n_critic
    pending: list[dict] = []  # per-step stats, converted to floats only at log steps (one sync)
    with ProgressReport(tc.steps, state.step, images_per_step, tc.log_every, tc.progress.value) as progress:
        while state.step < tc.steps and not io.stop.requested:
            t0 = time.perf_counter()
            try:
                stats = train_step(state, data, sampler, hw, tc)
            except NonFiniteLossError as err:
                last = io.ckpt_dir / "last.pt"
                kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written yet"
                raise NonFiniteLossError(
                    f"{err}; training stopped and {kept}. Lower the learning rates (optim.G.lr, optim.D.lr), "
                    f"clip gradients (train.clip_grad_D=...), or use hardware.precision=fp32.") from None
            step = state.step
            state.elapsed += time.perf_counter() - t0
            pending.append(stats)
            logged = step % tc.log_every == 0 or step == tc.steps
            if logged:
                state.last_losses = _mean_stats(pending)
                pending.clear()
            # the losses were synced by the finiteness checks, so reading them costs nothing
            progress.update(step, {k: float(stats[k]) for k in ("loss/G", "loss/D")}, state.last_losses)
            if logged:
                lrs = {f"lr/{n}": o.param_groups[0]["lr"] for n, o in state.optimizers.items()}
                io.recorder.scalars(step, {**state.last_losses, **lrs, "perf/images_per_sec": progress.window_rate})
            if step % tc.sample_every == 0:
                render_samples(state, data, io.recorder)
            if io.evaluate is not None and step % cfg.eval.every == 0:  # before the checkpoint, which
                evaluate(state, io)                                       # then holds the best value
            if step % tc.ckpt_every == 0:
                save_checkpoint(state, io, cfg)

    # -- end of run or stop signal: always leave a checkpoint of the last step --
    if pending:
        state.last_losses = _mean_stats(pending)
    if state.step % tc.sample_every:
        render_samples(state, data, io.recorder)
    if state.step % tc.ckpt_every:
        save_checkpoint(state, io, cfg)
    io.recorder.flush()
    return io.stop.requested or "done"


def train_step(state: TrainState, data: TensorDataset, sampler: BatchSampler, hw: Hardware,
               tc: DictConfig) -> dict:
    """One generator step: ``n_critic`` discriminator steps on fresh batches, then G on the last one.

    Returns the step's statistics as tensors (no device sync beyond the finiteness checks)."""
    task = state.task
    step = state.step + 1
    if task.begin_step(step):  # a new stage of a growing model: fresh optimizer moments
        for opt in state.optimizers.values():
            opt.state.clear()

    # -- discriminator phase --
    task.D.requires_grad_(True)
    for _ in range(tc.n_critic):
        batch = hw.batch(data.batch(sampler.indices(state.batches)))
        state.batches += 1
        with hw.autocast():
            out_d = task.d_loss(batch)
        _check_finite(out_d.loss, "loss/D", step)
        _optimizer_step(out_d.loss, state, "D", tc.clip_grad_D)
        task.after_d_step()
        for trick in state.tricks.values():  # hooks of gan_lab.tricks (WGAN weight clipping, ...)
            trick.after_d_step(task)

    # -- generator phase: D is frozen so no gradient is computed for its weights --
    task.D.requires_grad_(False)
    with hw.autocast():
        out_g = task.g_loss(batch)
    _check_finite(out_g.loss, "loss/G", step)
    _optimizer_step(out_g.loss, state, "G", tc.clip_grad_G)
    for trick in state.tricks.values():
        trick.after_g_step(task)
    for sched in state.schedulers.values():
        sched.step()
    state.step, state.images_seen = step, state.images_seen + tc.batch_size * tc.n_critic
    return {**out_d.stats, **out_g.stats}


def _optimizer_step(loss: torch.Tensor, state: TrainState, net: str, clip: float | None) -> None:
    opt, scaler = state.optimizers[net], state.scalers[net]
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if clip is not None:
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(getattr(state.task, net).parameters(), clip)
    scaler.step(opt)
    scaler.update()


def _check_finite(loss: torch.Tensor, name: str, step: int) -> None:
    """Stop before a NaN/inf reaches the weights, so the last checkpoint stays good."""
    value = loss.item()
    if not math.isfinite(value):
        raise NonFiniteLossError(f"{name} is {value} at step {step}")


def _mean_stats(pending: list[dict]) -> dict[str, float]:
    keys = pending[-1].keys()
    stacked = torch.stack([torch.stack([torch.as_tensor(p[k], dtype=torch.float32).detach().cpu() for k in keys])
                           for p in pending])
    return dict(zip(keys, stacked.mean(0).tolist()))


@torch.no_grad()
def render_samples(state: TrainState, data: TensorDataset, recorder: Recorder) -> Path:
    """Sample grid from the fixed inputs with the EMA generator when there is one.

    Rendering runs on a forked RNG and restores G's mode, so taking samples
    never changes the training trajectory (exact resume depends on it)."""
    task = state.task
    ema = state.tricks.get("ema")
    G = ema.module if ema is not None else task.G
    was_training = G.training
    devices = [task.device] if task.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        samples, nrow = task.render(state.fixed, G)
    G.train(was_training)
    if data.kind == "points":
        return recorder.points(state.step, samples, data.tensors["real"][:4096])
    return recorder.images(state.step, samples, nrow)


def evaluate(state: TrainState, io: RunIO) -> None:
    """FID now, logged as ``metrics/<name>``; a new best is kept as ``checkpoints/best.pt``."""
    name, value = io.evaluate(state)
    io.recorder.scalars(state.step, {f"metrics/{name}": value})
    best = state.best.get("value", math.inf)
    log.info("step %d: %s %.4f (best: %s)", state.step, name, value,
             "this one" if value < best else f"{best:.4f} at step {state.best['step']}")
    if value < best:
        state.best = {"metric": name, "value": value, "step": state.step}
        checkpoint.save(state.state_dict(), io.ckpt_dir / "best.pt")


def save_checkpoint(state: TrainState, io: RunIO, cfg: DictConfig) -> Path:
    """``step_XXXXXXX.pt`` (the newest ``keep_ckpts`` kept) and ``last.pt``, each written atomically."""
    last = io.ckpt_dir / "last.pt"
    if cfg.train.keep_ckpts == 0:
        checkpoint.save(state.state_dict(), last)
        return last
    numbered = io.ckpt_dir / f"step_{state.step:07d}.pt"
    checkpoint.save(state.state_dict(), numbered)
    tmp = io.ckpt_dir / ".last.pt.link"
    tmp.unlink(missing_ok=True)
    os.link(numbered, tmp)  # last.pt shares the file: no second write, and the swap is atomic
    os.replace(tmp, last)
    checkpoint.prune(io.ckpt_dir, cfg.train.keep_ckpts)
    return last
