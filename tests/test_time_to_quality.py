"""scripts/time_to_quality.py on the offline shapes data with a step budget or a fake clock (nothing here
depends on how fast the machine is): one finite classifier-FID per mark and run, the same numbers for the
same settings, evaluation outside the training clock, Ctrl-C keeping what was measured, bad options refused."""

from __future__ import annotations

import json
import math
import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import time_to_quality as ttq  # noqa: E402


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """Overrides after ``--``: tiny DCGAN on shapes, a 20-step classifier cached once for the module."""
    cache = tmp_path_factory.mktemp("classifiers")
    return ["--", "dataset=shapes", "dataset.count=128", "train.batch_size=8", "train.progress=plain",
            "eval.batch_size=16", "eval.classifier.steps=20", "eval.classifier.batch_size=16",
            f"eval.classifier.cache_dir={cache}"]


def test_one_finite_fid_per_mark_and_run_in_the_table_and_json(shared, tmp_path, capsys):
    out = tmp_path / "ttq.json"
    runs = ["hardware=cpu", "hardware=cpu", "hardware=cpu train.batch_size=16 tricks=[ema]",
            "hardware=cpu hardware.precision=bf16", "hardware=cpu hardware.precision=auto"]
    report = ttq.main(["--unit", "steps", "--budget", "4", "--every", "2", "--samples", "32", "--json", str(out),
                       "--runs", *runs, *shared])
    assert json.loads(out.read_text()) == report and not report["interrupted"]
    assert [r["run"] for r in report["runs"]] == runs and report["marks"] == [2, 4]
    for r in report["runs"]:
        assert [(p["at"], p["steps"]) for p in r["points"]] == [(2, 2), (4, 4)]
        assert all(math.isfinite(p["fid"]) and p["fid"] >= 0 for p in r["points"])
        assert r["steps"] == 4 and r["seconds"] == r["points"][-1]["seconds"] > 0
    first, again, ema, bf16, auto = report["runs"]
    # the precision each run used, auto resolved (to bf16 or fp32, by this CPU)
    assert (first["precision"], bf16["precision"]) == ("fp32", "bf16") and auto["precision"] in ("fp32", "bf16")
    assert [p["fid"] for p in first["points"]] == [p["fid"] for p in again["points"]]  # one seed for all runs
    assert (first["batch"], first["generator"], ema["batch"], ema["generator"]) == (8, "G", 16, "G_ema")
    table = capsys.readouterr().out
    assert "tricks=[ema]" in table and "precision" in table and "images/s" in table
    assert f"{first['points'][1]['fid']:.2f}" in table


class FakeTime:
    """A clock that advances one second per reading."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 1.0
        return self.now


def test_evaluation_time_is_not_training_time(shared, monkeypatch):
    clock = FakeTime()
    monkeypatch.setattr(ttq, "time", clock)

    class SlowEvaluator(ttq.TrainingEvaluator):
        def __call__(self, state):
            clock.now += 1000.0  # an evaluation that takes 1000 s
            return super().__call__(state)

    monkeypatch.setattr(ttq, "TrainingEvaluator", SlowEvaluator)
    report = ttq.main(["--budget", "6", "--every", "2", "--samples", "32", "--runs", "hardware=cpu", *shared])
    (run,) = report["runs"]
    # each step reads the clock twice: one second per step, the evaluations' 1000 s outside
    assert [(p["at"], p["seconds"], p["steps"]) for p in run["points"]] == [(2, 2, 2), (4, 4, 4), (6, 6, 6)]
    assert run["eval_seconds"] == 3 * 1001.0 and run["images_per_s"] == 8.0


def test_ctrl_c_prints_and_writes_what_was_measured(shared, monkeypatch, tmp_path, capsys):
    real_step = ttq.train_step

    def interrupted_at_step_3(state, *args):
        if state.step == 2:
            raise KeyboardInterrupt
        return real_step(state, *args)

    monkeypatch.setattr(ttq, "train_step", interrupted_at_step_3)
    out = tmp_path / "ttq.json"
    report = ttq.main(["--unit", "steps", "--budget", "4", "--every", "2", "--samples", "32", "--json", str(out),
                       "--runs", "hardware=cpu", "hardware=cpu train.batch_size=16", *shared])
    assert report["interrupted"] and json.loads(out.read_text()) == report
    (run,) = report["runs"]  # the second run never started
    assert [p["steps"] for p in run["points"]] == [2]
    assert "INTERRUPTED" in capsys.readouterr().out


def test_a_diverged_run_is_reported_and_the_next_one_runs(shared, monkeypatch, capsys):
    class DivergesOnce(ttq.FiniteGuard):
        failed = False

        def check(self, ckpt_dir):
            if not DivergesOnce.failed:
                DivergesOnce.failed = True
                raise ttq.NonFiniteLossError("loss/D is nan at step 2")
            super().check(ckpt_dir)

    monkeypatch.setattr(ttq, "FiniteGuard", DivergesOnce)
    report = ttq.main(["--unit", "steps", "--budget", "4", "--every", "2", "--samples", "32",
                       "--runs", "hardware=cpu", "hardware=cpu train.batch_size=16", *shared])
    diverged, fine = report["runs"]
    assert diverged["error"] == "loss/D is nan at step 2" and diverged["points"] == []
    assert [p["steps"] for p in fine["points"]] == [2, 4] and not report["interrupted"]
    assert "diverged" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--runs", "hardware=cpu seed=1"], "'seed=1' would make this run's FID incomparable"),
    (["--runs", "eval.num_samples=10"], "'eval.num_samples=10' would make"),
    (["--every", "0"], "--every must be positive"),
    (["--budget", "5", "--every", "10"], "--budget"),
])
def test_bad_options_stop_before_training_with_one_line(args, message, caplog):
    with pytest.raises(SystemExit) as exit_info:
        ttq.main(args)
    assert exit_info.value.code == 1 and message in caplog.text
