"""The `gan-lab` command as a user runs it, through a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gan_lab.engine import checkpoint
from tests.conftest import TINY


def gan_lab(*args: str, cwd: Path, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gan_lab", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_top_level_help_lists_commands(tmp_path):
    out = gan_lab("--help", cwd=tmp_path)
    assert out.returncode == 0 and all(c in out.stdout for c in ("train", "eval", "sample"))
    bad = gan_lab("trian", cwd=tmp_path)
    assert bad.returncode == 2 and "unknown command 'trian'" in bad.stderr


def test_train_help_shows_groups(tmp_path):
    out = gan_lab("train", "--help", cwd=tmp_path)
    assert out.returncode == 0
    for group in ("model:", "loss:", "dataset:", "hardware:", "tricks:", "pix2pix", "nonsaturating"):
        assert group in out.stdout, group


def test_cfg_job_prints_config_without_running(tmp_path):
    out = gan_lab("train", "model=pix2pix", "--cfg", "job", cwd=tmp_path)
    assert out.returncode == 0
    assert "Pix2Pix" in out.stdout and "lambda_l1: 100" in out.stdout
    assert not (tmp_path / "outputs").exists()


def test_train_run_from_another_directory(tmp_path):
    out = gan_lab("train", *TINY, "dataset.count=64", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    runs = list((tmp_path / "outputs").glob("*/*"))
    assert len(runs) == 1
    run_dir = runs[0]
    for name in ("config.yaml", "train.log", ".hydra/config.yaml", "checkpoints/last.pt", "samples/fixed_0000004.png"):
        assert (run_dir / name).exists(), name
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))
    log = (run_dir / "train.log").read_text()
    assert "step 4/4" in log and "images/s" in log  # plain progress lines and the summary table


def test_multirun_two_jobs(tmp_path):
    out = gan_lab("train", "-m", "loss=minimax,nonsaturating", *TINY, "dataset.count=64", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    jobs = sorted((tmp_path / "outputs" / "multirun").glob("*/*/[0-9]"))
    assert [j.name for j in jobs] == ["0", "1"]
    losses = [checkpoint.load(j / "checkpoints" / "last.pt")["config"]["loss"]["_target_"] for j in jobs]
    assert losses == ["gan_lab.losses.adversarial.Minimax", "gan_lab.losses.adversarial.NonSaturating"]


def test_python_m_gan_lab_train_entrypoint(tmp_path):
    out = subprocess.run([sys.executable, "-m", "gan_lab.train", *TINY, "train.steps=2", "dataset.count=32"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.parametrize("args, message", [
    (["bad_key=1"], "Key 'bad_key' not in"),
    (["model=nope"], "Could not find 'model/nope'"),
    (["train.batch_size=abc"], "train.batch_size"),
    (["train.batch_size=-3"], "train.batch_size must be a positive number"),
    (["hardware.precision=fp8"], "hardware.precision"),
    (["model=pix2pix", "dataset=shapes"], "dataset=shapes provides image data, but model=pix2pix trains on paired"),
    (["dataset=mnist", "dataset.root=/nonexistent/place", "dataset.download=false"], "/nonexistent/place"),
])
def test_bad_input_is_one_clear_message(tmp_path, args, message):
    out = gan_lab("train", *TINY, *args, cwd=tmp_path)
    assert out.returncode == 1
    assert message in out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    assert not list(tmp_path.glob("outputs/*/*/checkpoints"))


def test_resume_through_the_cli(tmp_path):
    out = gan_lab("train", *TINY, "train.steps=2", "dataset.count=32", "model=cgan", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    run_dir = next(tmp_path.glob("outputs/*/*"))
    out = gan_lab("train", f"resume={run_dir}", "train.steps=4", cwd=tmp_path)  # no need to repeat model=cgan
    assert out.returncode == 0, out.stderr[-2000:]
    assert list(tmp_path.glob("outputs/*/*")) == [run_dir], "a resumed run writes into its own directory"
    state = checkpoint.load(run_dir / "checkpoints" / "last.pt")
    assert state["step"] == 4 and state["config"]["model"]["_target_"].endswith("ConditionalTask")
    assert "resumed from" in (run_dir / "train.log").read_text()
    assert list((run_dir / ".hydra").glob("resumed-*/overrides.yaml"))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_checkpoint_and_exits_cleanly(tmp_path, sig):
    proc = subprocess.Popen([sys.executable, "-m", "gan_lab", "train", *TINY, "train.steps=100000",
                             "train.ckpt_every=100000", "train.sample_every=100000", "dataset.count=64"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not list(tmp_path.glob("outputs/*/*/tb/events*")) and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(3)  # let it take some steps
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output[-2000:]
    assert f"{sig.name} received" in output and f"stopped by {sig.name}" in output
    run_dir = next(tmp_path.glob("outputs/*/*"))
    assert checkpoint.load(run_dir / "checkpoints" / "last.pt")["step"] > 0


def test_completion_forwards_to_the_command(tmp_path):
    out = gan_lab("-sc", "query=bash", cwd=tmp_path, env={"COMP_LINE": "gan-lab train model=pi"})
    assert "model=pix2pix" in out.stdout
    out = gan_lab("-sc", "query=bash", cwd=tmp_path, env={"COMP_LINE": "gan-lab tr"})
    assert out.stdout.split() == ["train", "train-classifier", "train-text-encoder"]
