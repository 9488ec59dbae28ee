"""Sweeps through Hydra's submitit launcher (the cluster extra): the Slurm launcher's config as gan-lab composes
it, a real 2-job sweep on this machine with submitit's local executor, and a preempted job that submitit
requeues and that continues its own run (resume=auto)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from gan_lab import config as config_lib
from gan_lab.engine import checkpoint
from gan_lab.train import run
from tests.conftest import TINY, compose_train, flat_model
from tests.test_resume import same

pytest.importorskip("hydra_plugins.hydra_submitit_launcher",
                    reason="the cluster extra is not installed (pip install -e '.[cluster]')")

LOCAL = ["hydra/launcher=submitit_local", "dataset.count=64", "resume=auto"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # two jobs share this machine's cores


def gan_lab(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gan_lab", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=ENV)


def _wait_for(what: str, found, proc: subprocess.Popen, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended (status {proc.returncode}) before {what}: {proc.stdout.read()[-2000:]}")
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


def _task_of(job: Path) -> int | None:
    """The process training ``job``: a child of a submitit local controller (whose pid names a folder under
    .submitit/) that holds the job's train.log open. On Slurm, scancel --signal reaches the tasks alike."""
    for folder in (job.parent / ".submitit").glob("[0-9]*"):
        try:
            for pid in Path(f"/proc/{folder.name}/task/{folder.name}/children").read_text().split():
                if any(os.readlink(fd) == str(job / "train.log") for fd in Path(f"/proc/{pid}/fd").iterdir()):
                    return int(pid)
        except FileNotFoundError:  # a process that just ended
            continue
    return None


def _kill_jobs(root: Path) -> None:
    """Ends what a failed test leaves behind: submitit's local controllers outlive the sweep's process."""
    for folder in root.glob("sweep-*/.submitit/[0-9]*"):
        controller = Path(f"/proc/{folder.name}")
        try:
            if "submitit" not in (controller / "cmdline").read_text():
                continue  # ended, and its pid reused
            pids = [*(controller / "task" / folder.name / "children").read_text().split(), folder.name]
        except FileNotFoundError:  # ended
            continue
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


def _numbered(job: Path) -> int:
    """The step of the job's newest numbered checkpoint (0: none yet)."""
    return max((int(p.stem[5:]) for p in (job / "checkpoints").glob("step_*.pt")), default=0)


def test_slurm_launcher_composes_with_gan_lab_configs(tmp_path):
    """The plugin's group is found beside gan-lab's configs; hydra/launcher=slurm is submitit_slurm with one
    task per GPU, as many as hardware.nproc (++: the key is hardware=ddp's), and requeues on timeout."""
    config_lib.register()
    with initialize_config_module("gan_lab.configs", version_base="1.3"):
        cfg = compose("train", return_hydra_config=True, overrides=[
            "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=240",
            "++hardware.nproc=4"])
    launcher = instantiate(cfg.hydra.launcher)  # what `gan-lab train -m` builds; it hands params to submitit
    assert type(launcher).__name__ == "SlurmLauncher"
    assert {k: launcher.params[k] for k in ("partition", "timeout_min", "gpus_per_node", "tasks_per_node",
                                            "max_num_timeout")} == {
        "partition": "gpu", "timeout_min": 240, "gpus_per_node": 4, "tasks_per_node": 4, "max_num_timeout": 3}
    # the README's command, through the CLI (the plugin's own submitit_slurm, resolved as the sweep will be)
    out = gan_lab("train", "hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu",
                  "hydra.launcher.timeout_min=240", "hydra.launcher.gpus_per_node=2", "hydra.launcher.tasks_per_node=2",
                  "--cfg", "all", "--package", "hydra.launcher", "--resolve", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    for line in ("partition: gpu", "timeout_min: 240", "gpus_per_node: 2", "tasks_per_node: 2",
                 "_target_: hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"):
        assert line in out.stdout.splitlines(), line


def test_slurm_sweep_asks_for_one_task_per_gpu(tmp_path):
    """What sbatch receives for a sweep with hydra/launcher=slurm: a fake srun/sbatch on PATH (no Slurm here)
    capture the job-array script that submitit writes."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "srun").write_text("#!/bin/sh\nexit 0\n")
    (fake / "sbatch").write_text(f'#!/bin/sh\ncp "$1" {tmp_path}/sbatch.sh\necho "Submitted batch job 4242"\n')
    for tool in fake.iterdir():
        tool.chmod(0o755)
    proc = subprocess.Popen([sys.executable, "-m", "gan_lab", "train", "-m", "hydra/launcher=slurm",
                             "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=240", "++hardware.nproc=4",
                             "loss=minimax,nonsaturating", "resume=auto", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                            cwd=tmp_path, env={**ENV, "PATH": f"{fake}:{os.environ['PATH']}"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for("sbatch", lambda: (tmp_path / "sbatch.sh").exists(), proc)
    finally:
        proc.kill()  # it would wait for the jobs (sacct) forever
        proc.communicate()
    script = (tmp_path / "sbatch.sh").read_text().splitlines()
    for line in ("#SBATCH --array=0-1%2", "#SBATCH --partition=gpu", "#SBATCH --time=240", "#SBATCH --nodes=1",
                 "#SBATCH --gpus-per-node=4", "#SBATCH --ntasks-per-node=4", "#SBATCH --signal=USR2@120"):
        assert line in script, line
    assert any(line.startswith("srun ") and "submitit.core._submit" in line for line in script)


def test_local_sweep_of_two_jobs_one_preempted_requeued_and_continued_exactly(tmp_path):
    """`-m hydra/launcher=submitit_local`: two jobs in their own processes, one run directory each. Job 0 gets
    SIGUSR2 (Slurm's signal before a time limit, or with a preemption): submitit pickles it again through the
    launcher's checkpoint() and restarts it, and the same command (resume=auto) in the same directory
    (hydra.sweep.dir's ${now:} is resolved once, at launch) continues from its last.pt. SIGTERM then stops
    both jobs (gan-lab saves a checkpoint); job 0's weights equal those of a run that never stopped."""
    overrides = [*TINY, "train.steps=100000", "train.ckpt_every=5", "train.sample_every=1000"]
    proc = subprocess.Popen([sys.executable, "-m", "gan_lab", "train", "-m", *LOCAL, "loss=minimax,nonsaturating",
                             *overrides, f"hydra.sweep.dir={tmp_path}/sweep-${{now:%H-%M-%S-%f}}"],
                            cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        sweep = _wait_for("the sweep directory", lambda: next(tmp_path.glob("sweep-*/.submitit"), None), proc).parent
        jobs = [sweep / "0", sweep / "1"]
        _wait_for("a checkpoint of each job", lambda: all(_numbered(job) and _task_of(job) for job in jobs), proc)
        os.kill(_task_of(jobs[0]), signal.SIGUSR2)
        os.kill(_task_of(jobs[1]), signal.SIGTERM)
        log = jobs[0] / "train.log"
        resumed = _wait_for("the requeued job",
                            lambda: re.search(r"resumed from (\S+) at step (\d+)", log.read_text()), proc)
        # a checkpoint the requeued job wrote (the first job may have left one past last.pt): it is training,
        # so SIGTERM reaches gan-lab's handler (before, submitit's ignores it), which saves and stops
        _wait_for("a checkpoint after the resume", lambda: _numbered(jobs[0]) > int(resumed[2]) + 5, proc)
        os.kill(_task_of(jobs[0]), signal.SIGTERM)
        output, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
        _kill_jobs(tmp_path)
    assert proc.returncode == 0, output[-2000:]

    assert list(tmp_path.glob("sweep-*")) == [sweep], "the requeued job wrote into the first launch's directory"
    assert resumed[1] == str(jobs[0] / "checkpoints" / "last.pt") and int(resumed[2]) >= 5
    assert "Requeued job" in "".join(p.read_text() for p in (sweep / ".submitit").glob("*/*_log.*"))
    states = [checkpoint.load(job / "checkpoints" / "last.pt") for job in jobs]
    assert states[0]["step"] > int(resumed[2]) and states[1]["step"] >= 5
    assert [s["config"]["loss"]["_target_"].rsplit(".", 1)[1] for s in states] == ["Minimax", "NonSaturating"]
    assert ["Minimax" in (job / "config.yaml").read_text() for job in jobs] == [True, False]
    assert [("stopped by SIGTERM" in (job / "train.log").read_text()) for job in jobs] == [True, True]
    assert list((jobs[0] / ".hydra").glob("resumed-*/overrides.yaml"))

    full = tmp_path / "full"  # job 0's run, never stopped, to the same step (one thread, as the jobs)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run(compose_train(["dataset.count=64", "loss=minimax", *overrides, f"train.steps={states[0]['step']}",
                           "schedule.total_steps=100000"]), full)
    finally:
        torch.set_num_threads(threads)
    reference = flat_model(checkpoint.load(full / "checkpoints" / "last.pt"))
    assert all(same(value, reference[key]) for key, value in flat_model(states[0]).items())
