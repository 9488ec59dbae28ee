"""Everything a run needs to continue exactly where it stopped.

``TrainState.state_dict()`` is the checkpoint (the keys are listed there): the players'
weights and the averaged generator (``models``: one entry per player and ``G_ema``), the
task's own state (``task``: buffers such as an image pool), optimizers, schedulers,
gradient scalers, trick states, counters, the fixed sample inputs and every RNG state
(the global ones and the task's latent stream; in a data-parallel run also every rank's global ones,
``rng["ranks"]``), as tensors and plain values only. Fixed inputs that are
dataset examples (``task.fixed_examples``) are stored as their count, ``grid``, and re-read with
``data.examples(grid)`` on load.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

import torch

from gan_lab import __version__
from gan_lab.engine.checkpoint import FORMAT_VERSION
from gan_lab.engine.distributed import Dist
from gan_lab.errors import CheckpointError
from gan_lab.models.base import GANTask

log = logging.getLogger(__name__)


@dataclass
class TrainState:
    task: GANTask
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler]
    scalers: dict[str, torch.amp.GradScaler]
    tricks: dict[str, object]
    config: dict  # the resolved config, a plain container
    step: int = 0  # steps done (one step = the task's phase list)
    batches: int = 0  # batches drawn from the data (the data order is a function of this)
    fixed: dict[str, torch.Tensor] = field(default_factory=dict)  # the sample grid's inputs (draw_fixed)
    grid: int = 0  # the grid shows the dataset's first `grid` examples
    elapsed: float = 0.0  # training seconds over all sessions of the run
    last_losses: dict[str, float] = field(default_factory=dict)
    best: dict = field(default_factory=dict)  # best eval.every value: metric, value, step
    dist: Dist = field(default_factory=Dist)  # this process's rank in a data-parallel run


    def state_dict(self) -> dict:
        """The checkpoint; in a data-parallel run a collective (every rank calls it; rank 0 writes it)."""
        ranks = {} if self.dist.world == 1 else {"ranks": self.dist.gather(global_rng())}
        return {
            "format_version": FORMAT_VERSION,
            "gan_lab_version": __version__,
            "config": self.config,
            "step": self.step,
            "batches": self.batches,
            "elapsed": self.elapsed,
            "last_losses": dict(self.last_losses),
            "best": dict(self.best),
            **split_task_state(self.task),
            "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()},
            "schedulers": {n: s.state_dict() for n, s in self.schedulers.items()},
            "scalers": {n: s.state_dict() for n, s in self.scalers.items() if s.is_enabled()},
            "tricks": {n: t.state_dict() for n, t in self.tricks.items()},
            "fixed": {k: v.cpu() for k, v in self.fixed.items() if k not in self.task.fixed_examples},
            "grid": self.grid,
            "rng": {**capture_rng(self.task.latent), **ranks},
        }

    def draw_fixed(self, data, n: int) -> None:
        """The sample grid's inputs of a new run: ``task.fixed_inputs`` of the dataset's first ``n`` examples."""
        self.grid = n
        self.fixed = self._on_device(self.task.fixed_inputs(data.examples(n), n))

    def load_state_dict(self, state: dict, data) -> None:
        """Restore a checkpoint; ``data`` (the run's dataset) gives back the grid's examples."""
        load_task_state(self.task, state)
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        for name, sched in self.schedulers.items():
            sched.load_state_dict(state["schedulers"][name])
        for name, scaler in self.scalers.items():
            # A disabled scaler's state is empty; fp32/bf16 <-> fp16 resumes start a fresh scaler.
            if scaler.is_enabled() and name in state["scalers"]:
                scaler.load_state_dict(state["scalers"][name])
        for name, trick in self.tricks.items():
            trick.load_state_dict(state["tricks"][name])
        self.grid = state["grid"]
        examples = data.examples(self.grid)
        self.fixed = self._on_device({**{k: examples[k] for k in self.task.fixed_examples}, **state["fixed"]})
        self.step, self.batches = state["step"], state["batches"]
        self.elapsed = state["elapsed"]
        self.last_losses = dict(state["last_losses"])
        self.best = dict(state.get("best", {}))  # absent from checkpoints of runs without eval.every
        restore_rng(state["rng"], self.task, self.dist)

    def _on_device(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.task.device) for k, v in tensors.items()}


def split_task_state(task: GANTask) -> dict:
    """``{"models": {player: weights, "G_ema": weights}, "task": the rest of the task's state}``."""
    names = [*task.players(), "G_ema"]
    models: dict[str, dict] = {}
    rest = {}
    for key, value in task.state_dict().items():
        head, _, tail = key.partition(".")
        if head in names:
            models.setdefault(head, {})[tail] = value
        else:
            rest[key] = value
    return {"models": models, "task": rest}


def load_task_state(task: GANTask, state: dict) -> None:
    """The inverse of :func:`split_task_state` (strict: every weight must fit)."""
    full = dict(state["task"])
    for name, weights in state["models"].items():
        full.update({f"{name}.{key}": value for key, value in weights.items()})
    task.load_state_dict(full)


def global_rng() -> dict:
    """This process's global RNG states (torch, CUDA, Python)."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
    }


def set_global_rng(rng: dict) -> None:
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    random.setstate(rng["python"])


def capture_rng(latent: torch.Generator) -> dict:
    """The global RNG states and the latent stream's (with its device type: a CPU and a CUDA
    generator's states differ in kind)."""
    return {**global_rng(), "latent": {"device": latent.device.type, "state": latent.get_state()}}


def restore_rng(rng: dict, task: GANTask, dist: Dist = Dist()) -> None:
    """The inverse of :func:`capture_rng`: each rank of a data-parallel run takes its own global states
    (``rng["ranks"]``). A run resumed on another device type keeps the latent stream seeded by
    ``build_task``, as the CUDA RNG starts afresh, and one resumed on another number of processes keeps the
    global states of the ranks the checkpoint lacks: either continues, but not exactly."""
    if "latent" not in rng:
        raise CheckpointError("the checkpoint has no latent stream (it was written before gan-lab drew latents "
                              "from a stream of their own), so its run cannot continue exactly; it can still be "
                              "evaluated and sampled")
    ranks = rng.get("ranks", [rng])
    if len(ranks) != dist.world:
        log.warning("the checkpoint was written by %d process(es) and continues on %d: the run continues, but "
                    "not as it would have on %d", len(ranks), dist.world, len(ranks))
    if dist.rank < len(ranks):
        set_global_rng(ranks[dist.rank])
    if rng["latent"]["device"] == task.latent.device.type:
        task.latent.set_state(rng["latent"]["state"])
    else:
        log.warning("the latent stream was saved on %s and restarts from the seed on %s: the run continues, "
                    "but not as it would have on %s", rng["latent"]["device"], task.latent.device.type,
                    rng["latent"]["device"])
