"""``gan-lab anomaly``: one-class anomaly detection with a GAN trained on normal images only.

``gan-lab train model=dcgan dataset=mnist dataset.classes=[0]`` learns the normal class (digit 0);
``gan-lab anomaly ckpt=<that run>`` scores every image of the dataset's test split, the normal classes (the
checkpoint's ``dataset.classes``) against all others, the one-class protocol of Ruff et al. 2018 ("Deep
One-Class Classification", ICML, its MNIST and CIFAR-10 experiments), and reports the AUROC of the score, its mean per group and the speed.

``method=search``: AnoGAN (Schlegl et al. 2017, §2.2-2.3): ``steps`` (Γ = 500) Adam steps on z per image with
G and D frozen, weight (λ = 0.1) on the feature residual; z starts from the prior (seeded by ``seed``).
``method=encoder``: f-AnoGAN's izi_f encoder (Schlegl et al. 2019), trained once per checkpoint and settings
(``encoder.*``) and cached in ``$GAN_LAB_CACHE/anomaly_encoders``. The methods live in :mod:`gan_lab.anogan`.

Writes ``<run>/anomaly/<time>-<method>.json`` (the report), ``.csv`` (one row per scored image) and ``.png``
(queries, G(z*) and the residual |x - G(z*)| of the first normal and anomalous images, one column each).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from torchvision.utils import save_image

from gan_lab import __version__
from gan_lab import config as config_lib
from gan_lab.anogan import Encoder, Scores, auroc, encoder_scores, search_scores, squash_for, stratified, train_encoder
from gan_lab.engine.precision import resolve_device
from gan_lab.engine.restore import Restored, restore
from gan_lab.errors import ConfigError, exit_on_error
from gan_lab.latent_search import frozen
from gan_lab.metrics import cache
from gan_lab.metrics.evaluate import real_data
from gan_lab.models.noise import NoiseToImage
from gan_lab.ui import ProgressReport, format_duration, print_table, summary_table

log = logging.getLogger("gan_lab")
METHODS = ("search", "encoder")
GRID_COLUMNS = 8  # normal and anomalous examples each in the grid

config_lib.register()


@dataclass
class Target:
    """What scoring needs from a checkpoint: G and D's features, the normal classes, the prior's support."""

    run: Restored
    classes: list[int]
    prior: str
    bounds: tuple[float, float] | None

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return self.run.task.generate(self.run.generator, {"z": z})

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.run.task.D.features(x)

    def networks(self) -> tuple[torch.nn.Module, torch.nn.Module]:
        return self.run.generator, self.run.task.D


def check_settings(cfg: DictConfig) -> None:
    """Every option, before any work; a ConfigError names the key."""
    if cfg.method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {cfg.method!r}")
    if cfg.count is not None and not _positive_int(cfg.count):
        raise ConfigError(f"count must be null (the whole test split) or a positive integer, got {cfg.count!r}")
    for key in ("batch_size", "encoder.iterations", "encoder.batch_size"):
        if not _positive_int(OmegaConf.select(cfg, key)):
            raise ConfigError(f"{key} must be a positive integer, got {OmegaConf.select(cfg, key)!r}")
    if not (isinstance(cfg.steps, int) and not isinstance(cfg.steps, bool) and cfg.steps >= 0):
        raise ConfigError(f"steps must be an integer >= 0, got {cfg.steps!r}")
    if not (isinstance(cfg.weight, (int, float)) and 0 <= cfg.weight <= 1):
        raise ConfigError(f"weight (lambda) must lie in [0, 1], got {cfg.weight!r}")
    for key in ("lr", "encoder.lr"):
        value = OmegaConf.select(cfg, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"{key} must be a positive number, got {value!r}")
    if isinstance(cfg.encoder.kappa, bool) or not isinstance(cfg.encoder.kappa, (int, float)) or cfg.encoder.kappa < 0:
        raise ConfigError(f"encoder.kappa must be a number >= 0, got {cfg.encoder.kappa!r}")
    try:
        squash_for(cfg.encoder.squash, "normal")
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def target_of(run: Restored) -> Target:
    """The checkpoint's G, D features and normal classes, or a ConfigError saying why it cannot be scored."""
    task, name = run.task, run.config.model.get("_target_")
    if not isinstance(task, NoiseToImage) or set(task.sample_inputs(1)) != {"z"}:
        raise ConfigError(f"ckpt: {run.path} is a {type(task).__name__} ({name}); gan-lab anomaly maps images to the "
                          "latent z of an unconditional image GAN (G(z) only: model=dcgan, gan, lsgan, wgan, wgan_gp, ...)")
    if not callable(getattr(task.D, "features", None)):
        raise ConfigError(f"ckpt: the discriminator {type(task.D).__name__} of {run.path} exposes no features "
                          "(D.features), which AnoGAN's discrimination loss and f-AnoGAN's feature residual compare; "
                          "use a model whose D has them (dcgan, gan, lsgan, wgan, wgan_gp, sagan)")
    dataset = run.config.dataset
    classes = dataset.get("classes")
    if classes is None:
        raise ConfigError(f"ckpt: {run.path} was trained on every class of its dataset (no dataset.classes); anomaly "
                          "detection needs a GAN of the normal classes only: train it with dataset.classes=[k, ...] "
                          "(e.g. gan-lab train model=dcgan dataset=mnist dataset.classes=[0])")
    if "split" not in dataset:
        raise ConfigError(f"ckpt: its dataset {dataset.get('_target_')} has no test split to score")
    return Target(run, list(classes), task.prior, task.latent_bounds)


def scored_images(target: Target, count: int | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """(images, labels, anomalous, indices in the test split) of the stratified subset to score, and the size
    of the whole test split."""
    node = OmegaConf.to_container(target.run.config.dataset, resolve=True)
    data = real_data({**node, "classes": None}, "test")
    index = stratified(data.tensors["label"], count)
    batch = data.batch(index)
    anomalous = ~torch.isin(batch["label"], torch.tensor(target.classes))
    if anomalous.all() or not anomalous.any():
        raise ConfigError(f"count={count}: the scored subset must hold normal and anomalous images")
    return batch["real"], batch["label"], anomalous, index, len(data)


def score_batches(images: torch.Tensor, batch_size: int, device: torch.device, progress: str,
                  score: Callable[[torch.Tensor, slice], Scores]) -> tuple[Scores, float]:
    """``score(x, rows)`` over batches of ``images``, with a progress bar; (the scores, seconds)."""
    parts, t0, n = [], time.perf_counter(), len(images)
    batches = (n + batch_size - 1) // batch_size
    with ProgressReport(batches, 0, 0, every=1, mode=progress, name="anomaly", unit="batch") as report:
        for b in range(batches):
            rows = slice(b * batch_size, min(n, (b + 1) * batch_size))
            parts.append(score(images[rows].to(device), rows))
            report.update(b + 1, rows.stop, {"loss/A": parts[-1].score.mean().item()})
    return Scores.cat([Scores(*(t.cpu() for t in vars(p).values())) for p in parts]), time.perf_counter() - t0


def by_search(cfg: DictConfig, target: Target, images: torch.Tensor, device: torch.device) -> tuple[Scores, float, dict]:
    """AnoGAN: every image's own search, batched; z0 drawn from the prior for all images at once."""
    task = target.run.task
    task.seed_latent(cfg.seed)
    z0 = task.sample_inputs(len(images))["z"]
    with frozen(*target.networks()):
        scores, seconds = score_batches(
            images, cfg.batch_size, device, cfg.progress,
            lambda x, rows: search_scores(target.generate, target.features, x, z0[rows], cfg.steps, cfg.lr,
                                          cfg.weight, target.bounds))
    return scores, seconds, {"steps": cfg.steps, "weight": cfg.weight, "lr": cfg.lr, "z_bounds": target.bounds}


def checkpoint_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_or_train_encoder(cfg: DictConfig, target: Target, device: torch.device) -> tuple[Encoder, dict]:
    """f-AnoGAN's encoder of this checkpoint and settings: from the cache, else trained on the checkpoint's
    (normal) training data and cached."""
    enc, run = cfg.encoder, target.run
    if "discriminator" not in run.config.model:
        raise ConfigError("method=encoder builds its encoder from model.discriminator, which this checkpoint's "
                          "model config does not have")
    discriminator = OmegaConf.to_container(run.config.model.discriminator, resolve=True)
    data = config_lib.instantiate_group(run.config.dataset, "dataset")
    if enc.batch_size > len(data):
        raise ConfigError(f"encoder.batch_size={enc.batch_size} is larger than the normal training data ({len(data)})")
    squash = squash_for(enc.squash, target.prior)
    key = {"checkpoint": checkpoint_digest(run.path), "generator": "ema" if run.generator is not run.task.G else "live",
           "iterations": enc.iterations, "batch_size": enc.batch_size, "lr": enc.lr, "kappa": enc.kappa,
           "squash": squash, "seed": cfg.seed}
    image_shape = list(data.tensors["real"].shape[1:])

    def train() -> tuple[Encoder, dict]:
        torch.manual_seed(cfg.seed)
        encoder = Encoder(discriminator, image_shape, run.task.z_dim, squash).to(device)
        t0 = time.perf_counter()
        with frozen(*target.networks()), ProgressReport(enc.iterations, 0, 0, every=max(1, enc.iterations // 10),
                                                        mode=cfg.progress, name="encoder") as report:
            last = train_encoder(
                encoder, target.generate, target.features,
                lambda k: data.batch_at(k, enc.batch_size, cfg.seed)["real"].to(device), enc.iterations, enc.lr,
                enc.kappa, lambda k, loss: report.update(k, k * enc.batch_size, {"loss/E": loss}
                                                         if k % report.every == 0 else None))
        return encoder, {"final_loss": last, "train_seconds": time.perf_counter() - t0}

    encoder, info, path, trained = cache.load_or_train(
        enc.cache_dir, key, lambda **arch: Encoder(**arch), train, "f-AnoGAN encoder", device, force=enc.force)
    return encoder, {**info, "cache": str(path), "trained_now": trained, **{k: key[k] for k in (
        "iterations", "batch_size", "lr", "kappa", "squash")}}


def by_encoder(cfg: DictConfig, target: Target, images: torch.Tensor, device: torch.device) -> tuple[Scores, float, dict]:
    encoder, info = load_or_train_encoder(cfg, target, device)
    with frozen(*target.networks(), encoder):
        scores, seconds = score_batches(
            images, cfg.batch_size, device, cfg.progress,
            lambda x, rows: encoder_scores(encoder, target.generate, target.features, x, cfg.encoder.kappa))
    return scores, seconds, {"encoder": info}


def anomaly(cfg: DictConfig) -> dict:
    """Score the checkpoint's test split; returns the report (also written to ``<run>/anomaly/``)."""
    check_settings(cfg)
    device = resolve_device(OmegaConf.create({"device": cfg.device}))
    target = target_of(restore(cfg.ckpt, device, use_ema=cfg.ema))
    images, labels, anomalous, index, split_size = scored_images(target, cfg.count)
    method = by_search if cfg.method == "search" else by_encoder
    scores, seconds, settings = method(cfg, target, images, device)
    run = target.run
    report = {
        "method": cfg.method, "auroc": auroc(scores.score, anomalous),
        # The two parts alone (unweighted, at the same z): which one carries the detection.
        "auroc_residual": auroc(scores.residual, anomalous), "auroc_feature": auroc(scores.feature, anomalous),
        "mean_score_normal": float(scores.score[~anomalous].mean()),
        "mean_score_anomalous": float(scores.score[anomalous].mean()),
        "normal_classes": target.classes, "images": len(images), "normal": int((~anomalous).sum()),
        "anomalous": int(anomalous.sum()),
        "subset": "the whole test split" if len(images) == split_size else
        f"a stratified subset: {len(images)} of the {split_size} test images, each class in its share of the split",
        "count": cfg.count, "batch_size": cfg.batch_size, "seconds": round(seconds, 3), "images_per_second": len(images) / seconds, "seconds_per_image": seconds / len(images),
        **settings, "seed": cfg.seed, "checkpoint": str(run.path), "step": run.step,
        "dataset": run.config.dataset["_target_"], "generator": "ema" if run.generator is not run.task.G else "live",
        "device": str(device), "gan_lab_version": __version__,
    }
    write_outputs(report, run, images, labels, anomalous, index, scores)
    return report


def write_outputs(report: dict, run: Restored, images: torch.Tensor, labels: torch.Tensor, anomalous: torch.Tensor,
                  index: torch.Tensor, scores: Scores) -> None:
    """The JSON report, the per-image CSV, the grid; then the summary table."""
    out = run.path.parent.parent / "anomaly"
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{datetime.now():%Y-%m-%d_%H-%M-%S}-{report['method']}"
    report["files"] = {kind: str(stem.with_suffix(f".{kind}")) for kind in ("json", "csv", "png")}
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2))
    with stem.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["test_index", "label", "anomalous", "score", "residual", "feature"])
        for row in zip(index.tolist(), labels.tolist(), anomalous.int().tolist(), scores.score.tolist(),
                       scores.residual.tolist(), scores.feature.tolist()):
            writer.writerow(row)
    picks = torch.cat([torch.nonzero(~anomalous).flatten()[:GRID_COLUMNS], torch.nonzero(anomalous).flatten()[:GRID_COLUMNS]])
    query, fake = images[picks], scores.reconstruction[picks]
    residual = (query - fake).abs().clamp(0, 2) - 1  # |x - G(z*)| in [0, 2], shown as an image in [-1, 1]
    save_image(torch.cat([query, fake, residual]).float() * 0.5 + 0.5, stem.with_suffix(".png"), nrow=len(picks),
               pad_value=1.0)
    rows = {"method": report["method"], "AUROC": f"{report['auroc']:.4f}",
            "AUROC residual / feature part": f"{report['auroc_residual']:.4f} / {report['auroc_feature']:.4f}",
            "mean score normal": f"{report['mean_score_normal']:.5g}",
            "mean score anomalous": f"{report['mean_score_anomalous']:.5g}",
            "normal classes": str(report["normal_classes"]),
            "images": f"{report['images']} ({report['normal']} normal, {report['anomalous']} anomalous); {report['subset']}",
            "speed": f"{report['images_per_second']:.3g} images/s ({format_duration(report['seconds'])})"}
    if "encoder" in report:
        info = report["encoder"]
        rows["encoder"] = (f"trained now in {format_duration(info['train_seconds'])}" if info["trained_now"]
                           else "from the cache") + f": {info['cache']}"
    rows["report"] = report["files"]["json"]
    print_table(summary_table(rows, title=f"gan-lab anomaly, step {run.step}"))


@hydra.main(config_path="pkg://gan_lab.configs", config_name="anomaly", version_base="1.3")
def main(cfg: DictConfig) -> None:
    exit_on_error(anomaly, cfg)


if __name__ == "__main__":
    main()
