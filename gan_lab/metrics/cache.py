"""Networks gan-lab trains for itself (the eval classifier, the text encoder and attribute classifier of
``shapes_text``), cached on disk as ``<cache_dir>/<digest>.pt`` keyed on what they were trained for
(:func:`load_or_train`).

The file stores its own key and a sha256 of its contents; a file that is unreadable, holds another key, does
not match its checksum (bytes changed on disk: torch's archive reader does not check its CRCs) or does not
rebuild is ignored (with a warning) and trained again, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from gan_lab.engine import checkpoint

log = logging.getLogger("gan_lab")

T = TypeVar("T")


def path_for(cache_dir, key: dict) -> Path:
    """The cache file of ``key`` (a JSON-able dict) in ``cache_dir``."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return Path(str(cache_dir)).expanduser() / f"{digest}.pt"


def read(path: Path, key: dict, restore: Callable[[dict], T]) -> T | None:
    """``restore(entry)`` of the entry at ``path`` if the file is readable, holds ``key`` and restores;
    else None."""
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
        if entry.get("key") != key:
            log.warning("ignoring %s: it was trained for other data or settings", path)
            return None
        if entry.pop("sha256", None) != checksum(entry):
            log.warning("ignoring %s: its contents do not match their checksum (corrupt or from an older gan-lab)",
                        path)
            return None
        return restore(entry)
    except FileNotFoundError:
        return None
    except Exception as err:  # truncated or foreign file: rebuild it
        log.warning("ignoring unreadable cache file %s (%s)", path, type(err).__name__)
        return None


def write(path: Path, key: dict, entry: dict) -> None:
    """Store ``entry`` (tensors, plain containers) with its key and checksum, atomically."""
    entry = {"key": key, **entry}
    checkpoint.save({**entry, "sha256": checksum(entry)}, path)


def checksum(value) -> str:
    """sha256 of a nest of dicts, lists, tensors (dtype, shape and bytes) and plain values."""
    digest = hashlib.sha256()

    def feed(x) -> None:
        if isinstance(x, dict):
            for k in sorted(x, key=str):
                digest.update(repr(k).encode())
                feed(x[k])
        elif isinstance(x, (list, tuple)):
            digest.update(f"[{len(x)}".encode())
            for item in x:
                feed(item)
        elif isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous()
            digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            digest.update(repr(x).encode())

    feed(value)
    return digest.hexdigest()


def load_or_train(cache_dir, key: dict, network: Callable[..., nn.Module], train: Callable[[], tuple[nn.Module, dict]],
                  what: str, device: torch.device, force: bool = False) -> tuple[nn.Module, dict, Path, bool]:
    """(net, info, cache file, trained now) of ``key``: from the cache (``network(**arch)`` with the stored
    weights, in eval mode on ``device``), else ``train()`` -> (net with an ``arch`` dict, info: what to store
    beside it, e.g. its accuracy), cached. ``force``: train even when the cache holds it.

    Neither path draws from the caller's global RNG: a run that builds its data with such a network (shapes_text's
    encoder) initialises its weights the same whether the cache was warm or cold."""
    path = path_for(cache_dir, key)

    def restore(entry: dict) -> tuple[nn.Module, dict]:
        with torch.random.fork_rng(devices=[]):  # the throwaway initial weights
            net = network(**entry["arch"])
        net.load_state_dict(entry["state"])
        return net.to(device).eval(), {k: v for k, v in entry.items() if k not in ("key", "arch", "state")}

    cached = None if force else read(path, key, restore)
    if cached is not None:
        log.info("%s from the cache %s", what, path)
        return *cached, path, False
    with torch.random.fork_rng(devices=[]):
        net, info = train()
    write(path, key, {"arch": net.arch, "state": net.state_dict(), **info})
    return net, info, path, True
