"""The one training loop, for every model family.

Each step runs the task's phases (``task.phases(step)``, ``gan_lab.models.base.Phase``):
by default ``n_critic`` discriminator steps on fresh batches, then one generator step
on the last one. During a phase every other player is frozen, as in stylegan2-ada's
phase loop. The engine alone owns ``zero_grad``, ``backward``, gradient scaling,
clipping and stepping; a task only computes losses. Losses stay on the device:
their finiteness is checked at the log cadence and before every checkpoint.

In a data-parallel run (``state.dist``, gan_lab.engine.distributed) every rank runs this loop in step:
gradients are averaged in :func:`_optimizer_step`, each step's stats over the ranks, the ranks agree on
stopping every step and on non-finite losses at each check, and rank 0 alone writes and evaluates while
the others wait.
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig

from gan_lab.engine import checkpoint
from gan_lab.engine.distributed import Dist
from gan_lab.engine.inference import inference
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


class FiniteGuard:
    """Collects each phase's loss on the device; :meth:`check` (one sync) raises naming the first
    non-finite one and its step, on every rank when any rank has one. Checked at the log cadence and
    before anything is written."""

    def __init__(self, dist: Dist = Dist()):
        self.pending: list[tuple[int, str, torch.Tensor]] = []
        self.dist = dist

    def add(self, loss: torch.Tensor, name: str, step: int) -> None:
        self.pending.append((step, name, loss.detach().float()))

    def check(self, ckpt_dir: Path) -> None:
        pending, self.pending = self.pending, []
        if not pending:
            return
        values = self.dist.sum(torch.stack([value for *_, value in pending]))  # non-finite where any rank's is
        bad = (~torch.isfinite(values)).nonzero()
        if len(bad) == 0:
            return
        (step, name, _), value = pending[int(bad[0])], values[int(bad[0])]
        raise NonFiniteLossError(
            f"{name} is {float(value)} at step {step}; training stopped and {checkpoint.kept(ckpt_dir)}. Lower the "
            f"learning rates (optim.<player>.lr), clip gradients (train.clip_grad.<player>=...), or use "
            f"hardware.precision=fp32.")


def train_loop(state: TrainState, data, cfg: DictConfig, hw: Hardware, io: RunIO) -> str:
    """Train until ``cfg.train.steps`` or a stop signal; returns why it ended ("done" or the signal)."""
    tc, main = cfg.train, state.dist.is_main
    guard = FiniteGuard(state.dist)
    pending: list[dict] = []  # per-step stats, converted to floats only at log steps (one sync)
    saved = None  # the step of this session's last checkpoint
    with ProgressReport(tc.steps, state.step, state.batches * tc.batch_size, tc.log_every,
                        tc.progress.value if main else "plain") as progress:
        while state.step < tc.steps:
            if state.dist.agree(io.stop.requested is not None):  # any rank's signal stops them all here
                io.stop.requested = io.stop.requested or "a signal to another rank"
                break
            t0 = time.perf_counter()
            stats = train_step(state, data, hw, cfg, guard)
            step = state.step
            state.elapsed += time.perf_counter() - t0
            pending.append(stats)
            logged = step % tc.log_every == 0 or step == tc.steps
            if logged:
                guard.check(io.ckpt_dir)
                state.last_losses = _mean_stats(pending)
                pending.clear()
            progress.update(step, state.batches * tc.batch_size, state.last_losses if logged else None)
            if logged and main:
                lrs = {f"lr/{n}": o.param_groups[0]["lr"] for n, o in state.optimizers.items()}
                io.recorder.scalars(step, {**state.last_losses, **lrs, "perf/images_per_sec": progress.window_rate})
            if step % tc.sample_every == 0 and main:
                render_samples(state, io.recorder)
            if io.evaluate is not None and step % cfg.eval.every == 0:  # before the checkpoint, which
                guard.check(io.ckpt_dir)                                  # then holds the best value
                evaluate(state, io)
            if step % tc.ckpt_every == 0:
                guard.check(io.ckpt_dir)
                save_checkpoint(state, io, cfg)
                saved = step

    # -- end of run or stop signal: always leave a checkpoint of the last step --
    guard.check(io.ckpt_dir)
    if pending:
        state.last_losses = _mean_stats(pending)
    if state.step % tc.sample_every and main:
        render_samples(state, io.recorder)
    if saved != state.step:  # also a resume with no step left: a kill may have come before last.pt was linked
        save_checkpoint(state, io, cfg)
    if main:
        io.recorder.flush()
    return io.stop.requested or "done"


def train_step(state: TrainState, data, hw: Hardware, cfg: DictConfig, guard: FiniteGuard) -> dict:
    """One step: the task's phases in order, each player trained while the others are frozen.

    Returns the step's statistics as tensors (no device sync)."""
    task, tc = state.task, cfg.train
    step = state.step + 1
    if task.begin_step(step):  # a new stage of a growing model: fresh optimizer moments
        for opt in state.optimizers.values():
            opt.state.clear()
    for trick in state.tricks.values():
        trick.begin_step(task, step)
    players = task.players()
    stats, batch, carry = {}, None, None
    for phase in task.phases(step, tc.n_critic):
        if step % phase.interval:
            continue
        for repeat in range(phase.repeats):
            if phase.fresh_batch or batch is None:
                batch = hw.batch(data.batch_at(state.batches, tc.batch_size, cfg.seed, state.dist.shard))
                state.batches += 1
            # -- freeze every other player; the last repeat keeps the graph it hands off --
            keep = phase.hand_off if repeat == phase.repeats - 1 else None
            for name, net in players.items():
                net.requires_grad_(name in (phase.player, keep))
            with hw.autocast():
                out = phase.loss(batch, carry)
            guard.add(out.loss, f"loss/{phase.player}", step)
            _optimizer_step(out.loss, state, phase.player, players[phase.player], tc.clip_grad.get(phase.player))
            for trick in state.tricks.values():  # hooks of gan_lab.tricks (weight clipping, EMA, ...)
                trick.after_phase(task, phase.player, step)
        carry = out.carry
        stats.update(out.stats)
    for net in players.values():
        net.requires_grad_(True)
    with warnings.catch_warnings():
        # A player without a phase yet (SRGAN's D while G pretrains) has not stepped its optimizer; its rate
        # still follows the step, which is what torch's "scheduler before optimizer" warning is about.
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
        for sched in state.schedulers.values():
            sched.step()
    stats = state.dist.mean(stats)  # end_step's task state (BEGAN's k) must see the same numbers on every rank
    task.end_step(step, stats)
    state.step = step
    return stats


def _optimizer_step(loss: torch.Tensor, state: TrainState, player: str, net: torch.nn.Module,
                    clip: float | None) -> None:
    opt, scaler = state.optimizers[player], state.scalers[player]
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    state.dist.all_reduce_grads(net.parameters())  # before clipping: the norm is the global batch's
    if clip is not None:
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
    scaler.step(opt)
    scaler.update()


def _mean_stats(pending: list[dict]) -> dict[str, float]:
    """Mean of each statistic over the steps that reported it (a lazy term reports every k steps)."""
    sums: dict[str, list] = {}
    for stats in pending:
        for key, value in stats.items():
            sums.setdefault(key, []).append(torch.as_tensor(value, dtype=torch.float32).detach())
    keys = list(sums)
    means = torch.stack([torch.stack(sums[k]).mean() for k in keys]).cpu().tolist()
    return dict(zip(keys, means))


def render_samples(state: TrainState, recorder: Recorder) -> list[Path]:
    """The task's visuals of the fixed inputs, from the averaged generator when the run keeps one.

    :func:`inference` forks the RNGs and restores every module's mode, so taking samples
    never changes the training trajectory (exact resume depends on it)."""
    task = state.task
    G = task.sampling_generator()
    with inference(task, G):
        visuals = task.visuals(state.fixed, G)
    return [recorder.visual(state.step, name, visual) for name, visual in visuals.items()]


def evaluate(state: TrainState, io: RunIO) -> None:
    """FID now (on rank 0, the others waiting), logged as ``metrics/<name>``; a new best is kept as
    ``checkpoints/best.pt``."""
    name, value = state.dist.broadcast(io.evaluate(state) if state.dist.is_main else None)
    best = state.best.get("value", math.inf)
    if state.dist.is_main:
        io.recorder.scalars(state.step, {f"metrics/{name}": value})
        log.info("step %d: %s %.4f (best: %s)", state.step, name, value,
                 "this one" if value < best else f"{best:.4f} at step {state.best['step']}")
    if value < best:
        state.best = {"metric": name, "value": value, "step": state.step}
        write(state, io.ckpt_dir / "best.pt")


def write(state: TrainState, path: Path) -> None:
    """``state.state_dict()`` (a collective in a data-parallel run) written by rank 0, the others waiting."""
    snapshot = state.state_dict()
    if state.dist.is_main:
        checkpoint.save(snapshot, path)
    state.dist.barrier()


def save_checkpoint(state: TrainState, io: RunIO, cfg: DictConfig) -> Path:
    """``step_XXXXXXX.pt`` (the newest ``keep_ckpts`` kept) and ``last.pt``, each written atomically."""
    last = io.ckpt_dir / "last.pt"
    if cfg.train.keep_ckpts == 0:
        write(state, last)
        return last
    numbered = io.ckpt_dir / f"step_{state.step:07d}.pt"
    write(state, numbered)
    if not state.dist.is_main:
        return last
    tmp = io.ckpt_dir / ".last.pt.link"
    tmp.unlink(missing_ok=True)
    os.link(numbered, tmp)  # last.pt shares the file: no second write, and the swap is atomic
    os.replace(tmp, last)
    checkpoint.prune(io.ckpt_dir, cfg.train.keep_ckpts)
    return last
