"""Checkpoint files: written atomically, read safely.

A checkpoint holds only tensors and plain Python values, so it is always read
with ``torch.load(weights_only=True)``: opening a checkpoint from someone else
cannot run code. It is written to a temporary file in the same directory,
flushed to disk and renamed over the old one, so a crash mid-write never
destroys the last good checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import zipfile
from pathlib import Path

import torch

from gan_lab.engine import signals
from gan_lab.errors import CheckpointError, OutputError

# 2: players and G_ema under "models", the task's own state under "task";
# 3: ProGAN's phase is its networks' extra state (format 2 held it in "level"/"alpha" buffers), and
#    "fixed" leaves out the sample grid's dataset examples, re-read as data.examples(state["grid"])
FORMAT_VERSION = 3
REQUIRED_KEYS = ("format_version", "config", "step", "models", "task")


def save(state: dict, path: Path) -> None:
    """Atomic write: same-directory temporary file, fsync, ``os.replace``. A failed write (disk full,
    read-only, file size limit) leaves ``path`` as it was and raises :class:`OutputError` naming it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with signals.held():  # Ctrl-C or a requeue signal acts after the write, not inside torch.save
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except (OSError, RuntimeError) as err:  # torch reports a failed write as a RuntimeError after the OSError
            raise OutputError(f"cannot write {path}: {os_reason(err)}") from None
        finally:
            with contextlib.suppress(OSError):  # a read-only directory refuses even this
                tmp.unlink(missing_ok=True)
        _fsync_dir(path.parent)


def os_reason(err: BaseException) -> str:
    """The operating system's reason for ``err`` ("No space left on device"), found in its chain of
    causes, else its own first line."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        cause = cause.__cause__ or cause.__context__
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def newest(ckpt_dir: Path) -> Path | None:
    """A run's latest complete checkpoint: last.pt, or the newest numbered one where it was written later (a run
    killed between writing ``step_N.pt`` and linking last.pt to it); None if the run has none."""
    ckpt_dir = Path(ckpt_dir)
    files = [p for p in (ckpt_dir / "last.pt", *sorted(ckpt_dir.glob("step_*.pt"))[-1:]) if p.is_file()]
    return max(files, key=lambda p: p.stat().st_mtime_ns, default=None)  # a tie: last.pt, listed first


def kept(ckpt_dir: Path) -> str:
    """How an error that stops a run ends: where its last good checkpoint is."""
    last = newest(ckpt_dir)
    return f"the last good checkpoint is {last}" if last else "no checkpoint was written yet"


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def resolve(path: str | os.PathLike) -> Path:
    """A checkpoint file, or for a run directory its :func:`newest` checkpoint (``<run>/checkpoints/last.pt``)."""
    p = Path(path).expanduser().resolve()
    if p.is_dir():
        candidate = newest(p / "checkpoints") or p / "last.pt"
        if not candidate.is_file():
            started = (f"; the run stopped before its first checkpoint: start it again with hydra.run.dir={p} "
                       f"instead of resume=") if (p / "config.yaml").is_file() else ""
            raise CheckpointError(f"no checkpoint in {p}: expected {p / 'checkpoints' / 'last.pt'}{started}")
        return candidate
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} does not exist")
    return p


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a gan-lab checkpoint; anything else is one clear :class:`CheckpointError`."""
    p = resolve(path)
    if not zipfile.is_zipfile(p):  # torch.save always writes a zip archive; a cut-off one has no directory
        raise CheckpointError(f"checkpoint {p} is corrupt or truncated (not a complete torch archive)")
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"checkpoint {p} holds objects other than tensors and plain values, so it is not loaded "
            f"(gan-lab loads with weights_only=True): {str(err).splitlines()[0]}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise CheckpointError(f"checkpoint {p} is corrupt or truncated ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else 'no detail'})") from None
    if isinstance(state, dict) and state.get("format_version") == 2:
        state = from_format_2(state)
    if isinstance(state, dict) and state.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
        raise CheckpointError(f"{p} has checkpoint format {state['format_version']}, this gan-lab reads {FORMAT_VERSION}")
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED_KEYS):
        raise CheckpointError(f"{p} is not a gan-lab checkpoint (missing {', '.join(REQUIRED_KEYS)})")
    return state


def from_format_2(state: dict) -> dict:
    """A format-2 checkpoint read as format 3: ProGAN's ``level``/``alpha`` buffers become its networks'
    extra state, and the grid images it stored stay in ``fixed`` (``grid`` 0: nothing to re-read)."""
    for weights in state["models"].values():
        for key in [k for k in weights if k.rpartition(".")[2] == "level"]:
            prefix = key[: -len("level")]
            weights[f"{prefix}_extra_state"] = {"level": int(weights.pop(key)),
                                                "alpha": float(weights.pop(f"{prefix}alpha"))}
    return {**state, "format_version": 3, "grid": 0}


def prune(directory: Path, keep: int) -> None:
    """Keep the ``keep`` newest numbered checkpoints (``step_*.pt``); last.pt is never pruned."""
    numbered = sorted(Path(directory).glob("step_*.pt"))
    for old in numbered[: max(0, len(numbered) - keep)]:
        old.unlink()
