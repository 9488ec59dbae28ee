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
from gan_lab.data.base import TensorDataset
from gan_lab.engine import checkpoint
from gan_lab.engine.loop import RunIO, train_loop
from gan_lab.engine.precision import Hardware, resolve_device
from gan_lab.engine.recorder import Recorder
from gan_lab.engine.signals import StopFlag
from gan_lab.engine.state import TrainState
from gan_lab.errors import ConfigError, GanLabError
from gan_lab.ui import format_duration, print_table, summary_table

log = logging.getLogger("gan_lab")

# Keys a resumed run may change; everything else must match the checkpoint's config.
RESUMABLE = ("resume", "train.steps", "train.log_every", "train.sample_every", "train.ckpt_every",
             "train.keep_ckpts", "train.progress", "hardware", "eval")

config_lib.register()


def build(cfg: DictConfig, device: torch.device) -> tuple[torch.nn.Module, TensorDataset]:
    """Instantiate the dataset and the task; errors raised inside constructors surface as-is."""
    data = config_lib.instantiate_group(cfg.dataset, "dataset")
    task = config_lib.instantiate_group(cfg.model, "model", loss=config_lib.instantiate_group(cfg.loss, "loss"))
    if cfg.hardware.data_on_device and device.type == "cuda":
        size = sum(t.numel() * t.element_size() for t in data.tensors.values())
        if size < 0.25 * torch.cuda.mem_get_info(device)[0]:
            data.to(device)
    return task, data


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


def setup(cfg: DictConfig) -> tuple[TrainState, TensorDataset, Hardware]:
    """Everything a run needs, built from a validated config: seeded, on its device, at step 0."""
    config_lib.validate(cfg)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    device = resolve_device(cfg.hardware)
    hw = Hardware(cfg.hardware, device)
    task, data = build(cfg, device)
    if len(data) < cfg.train.batch_size:
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} is larger than the dataset ({len(data)} samples)")
    task.use_data(data)
    task.to(device)
    tricks = config_lib.instantiate_tricks(cfg.tricks, task)  # may change the networks: before the optimizers
    for net in (task.G, task.D):
        hw.prepare(net, cfg.hardware.compile)
    for trick in tricks.values():
        trick.setup(task)

    total = cfg.train.steps
    optimizers = {n: instantiate(cfg.optim[n])(getattr(task, n).parameters()) for n in ("G", "D")}
    schedule = config_lib.instantiate_group(cfg.schedule, "schedule")
    schedulers = {n: torch.optim.lr_scheduler.LambdaLR(o, lambda s: schedule(s, total))
                  for n, o in optimizers.items()}
    state = TrainState(task, optimizers, schedulers, hw.scalers, tricks,
                       config=OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    return state, data, hw


def run(cfg: DictConfig, run_dir: Path, overrides: list[str] | None = None) -> float:
    """Train; returns the final generator loss (the value a sweeper minimises)."""
    run_dir = Path(run_dir)
    state_in = None
    if cfg.resume:
        cfg, state_in = resumed_config(cfg, overrides or [])
    state, data, hw = setup(cfg)
    evaluator = None
    if OmegaConf.select(cfg, "eval.every") is not None:  # built first: missing weights or data stop the run here
        from gan_lab.eval import TrainingEvaluator

        evaluator = TrainingEvaluator(cfg, hw.device)
    task, total = state.task, cfg.train.steps
    if state_in is not None:
        state.load_state_dict(state_in)
        log.info("resumed from %s at step %d", checkpoint.resolve(cfg.resume), state.step)
    else:
        if (run_dir / "checkpoints" / "last.pt").exists():
            raise ConfigError(f"{run_dir} already holds a run; continue it with resume={run_dir}")
        grid = min(cfg.train.grid_size, len(data))
        state.fixed = task.fixed_inputs(data.batch(torch.arange(grid)), grid)

    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    log.info("run %s | %s on %s, %s | G %d, D %d parameters", run_dir,
             type(task).__name__, hw.device, cfg.hardware.precision.value,
             sum(p.numel() for p in task.G.parameters()), sum(p.numel() for p in task.D.parameters()))

    session_start, start_step, start_elapsed = time.perf_counter(), state.step, state.elapsed
    recorder = Recorder(run_dir, purge_step=state.step + 1 if state_in is not None else None)
    try:
        with StopFlag() as stop:
            ended = train_loop(state, data, cfg, hw, RunIO(run_dir, recorder, stop, evaluator))
    finally:
        recorder.close()

    session = time.perf_counter() - session_start
    steps_done = state.step - start_step
    rate = steps_done * cfg.train.batch_size * cfg.train.n_critic / max(state.elapsed - start_elapsed, 1e-9)
    rows = {
        "status": "finished" if ended == "done" else f"stopped by {ended}, resume with resume={run_dir}",
        "steps": f"{state.step}/{total} ({steps_done} this session)",
        "time": f"{format_duration(session)} this session, {format_duration(state.elapsed)} training in all",
        "throughput": f"{rate:.0f} images/s",
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
    try:
        return run(cfg, Path(hc.runtime.output_dir), list(hc.overrides.task))
    except GanLabError as err:
        log.error("%s", err)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
