"""Offline feature network: a small classifier that gan-lab trains on a labelled dataset's real data.

``eval.features=classifier`` uses its penultimate features for FID-style distances (as Inception's
pool features are used for FID) and its predictions for the accuracy of a conditional model on the
classes it was asked for, or the share of samples per class for an unconditional one. The network is
gan-lab's own, trained in seconds to a minute on a CPU, so its numbers compare runs on one dataset with
one another, never with published (Inception) FIDs.

Trained classifiers are cached (``gan_lab.metrics.cache``), keyed on the dataset config and the training
settings. :func:`fit`, the training loop, also trains the text encoder and attribute classifier of
``shapes_text``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra.utils import get_class
from omegaconf import OmegaConf
from torch import nn

from gan_lab.config import instantiate_group
from gan_lab.data.base import BatchSampler, TensorDataset
from gan_lab.engine.schedules import Cosine
from gan_lab.errors import ConfigError
from gan_lab.metrics import cache
from gan_lab.metrics.evaluate import Metric
from gan_lab.metrics.protocol import file_sha256

log = logging.getLogger("gan_lab")

NOTE = "classifier features: not comparable to Inception FID"
SETTINGS = ("steps", "batch_size", "lr", "width", "seed")  # the training settings in the cache key
# Dataset keys that say where the files are or how to fetch them, not which images they are.
_NOT_DATA = ("split", "root", "download")
FEATURES = 128  # the feature vector's length
_EVAL_BATCH = 256
_HOLDOUT = 10  # without a test split, 1 in this many samples is held out for the accuracy


@contextlib.contextmanager
def one_cpu_thread(device: torch.device) -> Iterator[None]:
    """On a CPU, run with one intra-op thread. This network's ops (and the 128-d feature statistics) are
    small, so a second thread gains little on an idle machine, and while other processes share the cores
    every op waits for a descheduled thread: on 2 busy cores, 2100 training images/s with one thread, 82
    with two, and a 128-d FID in 0.02 s against 3 s."""
    saved = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class Classifier(nn.Module):
    """Images (B, C, H, W) in [-1, 1] -> (features (B, 128), logits (B, num_classes)).

    Three stride-2 3x3 conv/BN/ReLU blocks (width, 2 width, 4 width channels), average pooling to a
    4x4 map (a no-op at 32 px), then a linear/BN/ReLU layer to the 128-d feature vector and a linear
    layer to the logits. Keeping the 4x4 layout (not a global pool) was worth ~4 points of MNIST test
    accuracy at equal training (98.3% against 94.3% after 300 batches); strided convolutions rather
    than max-pooling make it several times cheaper. Meant for 28-64 px images, 1 or 3 channels.
    """

    def __init__(self, in_channels: int, num_classes: int, width: int = 32):
        super().__init__()
        self.arch = {"in_channels": in_channels, "num_classes": num_classes, "width": width}
        self.body = nn.Sequential(*_block(in_channels, width), *_block(width, 2 * width),
                                  *_block(2 * width, 4 * width), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                                  nn.Linear(16 * 4 * width, FEATURES, bias=False), nn.BatchNorm1d(FEATURES),
                                  nn.ReLU(inplace=True))
        self.head = nn.Linear(FEATURES, num_classes)
        self.to(memory_format=torch.channels_last)  # oneDNN's fast path: ~1.3x NCHW's training rate on a CPU

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x.contiguous(memory_format=torch.channels_last))
        return features, self.head(features)

    @torch.no_grad()
    def extract(self, images: torch.Tensor, batch_size: int = _EVAL_BATCH) -> tuple[torch.Tensor, torch.Tensor]:
        """(features, logits) of uint8 images (N, C, H, W), on the CPU: ``InceptionFeatures.extract``'s
        call shape, so the distance code takes either network."""
        channels = self.arch["in_channels"]
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != channels:
            raise ValueError(f"expected uint8 images (N, {channels}, H, W), got {images.dtype} {tuple(images.shape)}")
        self.eval()
        device = next(self.parameters()).device
        features, logits = [], []
        with one_cpu_thread(device):
            for batch in images.split(batch_size):
                f, y = self(batch.to(device).float().div_(127.5).sub_(1.0))  # as TensorDataset.batch does
                features.append(f.float().cpu())
                logits.append(y.float().cpu())
        return torch.cat(features), torch.cat(logits)


@dataclass
class CachedClassifier:
    """A trained classifier and what is known about it."""

    net: Classifier
    path: Path                 # its cache file
    accuracy: dict             # {"overall": float, "per_class": [float | None per class]}
    evaluated_on: str          # "test split" or the held-out part of the training data
    class_names: list[str]
    trained: bool              # False: loaded from the cache


def check_settings(settings, where: str) -> None:
    """Positive steps, batch size, learning rate and width; errors name ``<where>.<key>``."""
    for key in ("steps", "batch_size", "lr", "width"):
        value = settings[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"{where}.{key} must be a positive number, got {value!r}")


# -- data --

_WANTED = ("dataset: the classifier needs labelled images (shapes, shapes_text, mnist, fashion_mnist, cifar10, "
           "or an image_folder with class sub-folders)")


def check_labelled_images(dataset: dict) -> None:
    """A ConfigError naming ``dataset`` unless its class provides images (checked before decoding anything)."""
    target = dataset.get("_target_")
    try:
        kind = get_class(target).kind
    except Exception:  # no or a wrong _target_ (ImportError, AttributeError, ValueError)
        raise ConfigError(f"dataset._target_={target!r} does not name a gan-lab dataset class") from None
    if kind not in ("image", "text"):
        raise ConfigError(f"{_WANTED}; {target} provides {kind} data")
    if kind == "text" and "split" in dataset:  # CUB, Oxford-102: the test split holds other classes
        raise ConfigError(f"{_WANTED}; {target}'s splits have disjoint classes")


def _instantiate(dataset: dict, split: str | None) -> TensorDataset:
    """The dataset of a resolved config node, on ``split`` where it has one; it must hold labels."""
    data = instantiate_group(OmegaConf.create({**dataset, "split": split} if split else dataset), "dataset")
    if "label" not in data.tensors:
        raise ConfigError(f"{_WANTED}; this {dataset['_target_']} has no labels")
    return data


def _subset(data: TensorDataset, index: torch.Tensor) -> TensorDataset:
    part = TensorDataset({k: v[index] for k, v in data.tensors.items()}, data.num_classes)
    part.class_names = getattr(data, "class_names", None)
    return part


def labelled_splits(dataset: dict) -> tuple[TensorDataset, TensorDataset, str]:
    """(train, test, what test is): the test split where the dataset has one, else a seeded held-out part."""
    if "split" in dataset:
        return _instantiate(dataset, "train"), _instantiate(dataset, "test"), "test split"
    data = _instantiate(dataset, None)
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
    held = max(1, len(data) // _HOLDOUT)
    return _subset(data, perm[held:]), _subset(data, perm[:held]), f"held-out {held} of {len(data)} images"


def _class_names(data: TensorDataset, num_classes: int) -> list[str]:
    names = getattr(data, "class_names", None)
    return list(names) if names else [str(i) for i in range(num_classes)]


# -- training and accuracy --

def fit(net: nn.Module, data: TensorDataset, loss: Callable[[nn.Module, dict], torch.Tensor], settings,
        device: torch.device, what: str) -> nn.Module:
    """Minimise ``loss(net, batch)`` with Adam and a cosine-decayed rate over ``settings.steps`` batches of
    ``data`` (batch ``k``: ``data.batch(indices, augment)`` with a generator seeded by ``(seed, k)``); the
    batch order is deterministic from ``settings.seed``. Logs ``what``'s loss four times."""
    net.to(device).train()
    sampler = BatchSampler(len(data), min(settings.batch_size, len(data)), settings.seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=settings.lr)
    lr_schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, Cosine(settings.steps))
    with one_cpu_thread(device):
        for step in range(1, settings.steps + 1):
            augment = torch.Generator().manual_seed(settings.seed * 1_000_003 + step)
            value = loss(net, data.batch(sampler.indices(step - 1), augment))
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            lr_schedule.step()
            if step % max(1, settings.steps // 4) == 0 or step == settings.steps:
                log.info("%s step %d/%d | loss %.4f", what, step, settings.steps, value.item())
    return net.eval()


def train(data: TensorDataset, settings, device: torch.device) -> Classifier:
    """Cross-entropy with :func:`fit`; deterministic from ``settings.seed`` (weights and batch order),
    leaving the global RNG as it was."""
    num_classes = data.num_classes or int(data.tensors["label"].max()) + 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        net = Classifier(data.tensors["real"].shape[1], num_classes, settings.width)
    data = TensorDataset(dict(data.tensors), data.num_classes).to(device)  # the caller's copy stays put
    return fit(net, data, lambda net, batch: F.cross_entropy(net(batch["real"])[1], batch["label"]), settings,
               device, "classifier")


def class_accuracy(predicted: torch.Tensor, labels: torch.Tensor, num_classes: int) -> list[float | None]:
    """Per class: the share of samples of that label predicted as it (None: no sample has the label)."""
    hits = torch.bincount(labels[predicted == labels], minlength=num_classes).double()
    counts = torch.bincount(labels, minlength=num_classes).double()
    return [float(h / c) if c else None for h, c in zip(hits, counts)]


def accuracy(net: Classifier, data: TensorDataset) -> dict:
    """Overall and per-class accuracy on a labelled dataset."""
    labels = data.tensors["label"].cpu()
    predicted = net.extract(data.tensors["real"].cpu())[1].argmax(1)
    return {"overall": float((predicted == labels).double().mean()),
            "per_class": class_accuracy(predicted, labels, net.arch["num_classes"])}


def sample_report(logits: torch.Tensor, requested: torch.Tensor | None, class_names: list[str]) -> dict:
    """For generated samples: with ``requested`` labels (conditional models), the accuracy per requested
    class and its mean over classes; without, the share of samples per predicted class (mode coverage)."""
    predicted = logits.argmax(1)
    if requested is None:
        shares = torch.bincount(predicted, minlength=len(class_names)).double() / len(predicted)
        return {f"share {name}": float(s) for name, s in zip(class_names, shares)}
    per_class = class_accuracy(predicted, requested.cpu(), len(class_names))
    values = {f"accuracy {name}": a for name, a in zip(class_names, per_class) if a is not None}
    values["accuracy mean"] = sum(values.values()) / len(values)
    return values


# -- the cache --

def cache_key(dataset: dict, settings) -> dict:
    """What a cached classifier was trained for: the dataset config (not where its files are) and settings."""
    return {"dataset": {k: v for k, v in dataset.items() if k not in _NOT_DATA},
            "train": {k: settings[k] for k in SETTINGS}}


def load_or_train(dataset: dict, settings, device: torch.device, force: bool = False) -> CachedClassifier:
    """The classifier of a resolved dataset config node: from the cache, else trained, evaluated and cached.
    A run on some classes only (``dataset.classes``) gets the classifier of every class of its dataset."""
    dataset = {k: v for k, v in dataset.items() if k != "classes"}
    check_labelled_images(dataset)

    def train_now() -> tuple[Classifier, dict]:
        log.info("training the classifier of %s (%d steps)", dataset.get("_target_"), settings.steps)
        train_set, test_set, evaluated_on = labelled_splits(dataset)
        net = train(train_set, settings, device)
        return net, {"accuracy": accuracy(net, test_set), "evaluated_on": evaluated_on,
                     "class_names": _class_names(train_set, net.arch["num_classes"])}

    net, info, path, trained = cache.load_or_train(settings.cache_dir, cache_key(dataset, settings), Classifier,
                                                   train_now, "classifier", device, force)
    return CachedClassifier(net, path, info["accuracy"], info["evaluated_on"], info["class_names"], trained)


# -- as the feature network of `gan-lab eval` --

class ClassifierNet:
    """``eval.features=classifier``: the features of the dataset's classifier, from the cache or trained
    now (the interface of ``gan_lab.metrics.evaluate.feature_network``)."""

    prefix = "classifier-"

    def __init__(self, dataset: dict, settings, device: torch.device):
        self.clf = load_or_train(dataset, settings.classifier, device)
        self.batch_size, self.device = settings.batch_size, device
        self.info = {"inception_weights_sha256": None, "note": NOTE,
                     "classifier": {"cache": str(self.clf.path), "accuracy": self.clf.accuracy["overall"],
                                    "evaluated_on": self.clf.evaluated_on}}
        trained = ", ".join(f"{k} {settings.classifier[k]}" for k in SETTINGS)
        self.protocol = {"extractor": "classifier",
                         "network": f"gan-lab classifier of {dataset.get('_target_')} ({trained})",
                         "weights": str(self.clf.path), "weights_sha256": file_sha256(self.clf.path),
                         "input": "uint8 at the images' own size (no resize), scaled to [-1, 1]"}

    def threads(self):
        return one_cpu_thread(self.device)

    def extract(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.clf.net.extract(images, self.batch_size)

    def real(self, images: torch.Tensor, key: dict) -> torch.Tensor:
        return self.extract(images)[0]  # fast enough not to cache


class ClassReport(Metric):
    """With classifier features, for samples from the prior: the classifier's accuracy per class the
    samples were drawn for (conditional models), or the share of samples per predicted class."""

    def applies(self, ev, s) -> bool:
        return ev.settings.features == "classifier" and s.given is None and s.real.dim() == 4

    def __call__(self, ev, s) -> dict[str, float]:
        with ev.network.threads():
            logits = ev.features(s)[1]
        return sample_report(logits, ev.outputs(s).labels, ev.network.clf.class_names)
