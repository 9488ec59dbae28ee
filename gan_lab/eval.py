"""``gan-lab eval``: metrics of a trained checkpoint against real data.

Loads the model and its own config from the checkpoint, generates
``eval.num_samples`` samples (the EMA generator when the run kept one), and
compares them with the real data of the run's dataset (its test split where it
has one). Prints a table and writes ``<run>/eval/<timestamp>.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
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
from gan_lab.engine.restore import Restored, restore
from gan_lab.errors import ConfigError, GanLabError
from gan_lab.ui import print_table, summary_table

log = logging.getLogger("gan_lab")

config_lib.register()
IMAGE_METRICS = ("fid", "is", "kid", "pr")
PAIRED_METRICS = ("l1", "psnr", "ssim", "fid")


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8, rounding as the real data was quantised."""
    return images.float().mul(127.5).add(127.5).round().clamp(0, 255).to(torch.uint8).cpu()


def real_data(run: Restored, split: str) -> TensorDataset:
    """The run's dataset, on its ``split`` where the dataset has splits."""
    node = OmegaConf.to_container(run.config.dataset, resolve=True)
    if "split" in node:
        node["split"] = split
    return instantiate(node)


@torch.no_grad()
def generate(run: Restored, n: int, batch_size: int) -> torch.Tensor:
    """``n`` samples from the prior (conditional models: classes drawn uniformly)."""
    task, out = run.task, []
    for start in range(0, n, batch_size):
        inputs = task.sample_inputs(min(batch_size, n - start))
        out.append(run.generator(inputs["z"], *task.condition(inputs)).float().cpu())
    return torch.cat(out)


@torch.no_grad()
def translate(run: Restored, data: TensorDataset, n: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(outputs, targets) of an image-to-image model on the first ``n`` pairs, in [-1, 1]."""
    outputs, targets = [], []
    for start in range(0, min(n, len(data)), batch_size):
        batch = data.batch(torch.arange(start, min(start + batch_size, n, len(data))))
        images, _ = run.task.render({k: v.to(run.task.device) for k, v in batch.items()}, run.generator)
        outputs.append(images[1::3].float().cpu())
        targets.append(batch["target"].float().cpu())
    return torch.cat(outputs), torch.cat(targets)


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


def image_metrics(fake: torch.Tensor, real: torch.Tensor, metrics: list[str], ev: DictConfig,
                  device: torch.device, real_key: dict) -> tuple[dict, str]:
    """Inception-feature metrics of uint8 image sets; returns the values and the weights' sha256 prefix."""
    from gan_lab.metrics.fid import fid_from_features
    from gan_lab.metrics.inception import InceptionFeatures
    from gan_lab.metrics.inception_score import inception_score
    from gan_lab.metrics.kid import kernel_inception_distance
    from gan_lab.metrics.precision_recall import precision_recall

    net = InceptionFeatures(ev.inception_weights, device, download=ev.download)
    weights = hashlib.sha256(Path(net.weights).read_bytes()).hexdigest()[:16]
    fake_pool, fake_logits = net.extract(fake, ev.batch_size)
    values = {}
    if "is" in metrics:
        values["IS"], values["IS std"] = inception_score(fake_logits)
    if {"fid", "kid", "pr"} & set(metrics):
        real_pool = real_features(net, real, {**real_key, "count": len(real), "shape": list(real.shape[1:]),
                                              "weights": weights}, ev)
        if "fid" in metrics:
            values["FID"] = fid_from_features(real_pool, fake_pool)
        if "kid" in metrics:
            size = min(ev.kid_subset_size, len(real_pool), len(fake_pool))
            values["KID"], values["KID std"] = kernel_inception_distance(real_pool, fake_pool, subset_size=size)
        if "pr" in metrics:
            values["precision"], values["recall"] = precision_recall(real_pool, fake_pool)
    return values, weights


def evaluate(cfg: DictConfig) -> dict:
    """Run the configured metrics; returns the JSON report (also written next to the checkpoint)."""
    ev, t0 = cfg.eval, time.perf_counter()
    if ev.num_samples < 2:
        raise ConfigError(f"eval.num_samples must be at least 2, got {ev.num_samples}")
    torch.manual_seed(cfg.seed)
    device = resolve_device(OmegaConf.create({"device": cfg.device}))
    run = restore(cfg.ckpt, device)
    data = real_data(run, ev.split)
    real_key = {"dataset": OmegaConf.to_container(run.config.dataset, resolve=True), "split": ev.split}
    metrics, weights = list(ev.metrics), None
    if data.kind == "points":
        from gan_lab.metrics.toy2d import mode_coverage

        covered, hq = mode_coverage(generate(run, ev.num_samples, ev.batch_size), data.modes, data.std)
        values = {"modes covered": f"{covered}/{len(data.modes)}", "high-quality fraction": hq}
    elif data.kind == "paired":
        from gan_lab.metrics.image_quality import l1, psnr, ssim

        unknown = set(metrics) - set(PAIRED_METRICS)
        if unknown:
            raise ConfigError(f"eval.metrics: {sorted(unknown)} do not apply to image-to-image models; "
                              f"choose from {list(PAIRED_METRICS)}")
        out, target = translate(run, data, ev.num_samples, ev.batch_size)
        a, b = out * 0.5 + 0.5, target * 0.5 + 0.5
        values = {name: float(fn(a, b).mean()) for name, fn in (("L1", l1), ("PSNR", psnr), ("SSIM", ssim))
                  if name.lower() in metrics}
        if "fid" in metrics:
            fid, weights = image_metrics(to_uint8(out), to_uint8(target), ["fid"], ev, device, real_key)
            values.update(fid)
    else:
        unknown = set(metrics) - set(IMAGE_METRICS)
        if unknown:
            raise ConfigError(f"eval.metrics: unknown {sorted(unknown)}; choose from {list(IMAGE_METRICS)}")
        fake = to_uint8(generate(run, ev.num_samples, ev.batch_size))
        real = data.tensors["real"][: ev.num_samples].cpu()
        if fake.shape[1:] != real.shape[1:]:
            raise ConfigError(f"generated images {tuple(fake.shape[1:])} differ from the real ones "
                              f"{tuple(real.shape[1:])}; evaluate against the run's own dataset")
        values, weights = image_metrics(fake, real, metrics, ev, device, real_key)
    report = {
        "metrics": values, "num_samples": ev.num_samples, "checkpoint": str(run.path), "step": run.step,
        "dataset": run.config.dataset._target_, "split": ev.split if "split" in run.config.dataset else None,
        "inception_weights_sha256": weights, "gan_lab_version": __version__,
        "generator": "ema" if run.generator is not run.task.G else "live",
        "seconds": round(time.perf_counter() - t0, 2),
    }
    out_dir = run.path.parent.parent / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{datetime.now():%Y-%m-%d_%H-%M-%S}.json"
    path.write_text(json.dumps(report, indent=2))
    rows = {k: (f"{v:.6g}" if isinstance(v, float) else str(v)) for k, v in values.items()}
    print_table(summary_table({**rows, "samples": str(ev.num_samples), "report": str(path)},
                              title=f"gan-lab eval, step {run.step}"))
    return report


@hydra.main(config_path="pkg://gan_lab.configs", config_name="eval", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        evaluate(cfg)
    except GanLabError as err:
        log.error("%s", err)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
