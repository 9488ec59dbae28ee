"""The semi-supervised GAN's discriminator as a classifier (Salimans et al. 2016, "Improved Techniques for
Training GANs", §5): its accuracy on labelled images it did not train on."""

from __future__ import annotations

import torch

from gan_lab.errors import ConfigError
from gan_lab.metrics.evaluate import Metric, held_out
from gan_lab.models.ssgan import SemiSupervisedTask


class DiscriminatorAccuracy(Metric):
    """``classifier_accuracy`` of ``D.classify`` on the evaluation data where it is the dataset's test split,
    else for a seeded synthetic dataset on a fresh draw with the next seed, else (plain folders) on the
    training images; the report says which (``classifier_accuracy_on``)."""

    def applies(self, ev, s) -> bool:
        return isinstance(ev.task, SemiSupervisedTask) and s.given is None

    @torch.no_grad()
    def __call__(self, ev, s) -> dict[str, float]:
        data, where = held_out(ev)
        if "label" not in data.tensors:
            raise ConfigError("classifier_accuracy: the run's dataset has no labels to compare the predictions with")
        correct, size = 0, ev.settings.batch_size
        for start in range(0, len(data), size):
            batch = data.batch(torch.arange(start, min(start + size, len(data))))
            predicted = ev.task.D.classify(batch["real"].to(ev.device)).argmax(1)
            correct += int((predicted.cpu() == batch["label"].cpu()).sum())
        ev.info["classifier_accuracy_on"] = f"{where}, {len(data)} images"
        return {"classifier_accuracy": correct / len(data)}
