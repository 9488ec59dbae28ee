"""``gan-lab train``: turn a composed config into a training run.

Also runnable as ``python -m gan_lab.train [overrides]``. ``main`` is the Hydra
app; :func:`run` does the work and can be called with a composed config (tests).
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from gan_lab import config as config_lib
from gan_lab.engine import checkpoint
from gan_lab.engine.loop import RunIO, train_loop
from gan_lab.engine.build import build_task
from gan_lab.engine.precision import Hardware, process_flags, resolve_device
from gan_lab.engine.recorder import Recorder
from gan_lab.engine.signals import StopFlag
from gan_lab.engine.state import TrainState
from gan_lab.errors import ConfigError, OutputError, exit_on_error
from gan_lab.ui import format_duration, format_rate, print_table, summary_table

log = logging.getLogger("gan_lab")

# Keys a resumed run may change; everything else must match the checkpoint's config.
RESUMABLE = ("resume", "train.steps", "train.log_every", "train.sample_every", "train.ckpt_every",
             "train.keep_ckpts", "train.progress", "hardware", "eval")

config_lib.register()


def load_data(cfg: DictConfig, device: torch.device):
    """The training dataset, moved onto the GPU when it fits in a quarter of the free memory."""
    data = config_lib.instantiate_group(cfg.dataset, "dataset")
    if cfg.hardware.data_on_device and device.type == "cuda":
        size = sum(t.numel() * t.element_size() for t in data.tensors.values())
        if size < 0.25 * torch.cuda.mem_get_info(device)[0]:
            data.to(device)
    return data


def resumed_config(cfg: DictConfig, overrides: list[str]) -> tuple[DictConfig, dict]:
    """The stored config of the checkpoint in ``cfg.resume``, with the allowed command-line changes."""
    state = checkpoint.load(cfg.resume)
    stored = OmegaConf.merge(OmegaConf.structured(config_lib.TrainAppSchema), state["config"])
    for item in overrides:
        key = item.lstrip("+~").split("=", 1)[0]
        if not any(key == k or key.startswith(k + ".") for k in RESUMABLE):
            raise ConfigError(
                f"resume continues the checkpoint's own config; '{item}' would change it. "
                f"Only {', '.join(RESUMABLE)} can be given with resume=")
        OmegaConf.update(stored, key, OmegaConf.select(cfg, key), merge=False)
    stored.resume = cfg.resume
    OmegaConf.set_struct(stored, True)
    return stored, state


def setup(cfg: DictConfig) -> tuple[TrainState, object, Hardware]:
    """Everything a run needs, built from a validated config: seeded, on its device, at step 0."""
    config_lib.validate(cfg)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    device = resolve_device(cfg.hardware)
    hw = Hardware(cfg.hardware, device)
    data = load_data(cfg, device)
    if len(data) < cfg.train.batch_size:
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} is larger than the dataset ({len(data)} samples)")
    task, tricks = build_task(cfg, device, data, prepare=lambda net: hw.prepare(net, cfg.hardware.compile))
    players = task.players()
    missing = [name for name in players if cfg.optim.get(name) is None]
    if missing:
        raise ConfigError(f"optim.{missing[0]}: {type(task).__name__} trains the players {list(players)}, "
                          f"each needs an optimizer under optim.<player>")
    optimizers = {n: instantiate(cfg.optim[n])(net.parameters()) for n, net in players.items()}
    schedule = config_lib.instantiate_group(cfg.schedule, "schedule")
    schedulers = {n: torch.optim.lr_scheduler.LambdaLR(o, schedule) for n, o in optimizers.items()}
    state = TrainState(task, optimizers, schedulers, hw.scalers(players), tricks,
                       config=OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    return state, data, hw


def grid_size(cfg: DictConfig, data) -> int:
    """Examples in the sample grid: ``train.grid_size``, at most the dataset, and at most 2^20 pixels
    of examples (16 at 256 px), so grids stay readable and checkpoints small."""
    pixels = getattr(data, "image_size", 1) ** 2
    return max(1, min(cfg.train.grid_size, len(data), 2**20 // pixels))


def run(cfg: DictConfig, run_dir: Path, overrides: list[str] | None = None) -> float:
    """Train; returns the final generator loss (the value a sweeper minimises)."""
    run_dir = Path(run_dir)
    state_in = None
    if cfg.resume:
        cfg, state_in = resumed_config(cfg, overrides or [])
    config_lib.validate(cfg)
    with process_flags(cfg.hardware, resolve_device(cfg.hardware)):
        try:
            return _train(cfg, run_dir, state_in)
        except (OSError, OutputError) as err:  # disk full, read-only directory, file size limit
            what = err if isinstance(err, OutputError) else f"{err.filename or 'a file'}: {checkpoint.os_reason(err)}"
            raise OutputError(f"{what}; the run stopped and {checkpoint.kept(run_dir / 'checkpoints')}") from None


def _train(cfg: DictConfig, run_dir: Path, state_in: dict | None) -> float:
    state, data, hw = setup(cfg)
    evaluator = None
    if OmegaConf.select(cfg, "eval.every") is not None:  # built first: missing weights or data stop the run here
        from gan_lab.metrics.evaluate import TrainingEvaluator

        evaluator = TrainingEvaluator(cfg, state.task, hw.device)
    task, total = state.task, cfg.train.steps
    if state_in is not None:
        state.load_state_dict(state_in, data)
        log.info("resumed from %s at step %d", checkpoint.resolve(cfg.resume), state.step)
    else:
        if checkpoint.newest(run_dir / "checkpoints") is not None:
            raise ConfigError(f"{run_dir} already holds a run; continue it with resume={run_dir}")
        state.draw_fixed(data, grid_size(cfg, data))

    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    log.info("run %s | %s on %s, %s | %s parameters", run_dir, type(task).__name__, hw.device,
             cfg.hardware.precision.value,
             ", ".join(f"{n} {sum(p.numel() for p in net.parameters())}" for n, net in task.players().items()))

    session_start, start_step, start_elapsed, start_batches = time.perf_counter(), state.step, state.elapsed, state.batches
    with Recorder(run_dir, purge_step=state.step + 1 if state_in is not None else None) as recorder, \
            StopFlag() as stop:
        ended = train_loop(state, data, cfg, hw, RunIO(run_dir, recorder, stop, evaluator))

    session = time.perf_counter() - session_start
    steps_done = state.step - start_step
    rate = (state.batches - start_batches) * cfg.train.batch_size / max(state.elapsed - start_elapsed, 1e-9)
    rows = {
        "status": "finished" if ended == "done" else f"stopped by {ended}, resume with resume={run_dir}",
        "steps": f"{state.step}/{total} ({steps_done} this session)",
        "time": f"{format_duration(session)} this session, {format_duration(state.elapsed)} training in all",
        "throughput": f"{format_rate(rate)} images/s",
        **{k: f"{v:.4f}" for k, v in state.last_losses.items()},
        **({f"best {state.best['metric']}": f"{state.best['value']:.4f} at step {state.best['step']} "
                                             f"({run_dir / 'checkpoints' / 'best.pt'})"} if state.best else {}),
        "checkpoint": str(run_dir / "checkpoints" / "last.pt"),
        "samples": str(run_dir / "samples"),
        "tensorboard": f"tensorboard --logdir {run_dir / 'tb'}",
    }
    print_table(summary_table(rows))
    return float(state.last_losses.get("loss/G", float("nan")))


@hydra.main(config_path="pkg://gan_lab.configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float:
    hc = HydraConfig.get()
    return exit_on_error(run, cfg, Path(hc.runtime.output_dir), list(hc.overrides.task))


if __name__ == "__main__":
    main()
