"""``gan-lab eval``: metrics of a trained checkpoint against real data.

Loads the model and its own config from the checkpoint and measures what its task compares
(``task.eval_sets``: ``eval.num_samples`` samples against the run's dataset on its test split where it
has one, translations against their targets, ...) with the metric plug-ins of ``eval.metrics``
(``configs/eval/default.yaml``; by default every one that applies), from the EMA generator when the run
kept one. Prints a table and writes ``<run>/eval/<timestamp>.json``: the values and, beside them, the
``protocol`` they were measured under (``gan_lab.metrics.protocol``). The work is done by the library
``gan_lab.metrics.evaluate``, which FID during training calls too.

``eval.features`` picks the feature network of FID, IS, KID and precision/recall: ``inception`` (the
FID Inception network, comparable with published numbers) or ``classifier`` (gan-lab's own small
classifier of the run's dataset, see ``gan_lab.metrics.classifier``: offline, comparable only between
runs on that dataset).
"""

from __future__ import annotations

import json
import time
from datetime import datetime

import hydra
from omegaconf import DictConfig, OmegaConf

from gan_lab import __version__
from gan_lab import config as config_lib
from gan_lab.engine.precision import resolve_device
from gan_lab.engine.restore import Restored, restore
from gan_lab.errors import exit_on_error
from gan_lab.metrics.evaluate import Evaluation, available_metrics, check_settings, real_data
from gan_lab.ui import print_table, summary_table


config_lib.register()


def evaluate(cfg: DictConfig) -> dict:
    """Run the configured metrics; returns the JSON report (also written next to the checkpoint)."""
    ev, t0 = cfg.eval, time.perf_counter()
    check_settings(ev)
    available = available_metrics(ev)
    device = resolve_device(OmegaConf.create({"device": cfg.device}))
    run = restore(cfg.ckpt, device)
    dataset = OmegaConf.to_container(run.config.dataset, resolve=True)
    data = real_data(dataset, ev.split)
    evaluation = Evaluation(run.task, run.generator, data, ev, device, dataset, seed=cfg.seed)
    metrics = evaluation.select(available, None if ev.metrics is None else list(ev.metrics))
    values = evaluation.run(metrics)
    shared = {
        "generator": "ema" if run.generator is not run.task.G else "live",
        "split": ev.split if "split" in dataset else None,
        # A dataset whose eval conditions are held out in another way (shapes_text) says so itself.
        "data": getattr(data, "eval_data", None) or (
            f"{ev.split} split" if "split" in dataset else "the training data (the dataset has no splits)"),
    }
    report = {
        "metrics": values, "protocol": evaluation.protocol(ev.available, **shared),
        "metric_names": list(metrics), "num_samples": ev.num_samples,
        "checkpoint": str(run.path), "step": run.step, "dataset": dataset["_target_"], **shared,
        "features": ev.features, **evaluation.report_info(),
        "gan_lab_version": __version__, "seconds": round(time.perf_counter() - t0, 2),
    }
    write_report(report, run)
    return report


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
    rows.update({"samples": str(report["num_samples"]), "data": report["data"], "report": str(path)})
    print_table(summary_table(rows, title=f"gan-lab eval, step {run.step}"))


@hydra.main(config_path="pkg://gan_lab.configs", config_name="eval", version_base="1.3")
def main(cfg: DictConfig) -> None:
    exit_on_error(evaluate, cfg)


if __name__ == "__main__":
    main()
