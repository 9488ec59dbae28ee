"""Metric provenance: the protocol every number of ``gan-lab eval`` was measured under.

``<run>/eval/*.json`` holds a ``protocol`` object beside ``metrics``:

- ``generator`` (``ema`` or ``live``), ``split`` and ``data`` (what the real examples are);
- ``sets``: per eval set (the prefix of its keys: ``""``, ``"AtoB "``) the ``generated`` and ``real``
  counts and the image ``shape`` (C, H, W) the metrics saw;
- ``features`` (null when no metric used a feature network): the ``extractor`` (``inception`` or
  ``classifier``), its ``weights`` file and that file's ``weights_sha256``, the ``input`` (size, resize), and
  per set the ``reference_sha256`` of the real features the metrics compared with (the cached reference
  statistics' source: Inception's on-disk cache, the classifier's features of the real images);
- ``metrics``: per plug-in its resolved ``settings`` (KID's subset size, IS's splits, ...) and whether it
  uses the ``features``; ``keys``: per value key its plug-in (``metric``) and ``set``.

:func:`of_key` turns that into the flat protocol of one value, which ``gan-lab report`` compares before it
puts two numbers in one column.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

import torch

_NOT_COMPARED = ("features.weights",)  # a path: its hash says whether two files are the same


@lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, computed once per (path, size, mtime) in this process."""
    stat = os.stat(path)
    return _sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def tensor_sha256(tensor: torch.Tensor) -> str:
    """sha256 of a tensor's values (dtype and shape included)."""
    t = tensor.detach().cpu().contiguous()
    return hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode() + t.view(torch.uint8).numpy().tobytes()).hexdigest()


def flatten(node, prefix: str = "") -> dict:
    """Nested dicts -> {dotted key: leaf}; lists and empty dicts are leaves."""
    if not isinstance(node, dict) or not node:
        return {prefix: node}
    out = {}
    for key, value in node.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def of_key(protocol: dict | None, key: str) -> dict:
    """The flat protocol of value ``key`` of an eval report (``protocol``: its ``protocol`` object): the
    shared entries, its set's counts and shape, its plug-in's settings and, if it uses them, the features
    with that set's reference hash. Reports written before provenance get ``{"protocol": "not recorded"}``."""
    where = (protocol or {}).get("keys", {}).get(key)
    if where is None:
        return {"protocol": "not recorded"}
    metric, set_name = where["metric"], where["set"]
    plugin = protocol["metrics"][metric]
    flat = {"generator": protocol["generator"], "split": protocol["split"],
            **flatten(protocol["sets"][set_name], "set"), **flatten(plugin["settings"], f"{metric}")}
    if plugin["features"]:
        features = {k: v for k, v in protocol["features"].items() if k != "reference_sha256"}
        flat.update(flatten(features, "features"))
        flat["features.reference_sha256"] = protocol["features"]["reference_sha256"].get(set_name)  # IS: none
    return {k: v for k, v in flat.items() if k not in _NOT_COMPARED}
