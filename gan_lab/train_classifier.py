"""``gan-lab train-classifier``: train (or find in the cache) the classifier behind ``eval.features=classifier``.

``gan-lab train-classifier dataset=mnist`` trains the small classifier of ``gan_lab.metrics.classifier`` on
the dataset's train split, prints its accuracy per class on the test split (or on a held-out tenth of a
dataset without splits) and caches it where ``gan-lab eval`` looks for it.
"""

from __future__ import annotations

import time

import hydra
from omegaconf import DictConfig, OmegaConf

from gan_lab import config as config_lib
from gan_lab.engine.precision import resolve_device
from gan_lab.errors import exit_on_error
from gan_lab.metrics.classifier import CachedClassifier, check_settings, load_or_train
from gan_lab.ui import format_duration, print_table, summary_table



def run(cfg: DictConfig) -> CachedClassifier:
    """Load or train the classifier of ``cfg.dataset`` and print its accuracy table."""
    check_settings(cfg.classifier, "classifier")
    t0 = time.perf_counter()
    device = resolve_device(OmegaConf.create({"device": cfg.device}))
    dataset = OmegaConf.to_container(cfg.dataset, resolve=True)
    clf = load_or_train(dataset, cfg.classifier, device, force=cfg.force)
    print_table(summary_table(accuracy_rows(clf, time.perf_counter() - t0), title="gan-lab train-classifier"))
    return clf


def accuracy_rows(clf: CachedClassifier, seconds: float) -> dict[str, str]:
    """The table: accuracy per class and overall, where it was measured, the cache file."""
    rows = {f"accuracy {name}": "-" if acc is None else f"{acc:.4f}"
            for name, acc in zip(clf.class_names, clf.accuracy["per_class"])}
    rows["accuracy overall"] = f"{clf.accuracy['overall']:.4f}"
    rows["measured on"] = clf.evaluated_on
    rows["status"] = f"trained in {format_duration(seconds)}" if clf.trained else "from the cache"
    rows["cache"] = str(clf.path)
    return rows


config_lib.register()  # the resolvers of the shared job_logging config (the log file)


@hydra.main(config_path="pkg://gan_lab.configs", config_name="train_classifier", version_base="1.3")
def main(cfg: DictConfig) -> None:
    exit_on_error(run, cfg)


if __name__ == "__main__":
    main()
