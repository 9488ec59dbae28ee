"""``gan-lab train``: turn a composed config into a training run.

Also runnable as ``python -m gan_lab.train [overrides]``. ``main`` is the Hydra
app; :func:`run` does the work and can be called with a composed config (tests).
"""

from __future__ import annotations

import contextlib
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
from gan_lab import environment
from gan_lab.engine import checkpoint, distributed
from gan_lab.engine.loop import RunIO, train_loop
from gan_lab.engine.build import build_task
from gan_lab.engine.distributed import Dist
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


def resumed_config(cfg: DictConfig, overrides: list[str], same_command: bool = False) -> tuple[DictConfig, dict]:
    """The stored config of the checkpoint in ``cfg.resume``, with the allowed command-line changes.

    ``same_command`` (resume=auto): the command is the run's own (a requeued job), so it may repeat any
    override as long as its config is the checkpoint's outside RESUMABLE."""
    state = checkpoint.load(cfg.resume)
    stored = OmegaConf.merge(OmegaConf.structured(config_lib.TrainAppSchema), state["config"])
    if same_command:
        _check_same_run(cfg, stored)
        overrides = [item for item in overrides if _resumable(_override_key(item))]
    for item in overrides:
        key = _override_key(item)
        if not _resumable(key):
            raise ConfigError(
                f"resume continues the checkpoint's own config; '{item}' would change it. "
                f"Only {', '.join(RESUMABLE)} can be given with resume=")
        OmegaConf.update(stored, key, OmegaConf.select(cfg, key), merge=False)
    stored.resume = cfg.resume
    OmegaConf.set_struct(stored, True)
    return stored, state


def _override_key(item: str) -> str:
    return item.lstrip("+~").split("=", 1)[0]


def _resumable(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in RESUMABLE)


def _check_same_run(cfg: DictConfig, stored: DictConfig) -> None:
    """Every value the command's config sets itself must be the checkpoint's (RESUMABLE keys aside).
    Interpolations are skipped: they follow other keys, and the checkpoint pins some of them on purpose
    (the schedule's horizon stays that of the first session)."""
    ours = _leaves(OmegaConf.to_container(cfg, resolve=False, enum_to_str=True))
    theirs = _leaves(OmegaConf.to_container(stored, resolve=False, enum_to_str=True))
    derived = [key for key, value in ours.items() if isinstance(value, str) and "${" in value]
    for key in sorted(ours.keys() | theirs.keys()):
        if _resumable(key) or any(key == d or key.startswith(d + ".") for d in derived):
            continue
        if ours.get(key, "<unset>") != theirs.get(key, "<unset>"):
            raise ConfigError(
                f"resume=auto: {cfg.resume} holds a run with {key}={theirs.get(key, '<unset>')!r}, but this "
                f"command sets {ours.get(key, '<unset>')!r}; continue that run with resume={cfg.resume}, or give "
                f"this one another directory")


def _leaves(node, prefix: str = "") -> dict:
    """Dotted key -> value of every leaf of a plain container (list items by index; empty ones are leaves)."""
    if not node or not isinstance(node, (dict, list)):
        return {prefix: node}
    items = node.items() if isinstance(node, dict) else enumerate(node)
    return {k: v for key, value in items for k, v in _leaves(value, f"{prefix}.{key}" if prefix else str(key)).items()}


def setup(cfg: DictConfig, dist: Dist = Dist()) -> tuple[TrainState, object, Hardware]:
    """Everything a run needs, built from a validated config: seeded, on its device, at step 0 (alike on
    every rank of a data-parallel run ``dist``)."""
    config_lib.validate(cfg)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    device = resolve_device(cfg.hardware)
    hw = Hardware(cfg.hardware, device)
    data = load_data(cfg, device)
    if len(data) < cfg.train.batch_size:
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} is larger than the dataset ({len(data)} samples)")
    def prepare(net: torch.nn.Module) -> None:
        if cfg.hardware.sync_bn and dist.world > 1:  # in place: a player is never a BatchNorm layer itself
            torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
        hw.prepare(net, cfg.hardware.compile)

    task, tricks = build_task(cfg, device, data, prepare=prepare)
    players = task.players()
    missing = [name for name in players if cfg.optim.get(name) is None]
    if missing:
        raise ConfigError(f"optim.{missing[0]}: {type(task).__name__} trains the players {list(players)}, "
                          f"each needs an optimizer under optim.<player>")
    optimizers = {n: hw.optimizer(instantiate(cfg.optim[n]), net.parameters()) for n, net in players.items()}
    schedule = config_lib.instantiate_group(cfg.schedule, "schedule")
    schedulers = {n: torch.optim.lr_scheduler.LambdaLR(o, schedule) for n, o in optimizers.items()}
    distributed.seed_rank(dist, cfg.seed)
    state = TrainState(task, optimizers, schedulers, hw.scalers(players), tricks,
                       config=OmegaConf.to_container(cfg, resolve=True, enum_to_str=True), dist=dist)
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
    auto = cfg.resume == config_lib.AUTO_RESUME
    if auto:  # a requeued job re-runs its own command: continue its run if it has one, else start it
        cfg.resume = str(run_dir) if checkpoint.newest(run_dir / "checkpoints") else None
    if cfg.resume:
        cfg, state_in = resumed_config(cfg, overrides or [], same_command=auto)
    config_lib.validate(cfg)
    dist = distributed.init(cfg.hardware)  # one process unless launched as several (torchrun, Slurm)
    try:
        distributed.check(cfg, dist.world)
        with process_flags(cfg.hardware, resolve_device(cfg.hardware)):
            return _train(cfg, run_dir, state_in, dist)
    except (OSError, OutputError) as err:  # disk full, read-only directory, file size limit
        what = err if isinstance(err, OutputError) else f"{err.filename or 'a file'}: {checkpoint.os_reason(err)}"
        raise OutputError(f"{what}; the run stopped and {checkpoint.kept(run_dir / 'checkpoints')}") from None
    finally:
        dist.shutdown()


def _train(cfg: DictConfig, run_dir: Path, state_in: dict | None, dist: Dist = Dist()) -> float:
    state, data, hw = setup(cfg, dist)
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

    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
        environment.record(run_dir, hw.device)  # versions, device, git commit: for `gan-lab report`
    log.info("run %s | %s on %s, %s (%s) | %s parameters", run_dir, type(task).__name__, hw.device, hw.precision,
             hw.why,
             ", ".join(f"{n} {sum(p.numel() for p in net.parameters())}" for n, net in task.players().items()))

    session_start, start_step, start_elapsed, start_batches = time.perf_counter(), state.step, state.elapsed, state.batches
    # rank 0 alone writes TensorBoard events and samples
    recorder = Recorder(run_dir, purge_step=state.step + 1 if state_in is not None else None) if dist.is_main else None
    task.shard = dist.shard  # training draws: each rank its slice of one process's latents
    with recorder or contextlib.nullcontext(), StopFlag() as stop:
        ended = train_loop(state, data, cfg, hw, RunIO(run_dir, recorder, stop, evaluator))
    if not dist.is_main:
        return float(state.last_losses.get("loss/G", float("nan")))

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
    run_dir, overrides = Path(hc.runtime.output_dir), list(hc.overrides.task)
    if distributed.env_rank() > 0:
        logging.getLogger().setLevel(logging.CRITICAL)  # rank 0 speaks for the run, errors included
    elif cfg.hardware.nproc > 1 and not distributed.launched():  # hardware=ddp: start the ranks
        exit_on_error(distributed.check, cfg, cfg.hardware.nproc)
        status = distributed.launch(cfg.hardware.nproc, run_dir, [*overrides, "hydra.output_subdir=null"])
        if status:
            raise SystemExit(status)
        return float("nan")
    return exit_on_error(run, cfg, run_dir, overrides)


if __name__ == "__main__":
    main()
