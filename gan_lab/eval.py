"""``gan-lab eval``: metrics of a trained checkpoint against real data.

Loads the model and its own config from the checkpoint, generates
``eval.num_samples`` samples (the EMA generator when the run kept one), and
compares them with the real data of the run's dataset (its test split where it
has one). Prints a table and writes ``<run>/eval/<timestamp>.json``.

``eval.features`` picks the feature network of the image metrics: ``inception`` (the FID Inception
network, comparable with published numbers) or ``classifier`` (gan-lab's own small classifier of the
run's dataset, see ``gan_lab.metrics.classifier``: offline, comparable only between runs on that
dataset, and it adds the classifier's accuracy on generated samples).

A run whose discriminator classifies (``D.classify``, the semi-supervised GAN) also gets
``classifier_accuracy``: D's accuracy on labelled real data it did not train on (:func:`classifier_accuracy`).
``eval.metrics=[]`` reports only that.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from gan_lab import __version__
from gan_lab import config as config_lib
from gan_lab.data.base import TensorDataset
from gan_lab.engine import checkpoint
from gan_lab.engine.precision import resolve_device
from gan_lab.engine.inference import inference
from gan_lab.engine.restore import Restored, restore
from gan_lab.errors import ConfigError, GanLabError
from gan_lab.metrics.classifier import NOTE as CLASSIFIER_NOTE
from gan_lab.metrics.classifier import check_settings, load_or_train, one_cpu_thread, sample_report
from gan_lab.ui import print_table, summary_table

log = logging.getLogger("gan_lab")

config_lib.register()
IMAGE_METRICS = ("fid", "is", "kid", "pr")
PAIRED_METRICS = ("l1", "psnr", "ssim", "fid")
FEATURES = ("inception", "classifier")


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8, rounding as the real data was quantised."""
    return images.float().mul(127.5).add(127.5).round().clamp(0, 255).to(torch.uint8).cpu()


def real_data(run: Restored, split: str) -> TensorDataset:
    """The run's dataset, on its ``split`` where the dataset has splits."""
    node = OmegaConf.to_container(run.config.dataset, resolve=True)
    if "split" in node:
        node["split"] = split
    return instantiate(node)


def generate_labelled(run: Restored, n: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``n`` samples from the prior and the classes they were drawn for (conditional models: uniformly;
    None for unconditional ones), through ``task.sample``."""
    out, labels = [], []
    with inference(run.generator, run.task.device):
        if run.seed is not None:  # FID during training: the same inputs at every evaluation
            torch.manual_seed(run.seed)
        for start in range(0, n, batch_size):
            drawn = run.task.sample(min(batch_size, n - start), run.generator)
            out.append(drawn["samples"].float().cpu())
            if "label" in drawn:
                labels.append(drawn["label"].cpu())
    return torch.cat(out), torch.cat(labels) if labels else None


def generate(run: Restored, n: int, batch_size: int) -> torch.Tensor:
    """``n`` samples from the prior (conditional models: classes drawn uniformly)."""
    return generate_labelled(run, n, batch_size)[0]


def translate(run: Restored, images: torch.Tensor, batch_size: int, **given) -> torch.Tensor:
    """``task.sample(input=...)`` over ``images`` (float in [-1, 1]) in batches; outputs on the CPU."""
    outputs = []
    with inference(run.generator, run.task.device):
        if run.seed is not None:  # FID during training: the same inputs at every evaluation
            torch.manual_seed(run.seed)
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size].to(run.task.device)
            outputs.append(run.task.sample(len(x), run.generator, input=x, **given)["samples"].float().cpu())
    return torch.cat(outputs)


def real_features(net, real: torch.Tensor, key: dict, ev: DictConfig) -> torch.Tensor:
    """Inception pool features of the real images, cached per (dataset, split, size, count, weights).

    The cache file stores its own key; a file that is unreadable or holds another key
    is ignored and rebuilt, never trusted."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    path = Path(ev.cache_dir).expanduser() / f"real-{digest}.pt"
    try:
        cached = torch.load(path, map_location="cpu", weights_only=True)
        if cached.get("key") == key and cached["pool"].shape == (len(real), 2048):
            log.info("real features from the cache %s", path)
            return cached["pool"]
        log.warning("ignoring %s: it was computed for other data or weights", path)
    except FileNotFoundError:
        pass
    except Exception as err:  # truncated or foreign file: rebuild it
        log.warning("ignoring unreadable cache file %s (%s)", path, type(err).__name__)
    pool, _ = net.extract(real, ev.batch_size)
    checkpoint.save({"key": key, "pool": pool}, path)
    return pool


def feature_metrics(fake_pool: torch.Tensor, fake_logits: torch.Tensor, real_pool: Callable[[], torch.Tensor],
                    metrics: list[str], ev: DictConfig, prefix: str = "") -> dict:
    """IS, FID, KID and precision/recall from one network's features; ``real_pool`` is called only when needed."""
    from gan_lab.metrics.fid import fid_from_features
    from gan_lab.metrics.inception_score import inception_score
    from gan_lab.metrics.kid import kernel_inception_distance
    from gan_lab.metrics.precision_recall import precision_recall

    values = {}
    if "is" in metrics:
        values[f"{prefix}IS"], values[f"{prefix}IS std"] = inception_score(fake_logits)
    if {"fid", "kid", "pr"} & set(metrics):
        real = real_pool()
        if "fid" in metrics:
            values[f"{prefix}FID"] = fid_from_features(real, fake_pool)
        if "kid" in metrics:
            size = min(ev.kid_subset_size, len(real), len(fake_pool))
            values[f"{prefix}KID"], values[f"{prefix}KID std"] = kernel_inception_distance(real, fake_pool,
                                                                                          subset_size=size)
        if "pr" in metrics:
            values[f"{prefix}precision"], values[f"{prefix}recall"] = precision_recall(real, fake_pool)
    return values


def image_metrics(fake: torch.Tensor, real: torch.Tensor, metrics: list[str], ev: DictConfig,
                  device: torch.device, real_key: dict) -> tuple[dict, str]:
    """Inception-feature metrics of uint8 image sets; returns the values and the weights' sha256 prefix."""
    from gan_lab.metrics.inception import InceptionFeatures

    net = InceptionFeatures(ev.inception_weights, device, download=ev.download)
    weights = hashlib.sha256(Path(net.weights).read_bytes()).hexdigest()[:16]
    fake_pool, fake_logits = net.extract(fake, ev.batch_size)
    key = {**real_key, "count": len(real), "shape": list(real.shape[1:]), "weights": weights}
    return feature_metrics(fake_pool, fake_logits, lambda: real_features(net, real, key, ev), metrics, ev), weights


def classifier_metrics(run: Restored, fake: torch.Tensor, requested: torch.Tensor | None, real: torch.Tensor,
                       metrics: list[str], ev: DictConfig, device: torch.device) -> tuple[dict, dict]:
    """Metrics on the features of the dataset's cached classifier (trained first if not cached), plus its
    accuracy per requested class (conditional models) or share of samples per class; and where it came from."""
    clf = load_or_train(OmegaConf.to_container(run.config.dataset, resolve=True), ev.classifier, device)
    fake_pool, fake_logits = clf.net.extract(fake, ev.batch_size)
    with one_cpu_thread(device):
        values = feature_metrics(fake_pool, fake_logits, lambda: clf.net.extract(real, ev.batch_size)[0],
                                 metrics, ev, prefix="classifier-")
    values.update(sample_report(fake_logits, requested, clf.class_names))
    info = {"cache": str(clf.path), "accuracy": clf.accuracy["overall"], "evaluated_on": clf.evaluated_on}
    return values, info


def sample_metrics(run: Restored, data: TensorDataset, metrics: list[str], ev: DictConfig,
                   device: torch.device, real_key: dict) -> tuple[dict, dict]:
    """Metrics of a noise-to-image model's samples; returns the values and the report's feature-network entries."""
    unknown = set(metrics) - set(IMAGE_METRICS)
    if unknown:
        raise ConfigError(f"eval.metrics: unknown {sorted(unknown)}; choose from {list(IMAGE_METRICS)}")
    fake, requested = generate_labelled(run, ev.num_samples, ev.batch_size)
    fake = to_uint8(fake)
    real = data.tensors["real"][: ev.num_samples].cpu()
    if fake.shape[1:] != real.shape[1:]:
        raise ConfigError(f"generated images {tuple(fake.shape[1:])} differ from the real ones "
                          f"{tuple(real.shape[1:])}; evaluate against the run's own dataset")
    if ev.features == "classifier":
        values, info = classifier_metrics(run, fake, requested, real, metrics, ev, device)
        return values, {"inception_weights_sha256": None, "note": CLASSIFIER_NOTE, "classifier": info}
    values, weights = image_metrics(fake, real, metrics, ev, device, real_key)
    return values, {"inception_weights_sha256": weights}


def paired_metrics(run: Restored, data: TensorDataset, metrics: list[str], ev: DictConfig,
                   device: torch.device, real_key: dict) -> tuple[dict, dict]:
    """L1, PSNR, SSIM (and FID) of an image-to-image model's outputs against the targets."""
    from gan_lab.metrics.image_quality import l1, psnr, ssim

    unknown = set(metrics) - set(PAIRED_METRICS)
    if unknown:
        raise ConfigError(f"eval.metrics: {sorted(unknown)} do not apply to image-to-image models; "
                          f"choose from {list(PAIRED_METRICS)}")
    pairs = data.examples(ev.num_samples)
    out = translate(run, pairs["input"], ev.batch_size)
    return translation_metrics(out, pairs["target"].cpu(), True, metrics, ev, device, real_key)


def translation_metrics(out: torch.Tensor, target: torch.Tensor, paired: bool, metrics: list[str], ev: DictConfig,
                        device: torch.device, real_key: dict, prefix: str = "") -> tuple[dict, dict]:
    """L1, PSNR and SSIM of translated images against their true partners (``paired``), and FID of the
    translations against the target domain's images."""
    from gan_lab.metrics.image_quality import l1, psnr, ssim

    a, b = out * 0.5 + 0.5, target * 0.5 + 0.5
    values = {}
    if paired:
        values = {f"{prefix}{name}": float(fn(a, b).mean()) for name, fn in (("L1", l1), ("PSNR", psnr), ("SSIM", ssim))
                  if name.lower() in metrics}
    weights = None
    if "fid" in metrics:
        fid, weights = image_metrics(to_uint8(out), to_uint8(target), ["fid"], ev, device, real_key)
        values.update({f"{prefix}{k}": v for k, v in fid.items()})
    return values, {"inception_weights_sha256": weights}


def unpaired_metrics(run: Restored, data, metrics: list[str], ev: DictConfig, device: torch.device,
                     real_key: dict) -> tuple[dict, dict]:
    """Per direction: translations of one domain's test images against the other domain (and against the
    true partners where the dataset keeps hidden pairs), and the cycle error |G_BA(G_AB(a)) - a|."""
    unknown = set(metrics) - set(PAIRED_METRICS)
    if unknown:
        raise ConfigError(f"eval.metrics: {sorted(unknown)} do not apply to translators; "
                          f"choose from {list(PAIRED_METRICS)}")
    examples = data.examples(ev.num_samples)
    values, extra = {}, {"inception_weights_sha256": None}
    for source, target, direction, back in (("A", "B", "AtoB", "BtoA"), ("B", "A", "BtoA", "AtoB")):
        x = examples[source].cpu()
        out = translate(run, x, ev.batch_size, direction=direction)
        cycled = translate(run, out, ev.batch_size, direction=back)
        found, info = translation_metrics(out, examples[target].cpu(), bool(getattr(data, "paired", False)),
                                          metrics, ev, device, {**real_key, "domain": target}, f"{direction} ")
        values.update(found)
        values[f"{direction} cycle L1"] = float((cycled - x).abs().mean() * 0.5)  # in [0, 1] image units
        extra.update({k: v for k, v in info.items() if v is not None})
    return values, extra


@torch.no_grad()
def classifier_accuracy(run: Restored, data: TensorDataset, split: str, batch_size: int) -> tuple[float, str]:
    """Accuracy of the run's classifying discriminator (``D.classify``) on labelled images it did not train
    on, and which images: ``data`` where it is the dataset's ``split``, else for a seeded synthetic dataset
    a fresh draw with the next seed, else (plain folders) ``data`` itself, the training images."""
    node = OmegaConf.to_container(run.config.dataset, resolve=True)
    if "split" in node:
        where = f"{split} split"
    elif "seed" in node:
        node["seed"] += 1
        data, where = instantiate(node), f"unseen images (dataset.seed={node['seed']})"
    else:
        where = "the training images (the dataset has no test split)"
    if "label" not in data.tensors:
        raise ConfigError("classifier_accuracy: the run's dataset has no labels to compare the predictions with")
    correct = 0
    for start in range(0, len(data), batch_size):
        batch = data.batch(torch.arange(start, min(start + batch_size, len(data))))
        predicted = run.task.D.classify(batch["real"].to(run.task.device)).argmax(1)
        correct += int((predicted.cpu() == batch["label"].cpu()).sum())
    return correct / len(data), f"{where}, {len(data)} images"


# The fewest samples each metric can be computed from: IS averages 10 splits, precision/recall
# (k = 3) needs more than k neighbours per set, FID and KID two samples.
MIN_SAMPLES = {"is": 10, "pr": 4, "fid": 2, "kid": 2}


def check_eval_settings(ev: DictConfig) -> None:
    """Checks of the eval settings that need no model or data, so bad values stop before any work."""
    need = max((MIN_SAMPLES.get(m, 2) for m in ev.metrics), default=2)
    if ev.num_samples < need:
        raise ConfigError(f"eval.num_samples={ev.num_samples} is too few for eval.metrics={list(ev.metrics)}: "
                          f"they need at least {need} (IS: 10 splits; precision/recall: k=3 neighbours)")
    if ev.features not in FEATURES:
        raise ConfigError(f"eval.features must be one of {list(FEATURES)}, got {ev.features!r}")
    if ev.features == "classifier":
        check_settings(ev.classifier, "eval.classifier")


def evaluate(cfg: DictConfig) -> dict:
    """Run the configured metrics; returns the JSON report (also written next to the checkpoint)."""
    ev, t0 = cfg.eval, time.perf_counter()
    check_eval_settings(ev)
    torch.manual_seed(cfg.seed)
    device = resolve_device(OmegaConf.create({"device": cfg.device}))
    run = restore(cfg.ckpt, device)
    data = real_data(run, ev.split)
    real_key = {"dataset": OmegaConf.to_container(run.config.dataset, resolve=True), "split": ev.split}
    metrics = list(ev.metrics)
    classifies = data.kind == "image" and callable(getattr(run.task.D, "classify", None))
    if data.kind != "image" and ev.features == "classifier":
        raise ConfigError(f"eval.features=classifier needs a labelled image dataset; this run's dataset "
                          f"({run.config.dataset._target_}) has {data.kind} data")
    if data.kind == "points":
        from gan_lab.metrics.toy2d import mode_coverage

        covered, hq = mode_coverage(generate(run, ev.num_samples, ev.batch_size), data.modes, data.std)
        values = {"modes covered": f"{covered}/{len(data.modes)}", "high-quality fraction": hq}
        extra = {"inception_weights_sha256": None}
    elif data.kind == "paired":
        values, extra = paired_metrics(run, data, metrics, ev, device, real_key)
    elif data.kind == "unpaired":
        values, extra = unpaired_metrics(run, data, metrics, ev, device, real_key)
    elif metrics:
        values, extra = sample_metrics(run, data, metrics, ev, device, real_key)
    elif classifies:
        values, extra = {}, {"inception_weights_sha256": None}
    else:
        raise ConfigError("eval.metrics is empty and this run's discriminator does not classify: nothing to report")
    if classifies:
        values["classifier_accuracy"], extra["classifier_accuracy_on"] = classifier_accuracy(run, data, ev.split,
                                                                                            ev.batch_size)
    report = {
        "metrics": values, "num_samples": ev.num_samples, "checkpoint": str(run.path), "step": run.step,
        "dataset": run.config.dataset._target_, "split": ev.split if "split" in run.config.dataset else None,
        "features": ev.features, **extra, "gan_lab_version": __version__,
        "generator": "ema" if run.generator is not run.task.G else "live",
        "seconds": round(time.perf_counter() - t0, 2),
    }
    write_report(report, run)
    return report


class TrainingEvaluator:
    """FID of the live run every ``eval.every`` steps (``configs/eval/training.yaml``).

    Each evaluation draws the same ``eval.num_samples`` inputs (seeded by ``seed``, on a
    forked RNG, so training takes the same path with or without it) from the EMA
    generator when the run keeps one, and compares them with the dataset's ``eval.split``
    through the same code as ``gan-lab eval``; the real features are cached."""

    def __init__(self, cfg: DictConfig, device: torch.device):
        ev = cfg.eval
        check_eval_settings(ev)
        if list(ev.metrics) != ["fid"]:
            raise ConfigError(f"eval.metrics during training must be [fid], got {list(ev.metrics)}")
        self.cfg, self.device = cfg, device
        dataset = OmegaConf.to_container(cfg.dataset, resolve=True)
        if "split" in dataset:
            dataset["split"] = ev.split
        self.data = instantiate(dataset)
        if self.data.kind == "points":
            raise ConfigError("eval.every computes FID of images; toy2d runs are evaluated with gan-lab eval")
        if ev.features == "classifier" and self.data.kind != "image":
            raise ConfigError("eval.features=classifier needs a labelled image dataset")
        self.real_key = {"dataset": dataset, "split": ev.split}
        self.name = "classifier_fid" if ev.features == "classifier" else "fid"
        # Fail now, not at the first evaluation, when the feature network cannot be had (on a forked
        # RNG: building a network draws random weights, which would shift the run's random stream).
        if ev.features == "classifier":
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                load_or_train(dataset, ev.classifier, device)
        else:
            from gan_lab.metrics.inception import resolve_weights
            resolve_weights(ev.inception_weights, ev.download)

    def __call__(self, state) -> tuple[str, float]:
        run = Restored(state.task, state.task.sampling_generator(), self.cfg, Path(), state.step, self.cfg.seed)
        score = {"paired": paired_metrics, "unpaired": unpaired_metrics}.get(self.data.kind, sample_metrics)
        # Feature networks draw from the RNG too (a classifier trained on first use): fork all of it.
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            values, _ = score(run, self.data, ["fid"], self.cfg.eval, self.device, self.real_key)
        return self.name, next(v for k, v in values.items() if k.endswith("FID"))


def write_report(report: dict, run: Restored) -> None:
    """``<run>/eval/<timestamp>.json`` and the table."""
    out_dir = run.path.parent.parent / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{datetime.now():%Y-%m-%d_%H-%M-%S}.json"
    path.write_text(json.dumps(report, indent=2))
    rows = {k: (f"{v:.6g}" if isinstance(v, float) else str(v)) for k, v in report["metrics"].items()}
    if "classifier_accuracy_on" in report:
        rows["classifier_accuracy"] += f" on {report['classifier_accuracy_on']}"
    if "classifier" in report:
        clf = report["classifier"]
        rows.update({"features": "classifier", "note": report["note"],
                     "classifier": f"{clf['cache']} (accuracy {clf['accuracy']:.4f} on its {clf['evaluated_on']})"})
    print_table(summary_table({**rows, "samples": str(report["num_samples"]), "report": str(path)},
                              title=f"gan-lab eval, step {run.step}"))


@hydra.main(config_path="pkg://gan_lab.configs", config_name="eval", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        evaluate(cfg)
    except GanLabError as err:
        log.error("%s", err)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
