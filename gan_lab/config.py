"""Config schema, resolvers and the checks that run before any work starts.

The schema (registered in Hydra's ConfigStore as ``train_schema``) types the
engine keys, so ``train.batch_size=abc`` or ``hardware.precision=fp8`` fail
with OmegaConf's message naming the key. :func:`validate` adds the checks a
type cannot express (ranges, image sizes, model/dataset compatibility) and
raises :class:`~gan_lab.errors.ConfigError` naming the key.
"""

from __future__ import annotations

import enum
import os
from datetime import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from gan_lab.engine import checkpoint, distributed
from gan_lab.errors import ConfigError, GanLabError


class Precision(str, enum.Enum):
    auto = "auto"  # bf16 where the CPU has native bf16 dot products, else fp32 (engine/precision.py)
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class ProgressMode(str, enum.Enum):
    auto = "auto"  # live bar on an interactive terminal, plain lines otherwise
    bar = "bar"
    plain = "plain"


@dataclass
class TrainSchema:
    steps: int = 2000  # generator steps
    batch_size: int = 64
    n_critic: int = 1  # discriminator steps per generator step
    # max global grad norm per player (train.clip_grad.D=1.0), null = off
    clip_grad: Dict[str, Optional[float]] = field(default_factory=lambda: {"G": None, "D": None})
    log_every: int = 50
    sample_every: int = 500
    ckpt_every: int = 500
    keep_ckpts: int = 2  # numbered checkpoints kept besides last.pt
    grid_size: int = 64  # samples in each grid
    progress: ProgressMode = ProgressMode.auto


@dataclass
class HardwareSchema:
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: Precision = Precision.fp32
    fused_optim: bool = True  # optimizers with a fused kernel (Adam, AdamW, SGD) use it unless optim sets fused
    tf32: bool = True  # TF32 matmuls/convolutions on Ampere+ GPUs
    channels_last: bool = False
    compile: bool = False  # torch.compile the networks
    data_on_device: bool = True  # keep decoded data on the GPU when it fits
    flush_denormal: bool = True  # CPU: treat subnormal floats as 0 (they make x86 arithmetic many times slower)
    nproc: int = 1  # processes `gan-lab train` starts on this node (hardware=ddp); torchrun's own count wins
    sync_bn: bool = False  # data-parallel CUDA runs: BatchNorm statistics over the global batch (SyncBatchNorm)
    timeout_min: int = 60  # how long ranks wait for each other (rank 0's evaluation) before failing


@dataclass
class TrainAppSchema:
    seed: int = 0
    resume: Optional[str] = None  # run directory or checkpoint to continue; auto: this run directory's, if any
    train: TrainSchema = field(default_factory=TrainSchema)
    hardware: HardwareSchema = field(default_factory=HardwareSchema)
    model: Any = None
    loss: Any = None
    dataset: Any = None
    optim: Any = None
    schedule: Any = None
    tricks: Any = field(default_factory=dict)
    eval: Any = None  # FID during training (configs/eval/training.yaml)


AUTO_RESUME = "auto"  # resume=auto: continue the run directory's own checkpoint if it has one, else start


def run_dir_for(resume: Optional[str], default: str) -> str:
    """``hydra.run.dir``: a resumed run keeps writing into its own directory (resume=auto names none)."""
    path = Path(resume).expanduser().resolve() if resume and resume != AUTO_RESUME else None
    if path is None or not path.exists():  # nothing to continue: the error comes later, without stray dirs
        return default
    if path.is_file():  # <run>/checkpoints/<name>.pt
        return str(path.parent.parent)
    return str(path)


def hydra_subdir(resume: Optional[str], output_dir: str) -> Optional[str]:
    """``hydra.output_subdir``: a resumed run keeps the first session's .hydra/ and records its own
    invocation beside it (resume=auto: when the run directory holds a checkpoint to continue); in a
    data-parallel run only rank 0 writes it (and the log file)."""
    if distributed.env_rank() or not writable(Path(output_dir)):
        return None
    if resume == AUTO_RESUME and checkpoint.newest(Path(output_dir) / "checkpoints") is None:
        resume = None
    return f".hydra/resumed-{datetime.now():%Y-%m-%d_%H-%M-%S}" if resume else ".hydra"


def writable(path: Path) -> bool:
    """Whether ``path`` (or, where it does not exist yet, its nearest ancestor) can be written: a read-only
    run directory is then left to gan-lab's own first write, which names the file in one line, instead of
    failing inside Hydra's log or .hydra/ setup with a traceback."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return os.access(path, os.W_OK)


def log_file(path: str) -> str:
    """``<run>/train.log``: rank 0's only, and none where the run directory cannot be written (see writable)."""
    return path if not distributed.env_rank() and writable(Path(path).parent) else os.devnull


def register() -> None:
    """Register the schema and resolvers (idempotent; called by every app and test)."""
    ConfigStore.instance().store(name="train_schema", node=TrainAppSchema)
    if not OmegaConf.has_resolver("gan_lab_run_dir"):
        OmegaConf.register_new_resolver("gan_lab_run_dir", run_dir_for)
    if not OmegaConf.has_resolver("gan_lab_hydra_subdir"):
        OmegaConf.register_new_resolver("gan_lab_hydra_subdir", hydra_subdir)
        OmegaConf.register_new_resolver("gan_lab_log_file", log_file)
        # The launch time, alike on every rank of a plain `torchrun` (the default run directory's name).
        OmegaConf.register_new_resolver("gan_lab_now", lambda fmt: distributed.launch_time().strftime(fmt))
    if not OmegaConf.has_resolver("sum"):
        OmegaConf.register_new_resolver("sum", lambda *xs: sum(xs))
    if not OmegaConf.has_resolver("data_shape"):
        # [C, H, W] for image datasets, [D] for point datasets (the MLP models' output shape).
        OmegaConf.register_new_resolver(
            "data_shape",
            lambda d: [d.dim] if "dim" in d else [d.channels, d.image_size, d.image_size],
        )


def _positive(cfg: DictConfig, key: str, allow_none: bool = False) -> None:
    value = OmegaConf.select(cfg, key)
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"{key} must be a positive number, got {value!r}")


def validate(cfg: DictConfig) -> None:
    """Checks that a type cannot express; each error names the offending key."""
    for key in ("train.steps", "train.batch_size", "train.n_critic", "train.log_every",
                "train.sample_every", "train.ckpt_every", "train.grid_size"):
        _positive(cfg, key)
    if cfg.train.keep_ckpts < 0:
        raise ConfigError(f"train.keep_ckpts must be >= 0, got {cfg.train.keep_ckpts}")
    for key in [*(f"train.clip_grad.{name}" for name in cfg.train.clip_grad), "eval.every"]:
        _positive(cfg, key, allow_none=True)
    if not cfg.optim or all(cfg.optim[name] is None for name in cfg.optim):
        raise ConfigError("optim must name an optimizer per player (optim.G, optim.D, ...)")
    for name in cfg.optim:
        if cfg.optim[name] is None:  # a player the model does not have (SRResNet: no D)
            continue
        if OmegaConf.select(cfg, f"optim.{name}._target_") is None:
            raise ConfigError(f"optim.{name} must name an optimizer with _target_ (a model without player {name} "
                              f"sets optim.{name}: null; then no trick may set its rate, e.g. tricks=[ttur])")
        _positive(cfg, f"optim.{name}.lr")
    device = cfg.hardware.device
    if not (device in ("auto", "cpu", "cuda") or device.startswith("cuda:")):
        raise ConfigError(f"hardware.device must be auto, cpu, cuda or cuda:N, got {device!r}")
    for group in ("model", "dataset"):  # loss is optional: a task may define its own objective
        if OmegaConf.select(cfg, f"{group}._target_") is None:
            raise ConfigError(f"{group} must be chosen (e.g. {group}=...) and name a class with _target_")
    if "image_size" in cfg.dataset:
        _positive(cfg, "dataset.image_size")
    for group in ("model", "dataset", "loss", "optim", "schedule", "tricks"):
        if cfg[group] is None:  # no loss: a model without an adversary (SRResNet)
            continue
        try:
            OmegaConf.to_container(cfg[group], resolve=True)
        except InterpolationResolutionError as err:
            raise ConfigError(
                f"{err.full_key}: {str(err.msg).splitlines()[0]} (model={_option(cfg, 'model')} does not fit "
                f"dataset={_option(cfg, 'dataset')}?)") from None
    task_cls = _cls(cfg.model._target_, "model._target_")
    data_cls = _cls(cfg.dataset._target_, "dataset._target_")
    kinds = getattr(task_cls, "data_kinds", ())
    if getattr(data_cls, "kind", None) not in kinds:
        raise ConfigError(
            f"dataset={_option(cfg, 'dataset')} provides {getattr(data_cls, 'kind', '?')} data, "
            f"but model={_option(cfg, 'model')} trains on {' or '.join(kinds)} data; choose a matching dataset "
            f"(e.g. {'shapes_paired or paired_folder' if 'paired' in kinds else 'shapes'})"
        )


def instantiate_group(node: DictConfig, group: str, **kwargs):
    """``hydra.utils.instantiate`` whose errors name the config group: a GanLabError raised in a
    constructor surfaces as itself, a ValueError/TypeError (bad argument) as a ConfigError."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, GanLabError):
            raise cause from None
        if isinstance(cause, (ValueError, TypeError)):
            raise ConfigError(f"{group}: {cause}") from None
        raise ConfigError(f"{group}: {err}") from None


def instantiate_tricks(node: DictConfig, task) -> dict:
    """The tricks of ``node`` (``cfg.tricks``) by name, each after its ``modify(task)`` (the network
    changes every later step, checkpoint loading included, relies on)."""
    tricks = {name: instantiate_group(spec, f"tricks.{name}") for name, spec in node.items()}
    for trick in tricks.values():
        trick.modify(task)
    return tricks


def _cls(path: str, key: str) -> type:
    try:
        return get_class(path)
    except Exception as err:  # ImportError, AttributeError, ValueError
        raise ConfigError(f"{key}={path!r} does not name a class: {err}") from None


def _option(cfg: DictConfig, group: str) -> str:
    """The option the user chose for a group (``dcgan``), else the target class name."""
    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get(group)
        if choice:
            return choice
    return OmegaConf.select(cfg, f"{group}._target_").rsplit(".", 1)[-1]
