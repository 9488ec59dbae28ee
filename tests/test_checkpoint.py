"""Checkpoints are written atomically and read safely."""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch

from gan_lab.engine import checkpoint
from gan_lab.errors import CheckpointError, OutputError
from tests.conftest import flat_model


def _state(step: int) -> dict:
    return {"format_version": checkpoint.FORMAT_VERSION, "config": {"seed": 0}, "step": step,
            "models": {"G": {"w": torch.full((3,), float(step))}}, "task": {}}


def test_roundtrip(tmp_path):
    checkpoint.save(_state(7), tmp_path / "last.pt")
    state = checkpoint.load(tmp_path / "last.pt")
    assert state["step"] == 7 and torch.equal(flat_model(state)["G.w"], torch.full((3,), 7.0))
    assert not list(tmp_path.glob(".*tmp")), "the temporary file must be renamed away"


def test_crash_during_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    checkpoint.save(_state(1), path)

    def crash(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip file")  # some bytes reach the disk, then the process dies
        raise KeyboardInterrupt("simulated crash mid-write")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(_state(2), path)
    monkeypatch.undo()
    assert checkpoint.load(path)["step"] == 1
    assert not list(tmp_path.glob(".*tmp"))


def test_a_signal_during_the_write_acts_after_it(tmp_path, monkeypatch):
    """A handler that raises (submitit's requeue on SIGUSR2 exits, a second Ctrl-C) runs once the checkpoint is
    whole: raised inside torch.save it became a corrupt-write error and the job was not requeued."""
    path, save, seen = tmp_path / "last.pt", torch.save, []

    def signalled_save(obj, f, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGUSR2)  # a process-directed signal, as Slurm and submitit send it
        time.sleep(0.05)  # time for the handler to run, were it not held
        save(obj, f, *args, **kwargs)

    def requeue(signum, frame):
        seen.append(path.exists())
        raise SystemExit(3)

    monkeypatch.setattr(torch, "save", signalled_save)
    previous = signal.signal(signal.SIGUSR2, requeue)
    try:
        with pytest.raises(SystemExit):
            checkpoint.save(_state(4), path)
            time.sleep(1)  # not reached: the held signal is delivered as the write ends
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert seen == [True] and checkpoint.load(path)["step"] == 4
    assert signal.getsignal(signal.SIGUSR2) is previous


def test_truncated_file_is_a_clear_error(tmp_path):
    path = tmp_path / "last.pt"
    checkpoint.save(_state(3), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        checkpoint.load(path)


def test_garbage_and_missing_files(tmp_path):
    (tmp_path / "x.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        checkpoint.load(tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoint.load(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="no checkpoint in"):
        checkpoint.load(tmp_path)


def test_older_format_is_a_clear_error(tmp_path):
    checkpoint.save({**_state(1), "format_version": 1}, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="has checkpoint format 1, this gan-lab reads 3"):
        checkpoint.load(tmp_path / "old.pt")


def test_format_2_is_read_as_format_3(tmp_path):
    old = {**_state(1), "format_version": 2,
           "models": {"G": {"w": torch.ones(2), "level": torch.tensor(2), "alpha": torch.tensor(0.25),
                            "block.level": torch.tensor(1), "block.alpha": torch.tensor(1.0)}}}
    checkpoint.save(old, tmp_path / "old.pt")
    state = checkpoint.load(tmp_path / "old.pt")
    assert state["format_version"] == 3 and state["grid"] == 0  # format 2 stored the grid's images in "fixed"
    assert state["models"]["G"].keys() == {"w", "_extra_state", "block._extra_state"}
    assert state["models"]["G"]["_extra_state"] == {"level": 2, "alpha": 0.25}
    assert state["models"]["G"]["block._extra_state"] == {"level": 1, "alpha": 1.0}


def test_foreign_checkpoint_is_rejected(tmp_path):
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a gan-lab checkpoint"):
        checkpoint.load(tmp_path / "other.pt")


class Exploit:
    """Unpickling this would run code; weights_only=True must refuse it."""

    def __reduce__(self):
        return (print, ("code ran while loading",))


def test_loading_never_runs_code(tmp_path, capsys):
    state = _state(1)
    state["payload"] = Exploit()
    torch.save(state, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="weights_only"):
        checkpoint.load(tmp_path / "evil.pt")
    assert "code ran" not in capsys.readouterr().out


def test_prune_keeps_newest(tmp_path):
    for step in (10, 20, 30, 40):
        checkpoint.save(_state(step), tmp_path / f"step_{step:07d}.pt")
    checkpoint.prune(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.glob("step_*.pt")) == ["step_0000030.pt", "step_0000040.pt"]


def test_a_run_killed_before_linking_last_pt_resumes_from_its_newest_numbered_checkpoint(tmp_path):
    """save_checkpoint writes step_N.pt, then links last.pt to it: a kill in between leaves step_N.pt newer than
    last.pt (or the only checkpoint), and a run directory resolves to it."""
    ckpts = tmp_path / "checkpoints"
    checkpoint.save(_state(3), ckpts / "step_0000003.pt")
    assert checkpoint.resolve(tmp_path) == ckpts / "step_0000003.pt"  # killed before the first link
    (ckpts / "last.pt").hardlink_to(ckpts / "step_0000003.pt")
    assert checkpoint.resolve(tmp_path) == ckpts / "last.pt"
    checkpoint.save(_state(6), ckpts / "step_0000006.pt")
    assert checkpoint.load(tmp_path)["step"] == 6
    assert "step_0000006.pt" in checkpoint.kept(ckpts)


def test_a_failed_write_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    """Disk full: torch reports the short write as a RuntimeError after the OSError; the error names the file."""
    path = tmp_path / "last.pt"
    checkpoint.save(_state(1), path)

    def full(obj, f, *args, **kwargs):
        f.write(b"partial")
        try:
            raise OSError(28, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 7 vs 1") from None

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OutputError, match=f"cannot write {path}: No space left on device"):
        checkpoint.save(_state(2), path)
    monkeypatch.undo()
    assert checkpoint.load(path)["step"] == 1 and not list(tmp_path.glob(".*tmp"))
