"""Data-parallel training: the one place for torch.distributed process-group code.

A run of ``N`` processes (launched by ``torchrun``, by ``gan-lab train hardware=ddp``, or as ``N`` Slurm
tasks) computes what one process computes with the same global batch: every rank holds the same weights,
takes its contiguous slice of each global batch (``shard``), keeps its slice of every global-batch-sized
latent draw (``GANTask.draw``), and averages gradients before each optimizer step. :class:`Dist` is a
single process where nothing is distributed, so the engine calls it unconditionally.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import logging
import os
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from omegaconf import DictConfig

from gan_lab.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: ``rank`` of ``world`` processes, ``local_rank`` on its node."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes (logs, grids, checkpoints) and evaluates."""
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int]:
        return self.rank, self.world

    def all_reduce_grads(self, params) -> None:
        """Average the gradients of ``params`` over the ranks: one flattened buffer per dtype, one call.
        Parameters without a gradient on this step are skipped (alike on every rank: same graph)."""
        if self.world == 1:
            return
        groups: dict[tuple, list[torch.Tensor]] = {}
        for p in params:
            if p.grad is not None:
                groups.setdefault((p.grad.dtype, p.grad.device), []).append(p.grad)
        for grads in groups.values():
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.all_reduce(flat)
            flat.div_(self.world)
            for g, chunk in zip(grads, flat.split([g.numel() for g in grads])):
                g.copy_(chunk.view_as(g))

    def agree(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is True on any rank (stop requests)."""
        if self.world == 1:
            return bool(flag)
        t = torch.tensor([1.0 if flag else 0.0], device=_device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def mean(self, stats: dict) -> dict:
        """Each statistic (tensor or float) averaged over the ranks, in one all-reduce; tensors stay on their device."""
        if self.world == 1 or not stats:
            return stats
        values = torch.stack([torch.as_tensor(v, dtype=torch.float32, device=_device()).detach().reshape(())
                              for v in stats.values()])
        dist.all_reduce(values)
        return dict(zip(stats, values.div_(self.world).unbind()))

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """The element-wise sum over the ranks of a small tensor (losses at the log cadence)."""
        if self.world == 1:
            return values
        out = values.to(_device()).clone()
        dist.all_reduce(out)
        return out.to(values.device)

    def broadcast(self, obj):
        """Rank 0's ``obj`` (a small picklable value) on every rank."""
        if self.world == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj) -> list | None:
        """Every rank's ``obj`` as a list on rank 0 (None elsewhere)."""
        if self.world == 1:
            return [obj]
        out = [None] * self.world if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def shutdown(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


def _device() -> torch.device:
    """Where collectives live: the rank's GPU under NCCL, the CPU under gloo."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def _slurm_tasks() -> bool:
    """A Slurm job of several tasks that torchrun did not start: one rank per task."""
    return "RANK" not in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1


def launched() -> bool:
    """This process is one rank of a run started by a launcher (torchrun, or Slurm tasks)."""
    return "RANK" in os.environ or _slurm_tasks()


def env_rank() -> int:
    """This process's rank from the launcher's environment (torchrun, else Slurm), before any setup."""
    if _slurm_tasks():
        return int(os.environ.get("SLURM_PROCID", "0"))
    return int(os.environ.get("RANK", "0"))


def slurm_environment() -> None:
    """Set torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT) from a Slurm job of
    several tasks, so one task per GPU joins one process group without torchrun. Uses submitit's
    ``TorchDistributedEnvironment`` when submitit is installed, else Slurm's own variables."""
    try:
        from submitit.helpers import TorchDistributedEnvironment
    except ImportError:
        nodes = os.environ["SLURM_JOB_NODELIST"]
        os.environ.setdefault("MASTER_ADDR", first_host(nodes))
        os.environ.setdefault("MASTER_PORT", str(20000 + int(os.environ.get("SLURM_JOB_ID", "0")) % 20000))
        os.environ["RANK"] = os.environ["SLURM_PROCID"]
        os.environ["WORLD_SIZE"] = os.environ["SLURM_NTASKS"]
        os.environ["LOCAL_RANK"] = os.environ.get("SLURM_LOCALID", "0")
        return
    TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def first_host(nodelist: str) -> str:
    """The first host of a Slurm node list: ``gpu[03-05,07],cpu1`` -> ``gpu03``."""
    head = re.match(r"([^,\[]+)(\[([^\]]+)\])?", nodelist)
    if head is None:
        raise ConfigError(f"SLURM_JOB_NODELIST={nodelist!r} is not a Slurm node list")
    prefix, ranges = head.group(1), head.group(3)
    return prefix if ranges is None else prefix + ranges.split(",")[0].split("-")[0]


def init(hw: DictConfig) -> Dist:
    """Join the run's process group from the launcher's environment (torchrun's variables, or a Slurm job of
    several tasks); a single :class:`Dist` without one. Backend: NCCL on CUDA (device cuda:LOCAL_RANK),
    gloo on the CPU; ``torch.cuda.set_device`` makes ``cuda`` this rank's GPU. The timeout (``hardware.timeout_min``) covers rank 0's evaluations, while the other
    ranks wait."""
    if _slurm_tasks():
        slurm_environment()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = hw.device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world,
                                timeout=datetime.timedelta(minutes=hw.timeout_min),
                                **({"device_id": torch.device("cuda", local)} if cuda else {}))
    return Dist(rank, world, local)


def check(cfg: DictConfig, world: int) -> None:
    """Before any work: the global batch splits into ``world`` equal slices, and SyncBatchNorm has CUDA;
    a ConfigError naming the key otherwise."""
    batch_size = cfg.train.batch_size
    if batch_size % world:
        raise ConfigError(f"train.batch_size={batch_size} must be divisible by the number of processes ({world}): "
                          f"each takes an equal slice of the global batch")
    if cfg.hardware.sync_bn and (cfg.hardware.device == "cpu" or not torch.cuda.is_available()):
        raise ConfigError("hardware.sync_bn=true needs CUDA (torch's SyncBatchNorm runs on NCCL only); "
                          "on the CPU each rank keeps its own BatchNorm statistics")


def seed_rank(d: Dist, seed: int) -> None:
    """After the networks are built alike on every rank from ``seed``: the global RNGs (dropout, instance
    noise, tricks) of rank r > 0 start from ``(seed, r)``, so the ranks' draws differ; rank 0 keeps a
    single process's stream."""
    if d.rank:
        digest = hashlib.blake2b(f"gan-lab rank {seed} {d.rank}".encode(), digest_size=8).digest()
        rank_seed = int.from_bytes(digest, "little") >> 1
        torch.manual_seed(rank_seed)
        random.seed(rank_seed)


@functools.cache
def launch_time() -> datetime.datetime:
    """When this run was launched, alike on every rank of a node: under torchrun the start time of the
    torchrun process (every rank's parent), else now. Names the default run directory, so the ranks of a
    plain ``torchrun`` agree on it; a multi-node run passes ``hydra.run.dir`` instead."""
    if "TORCHELASTIC_RUN_ID" in os.environ:
        try:
            ticks = int(Path(f"/proc/{os.getppid()}/stat").read_text().rsplit(")", 1)[1].split()[19])
            boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                        if line.startswith("btime"))
            return datetime.datetime.fromtimestamp(boot + ticks / os.sysconf("SC_CLK_TCK"))
        except (OSError, ValueError, IndexError, StopIteration):
            log.warning("cannot read the torchrun process's start time; pass hydra.run.dir= so the ranks agree")
    return datetime.datetime.now()


def launch(nproc: int, run_dir: Path, args: list[str]) -> int:
    """``gan-lab train hardware=ddp``: run ``nproc`` ranks of ``python -m gan_lab.train args`` on this node
    through torchrun's launcher, all writing into the pinned ``run_dir``. Returns the exit status: 0 when
    every rank finished or stopped cleanly on a signal (rank 0 printed the summary), else a failed rank's."""
    from torch.distributed.elastic.multiprocessing import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"gan-lab-{os.getpid()}",
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0,
                          monitor_interval=0.5, shutdown_timeout=600)
    for name in ("torch.distributed.elastic.multiprocessing.api", "torch.distributed.elastic.agent.server.api"):
        logging.getLogger(name).setLevel(logging.CRITICAL)  # its reports of the ranks' exits: said below
    try:
        elastic_launch(config, sys.executable)("-m", "gan_lab.train", *args, f"hydra.run.dir={run_dir}")
    except ChildFailedError as err:  # torchrun's report would add a traceback
        rank, failure = err.get_first_failure()  # the earliest: the cause, not the ranks torchrun then stopped
        if failure.exitcode != 1:  # 1: the rank logged a gan-lab error itself
            log.error("rank %d exited with status %d", rank, failure.exitcode)
        return failure.exitcode if failure.exitcode > 0 else 128 - failure.exitcode  # killed: 128 + signal
    except SignalException as err:  # forwarded to the ranks, which saved a checkpoint and exited
        log.warning("%s: the ranks stopped", err.sigval.name)
    return 0
