"""The contract between a model family and the training engine.

A *task* owns the networks of one GAN family and turns batches into losses; the
engine (``gan_lab.engine.loop``) alone calls ``backward`` and steps optimizers, so
mixed precision, clipping and (later) gradient all-reduce exist once. A task says:

- ``players()``: name -> module; each is optimised by ``optim.<name>``, clipped by
  ``train.clip_grad.<name>``, and frozen by the engine while another player trains;
- ``phases(step, n_critic)``: the :class:`Phase` list of one step, a pure function of the step
  (stylegan2-ada's phase loop); the default is ``n_critic`` D steps, then one G step;
- ``begin_step(step)`` / ``end_step(step, stats)``: per-step task state (ProGAN's stage, BEGAN's k);
- ``sample(n, G, **given)`` and ``visuals(fixed, G)``: everything after training (eval, sample,
  grids, FID during training) goes through these two, with ``G`` the live or averaged generator;
  ``interpolation`` and ``traversal`` give the ``given`` inputs of ``gan-lab sample``'s latent walks.
- ``latent``: the generator every latent draw (z, labels, codes) comes from, seeded by
  ``seed_latent``: a stream of its own, so a trick that draws noise cannot change a run's latents;
- ``eval_sets(data, n)``: what evaluation compares (:class:`EvalSet`); the metric plug-ins of
  ``gan_lab.metrics`` measure each set they apply to.

Batches are dicts of tensors on the run's device, one key set per data kind (``data_kinds``):
``image`` ``{"real", "label"?}``, ``points`` ``{"real"}``, ``paired`` ``{"input", "target"}``,
``unpaired`` ``{"A", "B"}``, ``text`` ``{"real", "text", "label"?}`` (``text``: a float caption embedding
(B, D), the mean of ``dataset.captions_per_example`` of the image's caption embeddings), ``roll``
``{"real"}`` (binary multi-track piano rolls (B, tracks, time, pitches) in {-1, 1}, ``gan_lab.data.music``:
a kind of its own, not ``image``, because pictures are not what their metrics, grids and files need).
Every phase loss returns ``stats`` with ``loss/<player>``. ``save_sample`` writes one sample in a file
format of the task's own (``gan-lab sample format=midi``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gan_lab.errors import ConfigError


@dataclass
class LossOut:
    """A loss to minimise, the scalars to log with it, and what the next phase may reuse (``carry``)."""

    loss: torch.Tensor
    stats: dict[str, torch.Tensor | float] = field(default_factory=dict)
    carry: Any = None


@dataclass(frozen=True)
class Phase:
    """One optimisation phase of a step: ``loss(batch, carry) -> LossOut`` minimised for ``player``.

    - ``repeats``: optimizer steps in a row (``n_critic`` for the critic);
    - ``interval``: run only on steps divisible by it (lazy regularisation);
    - ``fresh_batch``: draw a new batch for each repeat; False reuses the previous phase's batch;
    - ``hand_off``: the player whose graph the *last* repeat builds for the next phase (which gets
      that repeat's ``LossOut.carry``): the engine leaves it unfrozen for that repeat only. DCGAN and
      pix2pix hand G's fake to the G step as their reference code does; earlier repeats build no G graph.
    """

    player: str
    loss: Callable[[dict, Any], LossOut]
    repeats: int = 1
    interval: int = 1
    fresh_batch: bool = True
    hand_off: str | None = None


@dataclass
class Grid:
    """Images in [-1, 1] (N, C, H, W) shown ``nrow`` per row."""

    images: torch.Tensor
    nrow: int


@dataclass
class Points:
    """Generated 2-D points (N, 2), drawn over the ``reference`` points (real data) when given."""

    points: torch.Tensor
    reference: torch.Tensor | None = None


@dataclass
class EvalSet:
    """One thing a task's evaluation compares: the outputs of ``sample(n, G, **given)`` (``given`` None:
    ``n`` draws from the prior) against ``real`` examples of the output's domain.

    - ``name``: the prefix of the set's metric keys (``""``, ``"AtoB "``);
    - ``paired``: output ``i`` should equal ``real[i]`` (its true partner), so L1/PSNR/SSIM apply;
    - ``back``: the ``given`` (without ``input``) that maps outputs back to ``given["input"]``: the cycle;
    - ``attributes``: (n, A) int64, what the condition of output ``i`` asks for (shapes_text: shape, colour,
      size, position), so caption accuracy applies;
    - ``border``: pixels at each edge that the paired metrics leave out (super-resolution: the scale factor,
      as the SR literature measures PSNR/SSIM).
    """

    name: str
    real: torch.Tensor
    given: dict[str, Any] | None = None
    paired: bool = False
    back: dict[str, Any] | None = None
    attributes: torch.Tensor | None = None
    border: int = 0


def square_columns(n: int) -> int:
    return max(1, math.isqrt(n))


def latent_seed(seed: int) -> int:
    """The latent stream's seed for a run's ``seed``: a hash, so it differs from the global RNG's seed
    (weights, dropout) and the data's ``seed * 1_000_003 + k``."""
    digest = hashlib.blake2b(f"gan-lab latent {seed}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1  # 63 bits: a valid seed for every generator


class GANTask(nn.Module):
    """Base class of every model family: ``self.G`` is the generator (the module sampling uses and
    ``G_ema`` averages), ``self.D`` the discriminator. Subclasses implement :meth:`d_loss`,
    :meth:`g_loss` (or their own :meth:`phases`), :meth:`fixed_inputs` (or :attr:`fixed_examples`),
    :meth:`sample` and :meth:`visuals`.

    ``reuse_fake``: the D step hands its fake to the G step (one G forward per step, as the DCGAN
    and pix2pix reference code do); False: G draws its own (WGAN's Algorithm 1)."""

    data_kinds: tuple[str, ...] = ("image",)
    # Keys of the dataset's examples the sample grid shows as they are (pix2pix's input and target):
    # checkpoints leave them out and a resumed run re-reads them from the (deterministic) dataset.
    fixed_examples: tuple[str, ...] = ()
    # ``sample(input=...)`` takes images of any size (a fully convolutional super-resolution G): ``gan-lab
    # sample input_dir=...`` then keeps each image's own size instead of resizing it to the dataset's.
    any_input_size: bool = False
    # File formats besides PNG grids that :meth:`save_sample` writes (``gan-lab sample format=...``).
    sample_formats: tuple[str, ...] = ()

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: nn.Module | None = None,
                 reuse_fake: bool = True):
        super().__init__()
        self.G = generator
        self.D = discriminator
        self.loss = loss
        self.reuse_fake = reuse_fake
        self.G_ema: nn.Module | None = None  # the averaged generator, when a trick keeps one (tricks=[ema])
        self.latent: torch.Generator | None = None  # None (a task built by hand): the global torch RNG
        self.shard = (0, 1)  # (rank, world) of a data-parallel run while it trains (gan_lab.engine.distributed)

    @property
    def device(self) -> torch.device:
        return next(self.G.parameters()).device

    prior = "normal"  # the distribution of z, where the task has one: "normal" N(0, I) or "uniform" U[-1, 1]^d

    @property
    def latent_bounds(self) -> tuple[float, float] | None:
        """The support of a bounded (uniform) prior, where a latent search keeps z (AnoGAN, iGAN); else None."""
        return (-1.0, 1.0) if self.prior == "uniform" else None

    def seed_latent(self, seed: int) -> None:
        """Start the latent stream from ``seed`` (through :func:`latent_seed`), on the task's device."""
        self.latent = torch.Generator(self.device).manual_seed(latent_seed(seed))

    def draw_rows(self, fn: Callable[..., torch.Tensor], n: int, *args, **kwargs) -> torch.Tensor:
        """``n`` rows of ``fn(rows, *args, device=, generator=self.latent, **kwargs)`` (``torch.randn``, a prior):
        every training draw of the latent stream goes through here. In a run of ``world`` processes each rank
        draws the ``world * n`` rows one process would and keeps its own ``n``, so the ranks together train
        on one process's latents and their streams stay alike; at world 1 it is the plain draw."""
        rank, world = self.shard
        rows = fn(world * n, *args, device=self.device, generator=self.latent, **kwargs)
        return rows if world == 1 else rows[rank * n:(rank + 1) * n]

    def draw_labels(self, num_classes: int, n: int) -> torch.Tensor:
        """``n`` classes drawn uniformly from the latent stream (:meth:`draw_rows`)."""
        return self.draw_rows(lambda rows, **kw: torch.randint(num_classes, (rows,), **kw), n)

    def sampling_generator(self, use_ema: bool = True) -> nn.Module:
        """The generator every sampling site uses: the average when there is one."""
        return self.G_ema if use_ema and self.G_ema is not None else self.G

    def players(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D}

    def phases(self, step: int, n_critic: int) -> list[Phase]:
        return [Phase("D", self.d_loss, repeats=n_critic, hand_off="G" if self.reuse_fake else None),
                Phase("G", self.g_loss, fresh_batch=False)]

    def d_loss(self, batch: dict[str, torch.Tensor], carry: Any = None) -> LossOut:
        """Discriminator (critic) loss on one batch; no gradient reaches G."""
        raise NotImplementedError

    def g_loss(self, batch: dict[str, torch.Tensor], carry: Any = None) -> LossOut:
        """Generator loss; ``carry`` is what the D phase handed off (None: draw afresh)."""
        raise NotImplementedError

    def use_data(self, data) -> None:
        """Called once with the training dataset before the first step and before a checkpoint is
        loaded (the semi-supervised GAN picks its labelled subset here, as buffers)."""

    def begin_step(self, step: int) -> bool:
        """Before step ``step`` (1-based), as a pure function of it (ProGAN's stage and fade-in).
        Returns True when the optimizers should start afresh (moments cleared)."""
        return False

    def end_step(self, step: int, stats: dict[str, torch.Tensor]) -> None:
        """After step ``step`` with its stats (BEGAN's k update); state kept here must be buffers. Entries added to
        ``stats`` are logged with the step's losses."""

    def fixed_inputs(self, batch: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
        """Inputs of the sample grid, drawn once per run; ``batch`` holds the dataset's first ``n`` examples
        (``data.examples(n)``). The default: the :attr:`fixed_examples` of the batch. Anything else a
        task draws here (latents) is checkpointed."""
        return {key: batch[key][:n] for key in self.fixed_examples}

    def sample(self, n: int, G: nn.Module, **given) -> dict[str, torch.Tensor]:
        """``n`` samples of ``G``: ``{"samples": (n, ...)}`` plus what they were drawn for (``label``).
        ``given`` fixes inputs (``label=``, ``input=`` an image batch, ``direction=``)."""
        raise NotImplementedError

    def visuals(self, fixed: dict[str, torch.Tensor], G: nn.Module) -> dict[str, Grid | Points]:
        """Named grids (or point clouds) of ``G`` on the fixed inputs, for TensorBoard and ``samples/``."""
        raise NotImplementedError

    def save_sample(self, sample: torch.Tensor, path: Path, format: str) -> Path:
        """Write one sample of :meth:`sample` as a file of ``format`` (one of :attr:`sample_formats`) at
        ``path`` with that format's suffix; returns the file written."""
        raise ConfigError(f"format={format}: {type(self).__name__} writes no such files")

    def eval_sets(self, data, n: int) -> list[EvalSet]:
        """What eval compares, from the evaluation ``data`` (``n`` examples at most): by default ``n``
        samples from the prior against the first ``n`` real examples."""
        return [EvalSet("", data.examples(n)["real"])]

    def interpolation(self, rows: int, steps: int) -> dict[str, torch.Tensor]:
        """``given`` of :meth:`sample` for ``rows`` paths of ``steps`` samples each through the latent
        space, row by row (``gan-lab sample interpolate=true``); the default: no latent to walk."""
        raise ConfigError(f"interpolate=true needs a model with a Gaussian latent z; {type(self).__name__} has none")

    def traversal(self, code: str, n: int, steps: int,
                  span: tuple[float, float]) -> tuple[dict[str, torch.Tensor], int]:
        """(``given`` of :meth:`sample` for about ``n`` samples in rows that vary latent code ``code``,
        samples per row) (``gan-lab sample traverse=<code>``); ValueError for an unknown code.
        The default: no latent codes."""
        raise ConfigError(f"traverse={code} needs a model with latent codes (model=infogan); "
                          f"{type(self).__name__} has none")
