"""The metrics library that ``gan-lab eval`` and FID during training both call.

A task says what evaluation compares (``task.eval_sets``: samples from the prior against real images,
translations against their targets, ...). An :class:`Evaluation` generates each set's outputs once,
extracts their features once, and hands them to the metric plug-ins named in ``eval.metrics``: the
``_target_`` objects of ``eval.available`` (``configs/eval/default.yaml``), each saying which sets it
applies to. Adding a metric is a :class:`Metric` subclass beside its function and one line in that
file; the apps never name a metric. (torch-fidelity's library-first design: the CLI is a thin shell.)
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from functools import cached_property

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from gan_lab import config as config_lib
from gan_lab.engine.inference import inference
from gan_lab.errors import ConfigError, GanLabError
from gan_lab.metrics import cache
from gan_lab.metrics.protocol import file_sha256, tensor_sha256
from gan_lab.models.base import EvalSet, GANTask

log = logging.getLogger("gan_lab")

FEATURES = ("inception", "classifier")


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8, rounding as the real data was quantised."""
    return images.float().mul(127.5).add(127.5).round().clamp(0, 255).to(torch.uint8).cpu()


@dataclass
class Outputs:
    """What ``G`` produced for one eval set: ``fake`` (float, CPU), the ``labels`` the samples were drawn
    for (conditional models), and ``cycled``, the outputs mapped back (translators)."""

    fake: torch.Tensor
    labels: torch.Tensor | None = None
    cycled: torch.Tensor | None = None


class Metric:
    """A metric plug-in: ``applies(ev, s)`` says whether it measures eval set ``s`` of a run,
    ``__call__(ev, s)`` returns its values for that set (keys without the set's name), taking the
    outputs and features it needs from ``ev`` (``ev.outputs(s)``, ``ev.features(s)``), which computes
    each once."""

    min_samples = 2  # the fewest samples it can be computed from

    def applies(self, ev: Evaluation, s: EvalSet) -> bool:
        """By default: sets of images (piano rolls (N, tracks, time, pitches) are 4-D too, but no images)."""
        return s.real.dim() == 4 and ev.data.kind != "roll"

    def __call__(self, ev: Evaluation, s: EvalSet) -> dict[str, float | str]:
        raise NotImplementedError


class FeatureMetric(Metric):
    """A metric of feature-network features (FID, IS, KID, precision/recall): ``measure`` gets the outputs'
    pool features and logits and, when ``needs_real``, the real images' pool features; its keys get the
    network's prefix (``classifier-FID``)."""

    needs_real = True

    def __call__(self, ev: Evaluation, s: EvalSet) -> dict[str, float]:
        with ev.network.threads():
            pool, logits = ev.features(s)
            real = ev.real_features(s) if self.needs_real else None
            return {f"{ev.network.prefix}{k}": v for k, v in self.measure(pool, logits, real).items()}

    def measure(self, pool: torch.Tensor, logits: torch.Tensor, real: torch.Tensor | None) -> dict[str, float]:
        raise NotImplementedError


class Evaluation:
    """One evaluation of generator ``G`` of ``task`` against ``data`` (the run's dataset on its eval split).

    ``settings`` are the ``eval`` settings; ``dataset`` is the resolved dataset config (cache keys, the
    classifier); with ``seed`` every set's sampling starts from it (the latent stream and the global RNG,
    both forked), so repeated evaluations see the same inputs. ``info`` collects what the report says
    beside the values."""

    def __init__(self, task: GANTask, G: nn.Module, data, settings: DictConfig, device: torch.device,
                 dataset: dict, seed: int | None = None, network=None):
        self.task, self.G, self.data, self.settings, self.device = task, G, data, settings, device
        self.dataset, self.seed = dataset, seed
        self.sets = task.eval_sets(data, settings.num_samples)
        self.info: dict = {}
        if network is not None:
            self.network = network
        self._outputs: dict[str, Outputs] = {}
        self._fake_features: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._real_features: dict[str, torch.Tensor] = {}
        # For the protocol: value key -> (metric, set); the metrics that read features; real features' hashes.
        self._measured: dict[str, tuple[str, str]] = {}
        self._current: str | None = None
        self._feature_users: set[str] = set()
        self._reference: dict[str, str] = {}

    def select(self, available: dict[str, Metric], names: list[str] | None) -> dict[str, Metric]:
        """The metrics to compute: those of ``names`` that apply to this run (the others are skipped with a
        warning, so one list serves a sweep over models), or with None every available one that applies;
        none to compute, or too few samples for one, stops here, before any work."""
        applicable = [name for name, metric in available.items() if any(metric.applies(self, s) for s in self.sets)]
        unknown = [name for name in names or () if name not in available]
        if unknown:
            raise ConfigError(f"eval.metrics: unknown {unknown}; eval.available has {list(available)}")
        run = f"{type(self.task).__name__} on {self.dataset.get('_target_')}"
        skipped = [name for name in names or () if name not in applicable]
        if skipped:
            log.warning("eval.metrics: %s do not apply to this run (%s); skipped", skipped, run)
        names = applicable if names is None else [name for name in names if name in applicable]
        if not names:
            raise ConfigError(f"eval.metrics: nothing to compute for this run ({run}); these apply: {applicable}")
        need = max(available[name].min_samples for name in names)
        if self.settings.num_samples < need:
            raise ConfigError(f"eval.num_samples={self.settings.num_samples} is too few for eval.metrics="
                              f"{list(names)}: they need at least {need} (IS: 10 splits; precision/recall: k=3 "
                              f"neighbours)")
        if any(isinstance(available[name], FeatureMetric) for name in names):
            self._load_network([name for name in applicable if not isinstance(available[name], FeatureMetric)])
        return {name: available[name] for name in names}

    def _load_network(self, without: list[str]) -> None:
        """The feature network now, before any sample is drawn; a missing Inception file names the way
        around it (``without``: the metrics that need no features)."""
        try:
            self.network  # a cached property: built once, here
        except GanLabError as err:
            if self.settings.features != "inception":
                raise
            raise type(err)(f"{err} Or evaluate without them: eval.features=classifier (labelled image datasets)"
                            f"{f' or eval.metrics={without}' if without else ''}.") from None

    def run(self, metrics: dict[str, Metric]) -> dict[str, float | str]:
        """Every metric on every set it applies to; keys are prefixed with the set's name."""
        values = {}
        for s in self.sets:
            for name, metric in metrics.items():
                if metric.applies(self, s):
                    self._current = name
                    measured = {f"{s.name}{k}": v for k, v in metric(self, s).items()}
                    values.update(measured)
                    self._measured.update({key: (name, s.name) for key in measured})
        return values

    def protocol(self, available: DictConfig, **shared) -> dict:
        """How the values of :meth:`run` were measured (``gan_lab.metrics.protocol``): ``available`` is
        ``eval.available``; ``shared`` are the entries the caller knows (``generator``, ``split``, ``data``)."""
        used = dict.fromkeys(name for name, _ in self._measured.values())
        sets = {s.name: {"generated": len(self._outputs[s.name].fake) if s.name in self._outputs else 0,
                         "real": len(s.real), "shape": list(s.real.shape[1:])}
                for s in self.sets if any(set_name == s.name for _, set_name in self._measured.values())}
        features = None
        if self._feature_users:
            features = {**self.network.protocol, "reference_sha256": self._reference}
        return {
            **shared, "sets": sets, "features": features,
            "metrics": {name: {"settings": OmegaConf.to_container(available[name], resolve=True),
                               "features": name in self._feature_users} for name in used},
            "keys": {key: {"metric": m, "set": s} for key, (m, s) in self._measured.items()},
        }

    def outputs(self, s: EvalSet) -> Outputs:
        """The set's outputs, generated once in batches of ``eval.batch_size`` through ``task.sample``."""
        if s.name not in self._outputs:
            fake, labels = self._generate(s.given)
            cycled = None
            if s.back is not None:
                cycled = self._generate({**s.back, "input": fake})[0]
            self._outputs[s.name] = Outputs(fake, labels, cycled)
        return self._outputs[s.name]

    def _generate(self, given: dict | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``task.sample`` in batches; the tensors of ``given`` (``input`` images, ``text`` embeddings) hold one
        row per output and are split with them."""
        given = given or {}
        rows = [key for key, value in given.items() if torch.is_tensor(value)]
        n, size = (len(given[rows[0]]) if rows else self.settings.num_samples), self.settings.batch_size
        out, labels = [], []
        with inference(self.task, self.G):
            if self.seed is not None:
                torch.manual_seed(self.seed)  # the ops that draw from the global RNG (dropout)
                self.task.seed_latent(self.seed)
            for start in range(0, n, size):
                chunk = {**given, **{key: given[key][start:start + size].to(self.device) for key in rows}}
                drawn = self.task.sample(min(size, n - start), self.G, **chunk)
                out.append(drawn["samples"].float().cpu())
                if "label" in drawn:
                    labels.append(drawn["label"].cpu())
        return torch.cat(out), torch.cat(labels) if labels else None

    def report_info(self) -> dict:
        """What the report says beside the values: the metrics' notes and the feature network's."""
        network = self.__dict__.get("network")
        return {"inception_weights_sha256": None, **(network.info if network is not None else {}), **self.info}

    # -- features, shared by FID, IS, KID and precision/recall --

    @cached_property
    def network(self):
        """The feature network of ``eval.features``, built when a metric first needs it."""
        return feature_network(self.settings, self.dataset, self.device)

    def features(self, s: EvalSet) -> tuple[torch.Tensor, torch.Tensor]:
        """(pool features, logits) of the set's outputs."""
        self._feature_users.add(self._current)
        if s.name not in self._fake_features:
            self._fake_features[s.name] = self.network.extract(to_uint8(self.outputs(s).fake))
        return self._fake_features[s.name]

    def real_features(self, s: EvalSet) -> torch.Tensor:
        """Pool features of the set's real images, which must match its outputs in shape."""
        fake = self.outputs(s).fake
        if fake.shape[1:] != s.real.shape[1:]:
            raise ConfigError(f"generated images {tuple(fake.shape[1:])} differ from the real ones "
                              f"{tuple(s.real.shape[1:])}; evaluate against the run's own dataset")
        if s.name not in self._real_features:
            key = {"dataset": self.dataset, "set": s.name.strip()}
            self._real_features[s.name] = self.network.real(to_uint8(s.real), key)
            self._reference[s.name] = tensor_sha256(self._real_features[s.name])
        return self._real_features[s.name]


def feature_network(ev: DictConfig, dataset: dict, device: torch.device):
    """The FID Inception network or gan-lab's classifier of ``dataset`` (``eval.features``). Either has
    ``prefix`` (of its metric keys), ``info`` (for the report), ``extract(uint8 images) -> (pool, logits)``,
    ``real(uint8 images, key) -> pool`` and ``threads()``, the context its metrics run in."""
    if ev.features == "classifier":
        from gan_lab.metrics.classifier import ClassifierNet

        return ClassifierNet(dataset, ev, device)
    return InceptionNet(ev, device)


class InceptionNet:
    """The FID Inception network (``gan_lab.metrics.inception``); real features are cached on disk per
    (dataset, set, count, shape, weights) by ``gan_lab.metrics.cache``: a file that is unreadable, holds another
    key or fails its checksum is ignored and rebuilt, never trusted."""

    prefix = ""

    def __init__(self, ev: DictConfig, device: torch.device):
        from gan_lab.metrics.inception import InceptionFeatures

        self.net = InceptionFeatures(ev.inception_weights, device, download=ev.download)
        self.ev = ev
        sha256 = file_sha256(self.net.weights)
        self.weights = sha256[:16]
        self.info = {"inception_weights_sha256": self.weights}
        self.protocol = {"extractor": "inception", "network": "FID Inception v3 (TF graph 2015-12-05, torch-fidelity)",
                         "weights": str(self.net.weights), "weights_sha256": sha256,
                         "input": "uint8, resized to 299x299 (TF's bilinear resize); 1 channel repeated to 3"}
        self.threads = contextlib.nullcontext

    def extract(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net.extract(images, self.ev.batch_size)

    def real(self, images: torch.Tensor, key: dict) -> torch.Tensor:
        key = {**key, "count": len(images), "shape": list(images.shape[1:]), "weights": self.weights}
        path = cache.path_for(self.ev.cache_dir, key)
        path = path.with_name(f"real-{path.name}")  # beside the classifier's entries in a shared cache_dir
        pool = cache.read(path, key, lambda entry: entry["pool"] if entry["pool"].shape == (len(images), 2048) else None)
        if pool is not None:
            log.info("real features from the cache %s", path)
            return pool
        pool = self.extract(images)[0]
        cache.write(path, key, {"pool": pool})
        return pool


def held_out(ev: Evaluation):
    """(data, description): examples the run did not train on, for metrics of a model's parts (D as a classifier,
    an encoder): the evaluation data where it is the dataset's test split, for a seeded synthetic dataset a fresh
    draw with the next seed, else (plain folders) the training examples, which the description then says."""
    node = dict(ev.dataset)
    if "split" in node:
        return ev.data, f"{ev.settings.split} split"
    if "seed" in node:
        node["seed"] += 1
        return instantiate(node), f"unseen images (dataset.seed={node['seed']})"
    return ev.data, "the training images (the dataset has no test split)"


def training_data(ev: Evaluation):
    """The run's training examples: the dataset's train split, or the evaluation data where it has no splits."""
    return real_data(ev.dataset, "train") if "split" in ev.dataset else ev.data


def available_metrics(ev: DictConfig) -> dict[str, Metric]:
    """The plug-ins of ``eval.available``, by name."""
    return {name: config_lib.instantiate_group(node, f"eval.available.{name}") for name, node in ev.available.items()}


def check_settings(ev: DictConfig) -> None:
    """Checks of the eval settings that need no model or data, so bad values stop before any work."""
    if ev.features not in FEATURES:
        raise ConfigError(f"eval.features must be one of {list(FEATURES)}, got {ev.features!r}")
    if ev.features == "classifier":
        from gan_lab.metrics.classifier import check_settings as check_classifier

        check_classifier(ev.classifier, "eval.classifier")


def real_data(dataset: dict, split: str):
    """The dataset of a resolved config node on ``split``, where the dataset has splits."""
    node = dict(dataset)
    if "split" in node:
        node["split"] = split
    return instantiate(node)


class TrainingEvaluator:
    """FID of the live run every ``eval.every`` steps (``configs/eval/training.yaml``).

    Each evaluation draws the same ``eval.num_samples`` inputs (seeded by ``seed``, on forked RNGs, so
    training takes the same path with or without it) from the EMA generator when the run keeps one, and
    compares them with the dataset's ``eval.split`` through the same library as ``gan-lab eval``."""

    def __init__(self, cfg: DictConfig, task: GANTask, device: torch.device):
        ev = cfg.eval
        check_settings(ev)
        if list(ev.metrics or []) != ["fid"]:
            raise ConfigError(f"eval.metrics during training must be [fid], got {ev.metrics}")
        self.cfg, self.device = cfg, device
        self.dataset = OmegaConf.to_container(cfg.dataset, resolve=True)
        self.data = real_data(self.dataset, ev.split)
        self.name = "classifier_fid" if ev.features == "classifier" else "fid"
        # Fail now, not at the first evaluation, when FID does not apply or its network cannot be had
        # (on a forked RNG: building a network draws random weights, which would shift the run's stream).
        with self._forked():
            evaluation = self._evaluation(task)
            self.metrics = evaluation.select(available_metrics(ev), ["fid"])
            self.network = evaluation.network

    def _forked(self):
        return torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else [])

    def _evaluation(self, task: GANTask, network=None) -> Evaluation:
        return Evaluation(task, task.sampling_generator(), self.data, self.cfg.eval, self.device, self.dataset,
                          seed=self.cfg.seed, network=network)

    def __call__(self, state) -> tuple[str, float]:
        # Feature networks draw from the RNG too (a classifier trained on first use): fork all of it.
        with self._forked():
            values = self._evaluation(state.task, self.network).run(self.metrics)
        return self.name, next(v for k, v in values.items() if k.endswith("FID"))
