"""`gan-lab eval`: the report, the families it covers, and its errors."""

from __future__ import annotations

import json

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from gan_lab.engine.inference import inference
from gan_lab.engine.restore import restore
from gan_lab.errors import ConfigError
from gan_lab.eval import evaluate
from gan_lab.metrics.evaluate import to_uint8
from gan_lab.metrics.fid import fid_from_features
from gan_lab.metrics.image_quality import l1, psnr, ssim
from gan_lab.metrics.toy2d import mode_coverage
from gan_lab.metrics.inception import InceptionFeatures, make_seeded_weights
from gan_lab.train import run
from tests.conftest import TINY, compose_train
from tests.test_cli import gan_lab


def eval_cli(tmp_path, *args):
    """`gan-lab eval` with its feature cache inside the test's directory."""
    return gan_lab("eval", *args, cwd=tmp_path, env={"GAN_LAB_CACHE": str(tmp_path / "cache")})


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Stand-in Inception weights: the real file's keys and shapes, seeded values (no internet here)."""
    return make_seeded_weights(tmp_path_factory.mktemp("inception") / "seeded.pth", seed=0)


def test_eval_reports_fid_is_kid_of_the_generated_samples(tmp_path, weights):
    run(compose_train([*TINY, "dataset.count=64"]), tmp_path / "run")
    args = (f"ckpt={tmp_path / 'run'}", "eval.num_samples=30", "eval.batch_size=15", "eval.metrics=[fid,is,kid]",
            "eval.available.kid.subset_size=10", f"eval.inception_weights={weights}")
    out = eval_cli(tmp_path, *args)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(next((tmp_path / "run" / "eval").glob("*.json")).read_text())
    cache = list((tmp_path / "cache" / "real_features").glob("real-*.pt"))
    assert len(cache) == 1 and "from the cache" not in out.stdout

    again = eval_cli(tmp_path, *args)  # the real features come from the cache, and give the same FID
    assert again.returncode == 0 and "from the cache" in again.stdout
    cache[0].write_bytes(b"garbage")  # a corrupt cache file is rebuilt, never trusted
    rebuilt = eval_cli(tmp_path, *args)
    assert rebuilt.returncode == 0 and "ignoring unreadable cache file" in rebuilt.stdout
    reports = sorted((tmp_path / "run" / "eval").glob("*.json"))
    assert {json.loads(r.read_text())["metrics"]["FID"] for r in reports} == {report["metrics"]["FID"]}

    assert report["step"] == 4 and report["num_samples"] == 30 and report["generator"] == "live"
    assert set(report["metrics"]) == {"FID", "IS", "IS std", "KID", "KID std"}
    # The same FID from the same samples, computed by hand: the report is of these images, drawn from seed 0.
    restored = restore(tmp_path / "run", torch.device("cpu"))
    with inference(restored.task, restored.generator):
        torch.manual_seed(0)
        restored.task.seed_latent(0)
        fake = to_uint8(torch.cat([restored.task.sample(15, restored.generator)["samples"] for _ in range(2)]))
    real = instantiate(restored.config.dataset).tensors["real"][:30]
    net = InceptionFeatures(weights)
    expected = fid_from_features(net.extract(real)[0], net.extract(fake)[0])
    assert report["metrics"]["FID"] == pytest.approx(expected, rel=1e-6)


def _drawn_from_seed(restored, n: int, **given) -> torch.Tensor:
    """What eval's sampling draws: ``task.sample`` from seed 0 (eval's default: the global RNG and the
    latent stream), G in eval mode."""
    with inference(restored.task, restored.generator):
        torch.manual_seed(0)
        restored.task.seed_latent(0)
        return restored.task.sample(n, restored.generator, **given)["samples"]


def test_eval_toy2d_counts_modes(tmp_path):
    run(compose_train([*TINY, "model=gan", "dataset=toy2d", "dataset.count=256"]), tmp_path / "run")
    out = eval_cli(tmp_path, f"ckpt={tmp_path / 'run'}", "eval.num_samples=500", "eval.batch_size=500")
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(next((tmp_path / "run" / "eval").glob("*.json")).read_text())
    assert report["metric_names"] == ["modes"]  # the only default metric that applies to points
    restored = restore(tmp_path / "run", torch.device("cpu"))
    data = instantiate(restored.config.dataset)
    covered, hq = mode_coverage(_drawn_from_seed(restored, 500), data.modes, data.std)
    assert report["metrics"] == {"modes covered": f"{covered}/8", "high-quality fraction": pytest.approx(hq)}


def test_eval_paired_reports_l1_psnr_ssim(tmp_path):
    run(compose_train([*TINY, "model=pix2pix", "dataset.count=64"]), tmp_path / "run")
    out = eval_cli(tmp_path, f"ckpt={tmp_path / 'run'}", "eval.num_samples=16", "eval.metrics=[l1,psnr,ssim]")
    assert out.returncode == 0, out.stderr[-2000:]
    values = json.loads(next((tmp_path / "run" / "eval").glob("*.json")).read_text())["metrics"]
    restored = restore(tmp_path / "run", torch.device("cpu"))
    pairs = instantiate(restored.config.dataset).examples(16)  # shapes_paired has no splits
    fake, target = _drawn_from_seed(restored, 16, input=pairs["input"]) * 0.5 + 0.5, pairs["target"] * 0.5 + 0.5
    assert values == pytest.approx({"L1": float(l1(fake, target).mean()), "PSNR": float(psnr(fake, target).mean()),
                                    "SSIM": float(ssim(fake, target).mean())}, rel=1e-5)


def test_eval_names_the_metrics_that_apply(tmp_path):
    run(compose_train([*TINY, "model=pix2pix", "dataset.count=64"]), tmp_path / "run")
    out = eval_cli(tmp_path, f"ckpt={tmp_path / 'run'}", "eval.metrics=[modes,cycle]")
    message = " ".join((out.stdout + out.stderr).split())  # rich wraps long lines
    assert out.returncode == 1 and "Traceback" not in message
    assert "nothing to compute for this run" in message
    assert "these apply: ['fid', 'is', 'kid', 'pr', 'l1', 'psnr', 'ssim', 'psnr_y', 'ssim_y']" in message
    out = eval_cli(tmp_path, f"ckpt={tmp_path / 'run'}", "eval.metrics=[l1,cycle]", "eval.num_samples=8")
    assert out.returncode == 0 and "['cycle'] do not apply to this run" in " ".join(out.stdout.split())
    report = json.loads(next((tmp_path / "run" / "eval").glob("*.json")).read_text())
    assert report["metric_names"] == ["l1"] and set(report["metrics"]) == {"L1"}
    assert report["data"] == "the training data (the dataset has no splits)"


def test_eval_errors_are_clear(tmp_path):
    run(compose_train([*TINY, "dataset.count=64"]), tmp_path / "run")
    out = eval_cli(tmp_path, f"ckpt={tmp_path / 'run'}", f"eval.inception_weights={tmp_path / 'none.pth'}",
                   "eval.num_samples=10")
    assert out.returncode == 1 and "pt_inception-2015-12-05" in out.stdout + out.stderr
    out = eval_cli(tmp_path, f"ckpt={tmp_path / 'run'}", "eval.num_samples=5")
    assert out.returncode == 1 and "they need at least 10" in out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    out = eval_cli(tmp_path, f"ckpt={tmp_path / 'run'}", "eval.metrics=[fid,bogus]")
    assert out.returncode == 1 and "unknown ['bogus']" in out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr


def test_eval_reports_the_accuracy_of_a_classifying_discriminator(tmp_path):
    run(compose_train([*TINY, "model=ssgan", "dataset.count=64", "model.labelled=8", "model.generator.width=8",
                       "model.discriminator.width=8"]), tmp_path / "run")
    out = eval_cli(tmp_path, f"ckpt={tmp_path / 'run'}", "eval.metrics=[accuracy]")  # the accuracy alone
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(next((tmp_path / "run" / "eval").glob("*.json")).read_text())
    assert set(report["metrics"]) == {"classifier_accuracy"}
    assert report["classifier_accuracy_on"] == "unseen images (dataset.seed=1), 64 images"
    assert "classifier_accuracy" in out.stdout and "unseen images" in out.stdout
    # the same number from D's predictions on those images, by hand
    restored = restore(tmp_path / "run", torch.device("cpu"))
    unseen = instantiate({**restored.config.dataset, "seed": 1})
    predicted = restored.task.D.classify(unseen.batch(torch.arange(64))["real"]).argmax(1)
    expected = (predicted == unseen.tensors["label"]).double().mean().item()
    assert report["metrics"]["classifier_accuracy"] == pytest.approx(expected)

    run(compose_train([*TINY, "dataset.count=64"]), tmp_path / "dcgan")  # D does not classify: nothing to report
    with initialize_config_module("gan_lab.configs", version_base="1.3"):
        cfg = compose("eval", overrides=[f"ckpt={tmp_path / 'dcgan'}", "eval.metrics=[accuracy]"])
    with pytest.raises(ConfigError, match="nothing to compute for this run"):
        evaluate(cfg)
