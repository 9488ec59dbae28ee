"""Data-parallel training on the CPU (gloo, 2 processes): a 2-rank run computes what one process does.

The ranks run as real subprocesses (``torchrun`` and ``gan-lab train hardware=ddp``), as a user starts them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch

from gan_lab.engine import checkpoint, distributed
from gan_lab.errors import ConfigError
from gan_lab.losses.adversarial import NonSaturating
from gan_lab.train import main, run
from tests.conftest import REPO, compose_train, flat_model

# Small MLPs without BatchNorm or dropout, so the only difference from one process is the reduction order.
BASE = ["train.batch_size=16", "train.log_every=2", "train.sample_every=4", "train.ckpt_every=4",
        "train.grid_size=8", "train.progress=plain"]
GAN = ["model=gan", "dataset=toy2d", "dataset.count=512", "model.generator.hidden=[32,32]",
       "model.generator.z_dim=8", "model.discriminator.units=[16,16]", "model.discriminator.input_dropout=0",
       "model.discriminator.dropout=0"]
CGAN = ["model=cgan", "dataset.count=256", "dataset.image_size=8", "model.generator.z_dim=8",
        "+model.generator.dropout=0", "+model.discriminator.dropout=0"]
# BEGAN: k is updated from each step's losses (task.end_step), which must be the mean over the ranks
BEGAN = ["model=began", "dataset.count=256", "dataset.image_size=16", "model.generator.width=8",
         "model.discriminator.width=8"]
# Only the reduction order differs (two half-batch gradient sums averaged, not one full-batch sum): gradients
# agree to ~1e-7 relative, but Adam divides by sqrt(v), so an element whose gradient is near zero can move by
# a fraction of lr (2e-4) differently; after 8 steps weights agree to ~5e-6. A wrong slice of the batch or of
# a latent draw moves them by ~1e-3.
ATOL = 1e-5


class NanOnRankOne(NonSaturating):
    """The non-saturating loss, except that D's is NaN on rank 1 from step 3 on (its 3rd D step)."""

    calls = 0

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        NanOnRankOne.calls += 1
        loss = super().d_loss(real_logits, fake_logits)
        return loss * float("nan") if os.environ.get("RANK") == "1" and self.calls >= 3 else loss


def launch(args: list[str], cwd, torchrun: bool = False) -> subprocess.CompletedProcess:
    """``gan-lab train hardware=ddp hardware.nproc=2 args`` (or plain ``torchrun --nproc_per_node=2``) in ``cwd``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    head = ([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--monitor-interval=0.5",
             "-m", "gan_lab.train"] if torchrun else [sys.executable, "-m", "gan_lab.train", "hardware=ddp"])
    # fp32 as the one-process runs it is compared with (hardware=ddp's precision=auto is bf16 on some CPUs)
    return subprocess.run([*head, *args, "hardware.device=cpu", "hardware.precision=fp32"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def assert_close(a: dict, b: dict, atol: float) -> None:
    """Every weight, buffer and optimizer moment of two checkpoints agree to ``atol``."""
    fa, fb = flat_model(a), flat_model(b)
    assert fa.keys() == fb.keys()
    for key in fa:
        assert torch.allclose(fa[key].float(), fb[key].float(), atol=atol, rtol=0), key
    for player, opt in a["optimizers"].items():
        for index, moments in opt["state"].items():
            for name, value in moments.items():
                other = b["optimizers"][player]["state"][index][name]
                assert torch.allclose(value.float(), other.float(), atol=atol, rtol=0), (player, index, name)


def assert_equals_one_process(tmp_path, args: list[str], two) -> None:
    """The 2-rank run in directory ``two`` ended where one process does with ``args``; both ranks'
    global RNG states are stored, and differ."""
    run(compose_train([*args, "hardware=cpu"]), tmp_path / "one")
    one, two = checkpoint.load(tmp_path / "one"), checkpoint.load(two)
    assert len(two["rng"]["ranks"]) == 2 and not torch.equal(two["rng"]["ranks"][0]["torch"],
                                                               two["rng"]["ranks"][1]["torch"])
    assert two["last_losses"] == pytest.approx(one["last_losses"], abs=1e-4)  # the mean over ranks
    assert_close(one, two, ATOL)


@pytest.mark.parametrize("model", [CGAN, BEGAN], ids=["cgan", "began"])
def test_two_ranks_equal_one_process(tmp_path, model):
    """8 steps of 2 ranks (each half of every batch and latent draw) = 8 steps of one process."""
    args = [*model, *BASE, "train.steps=8"]
    result = launch([*args, f"hydra.run.dir={tmp_path / 'two'}"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "finished" in result.stdout and result.stdout.count("gan-lab run") == 1  # rank 0's summary only
    assert_equals_one_process(tmp_path, args, tmp_path / "two")


def test_torchrun_resumes_exactly(tmp_path):
    """Plain torchrun without hydra.run.dir: the ranks agree on the default run directory, only rank 0
    writes .hydra/ and checkpoints, and the run equals one process; stopped at step 4 and resumed, it ends
    bit-equal to the uninterrupted one."""
    args = [*GAN, *BASE, "train.steps=8"]
    result = launch(args, tmp_path, torchrun=True)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "outputs").glob("*/*"))
    assert len(runs) == 1, runs  # one directory for both ranks
    full = runs[0]
    assert (full / ".hydra" / "config.yaml").is_file() and not list(full.glob(".hydra/*/"))
    assert sorted(p.name for p in (full / "checkpoints").iterdir()) == ["last.pt", "step_0000004.pt",
                                                                        "step_0000008.pt"]
    assert_equals_one_process(tmp_path, args, full)
    part = tmp_path / "part"
    (part / "checkpoints").mkdir(parents=True)
    shutil.copy(full / "checkpoints" / "step_0000004.pt", part / "checkpoints" / "last.pt")
    result = launch([f"resume={part}", "train.steps=8"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resumed from" in result.stdout + result.stderr
    a, b = checkpoint.load(full), checkpoint.load(part)
    assert b["step"] == 8
    assert_close(a, b, atol=0)
    for x, y in zip(a["rng"]["ranks"], b["rng"]["ranks"]):
        assert torch.equal(x["torch"], y["torch"])


def test_nan_on_one_rank_stops_both(tmp_path):
    loss = f"loss._target_={__name__}.NanOnRankOne"
    result = launch([*GAN, *BASE, "train.steps=8", loss, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out[-3000:]
    # found at the step-4 check (log_every=2), before step 4's checkpoint: rank 0 says it, once
    assert "loss/D is nan at step 3" in out and out.count("loss/D is nan") == 1
    assert "Traceback" not in out
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_batch_not_divisible(tmp_path, monkeypatch):
    """hardware=ddp checks the split before it starts the ranks (which check it again)."""
    monkeypatch.setattr(sys, "argv", ["gan-lab", "hardware=ddp", *GAN, *BASE, "train.batch_size=15",
                                      f"hydra.run.dir={tmp_path / 'run'}"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 1
    assert not (tmp_path / "run" / "checkpoints").exists()
    with pytest.raises(ConfigError, match=r"train.batch_size=15 must be divisible by the number of processes \(2\)"):
        distributed.check(compose_train([*GAN, *BASE, "train.batch_size=15"]), 2)


def test_sync_bn_needs_cuda(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="hardware.sync_bn=true needs CUDA"):
        run(compose_train([*GAN, *BASE, "hardware=cpu", "hardware.sync_bn=true"]), tmp_path / "run")


def test_slurm_environment_without_submitit(monkeypatch):
    """Slurm tasks without torchrun: the rank, world and rendezvous host come from Slurm's variables."""
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit fails: Slurm's own variables
    monkeypatch.setattr(os, "environ", {"SLURM_NTASKS": "4", "SLURM_PROCID": "3", "SLURM_LOCALID": "1",
                                        "SLURM_JOB_ID": "1234", "SLURM_JOB_NODELIST": "gpu[07-08,11],cpu1"})
    assert distributed.launched() and distributed.env_rank() == 3
    distributed.slurm_environment()
    assert [os.environ[k] for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")] == ["3", "4", "1", "gpu07"]
    assert distributed.first_host("node1") == "node1"
