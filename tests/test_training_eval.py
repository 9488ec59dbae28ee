"""FID during training (``eval.every``): logged, best checkpoint kept, training unchanged by it.

Classifier features keep these tests fast; the Inception path is the one ``gan-lab eval`` takes,
tested in test_eval.py and test_metrics.py."""

from __future__ import annotations

import pytest

from gan_lab.engine import checkpoint
from gan_lab.errors import ConfigError, GanLabError
from gan_lab.train import run
from tests.conftest import TINY, compose_train
from tests.test_resume import _losses


def _eval_args(tmp_path, every=2):
    return [f"eval.every={every}", "eval.num_samples=32", "eval.batch_size=16", "eval.features=classifier",
            "eval.classifier.steps=20", "eval.classifier.batch_size=16",
            f"eval.classifier.cache_dir={tmp_path / 'classifiers'}", f"eval.cache_dir={tmp_path / 'real'}"]


BASE = [*TINY, "dataset.count=64", "train.log_every=1", "train.steps=6", "train.ckpt_every=3"]


def _scalars(run_dir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb"))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_fid_is_logged_and_the_best_checkpoint_kept(tmp_path):
    run_dir = tmp_path / "run"
    run(compose_train([*BASE, *_eval_args(tmp_path)]), run_dir)
    fids = _scalars(run_dir, "metrics/classifier_fid")
    assert [step for step, _ in fids] == [2, 4, 6]
    best_step, best_value = min(fids, key=lambda sv: sv[1])
    best = checkpoint.load(run_dir / "checkpoints" / "best.pt")
    assert best["step"] == best_step and best["best"]["step"] == best_step
    assert best["best"]["value"] == pytest.approx(best_value, rel=1e-6)
    assert checkpoint.load(run_dir / "checkpoints" / "last.pt")["best"] == best["best"]


def test_evaluation_does_not_change_training_and_resumes_exactly(tmp_path):
    plain = tmp_path / "plain"
    run(compose_train(BASE), plain)
    evaluated = tmp_path / "evaluated"
    run(compose_train([*BASE, *_eval_args(tmp_path)]), evaluated)
    training = {tag: v for tag, v in _losses(evaluated).items() if not tag.startswith("metrics/")}
    assert training == _losses(plain)  # samples for FID come from a forked, seeded RNG

    part = tmp_path / "part"
    run(compose_train([*BASE, *_eval_args(tmp_path), "train.steps=3"]), part)
    overrides = [f"resume={part}", "train.steps=6"]
    run(compose_train([*BASE, *_eval_args(tmp_path), *overrides]), part, overrides=overrides)
    assert _losses(part) == _losses(evaluated)
    assert _scalars(part, "metrics/classifier_fid") == _scalars(evaluated, "metrics/classifier_fid")


def test_bad_settings_stop_before_training(tmp_path):
    with pytest.raises(ConfigError, match="eval.every must be a positive number"):
        run(compose_train([*BASE, "eval.every=0"]), tmp_path / "a")
    missing = tmp_path / "nowhere" / "pt_inception-2015-12-05-6726825d.pth"
    with pytest.raises(GanLabError, match="FID Inception weights not found"):
        run(compose_train([*BASE, "eval.every=2", f"eval.inception_weights={missing}"]), tmp_path / "b")
    assert not (tmp_path / "b" / "checkpoints").exists()
    with pytest.raises(ConfigError, match="eval.metrics during training"):
        run(compose_train([*BASE, *_eval_args(tmp_path), "eval.metrics=[fid,is]"]), tmp_path / "c")


def test_a_bf16_run_measures_fid_in_fp32(tmp_path):
    """The FID a bf16 run logs is the one an fp32 evaluation gives on its checkpoint: evaluation runs outside
    autocast (under it, bf16 samples move the FID far beyond 1e-6)."""
    from gan_lab.metrics.evaluate import TrainingEvaluator
    from gan_lab.train import setup

    args = [*BASE, *_eval_args(tmp_path), "train.steps=2", "train.ckpt_every=2"]
    run(compose_train([*args, "hardware.precision=bf16"]), tmp_path / "run")
    [(_, logged)] = _scalars(tmp_path / "run", "metrics/classifier_fid")
    cfg = compose_train([*args, "hardware.precision=fp32"])
    state, data, hw = setup(cfg)
    state.load_state_dict(checkpoint.load(tmp_path / "run" / "checkpoints" / "last.pt"), data)
    _, fp32 = TrainingEvaluator(cfg, state.task, hw.device)(state)
    assert fp32 == pytest.approx(logged, rel=1e-6)
