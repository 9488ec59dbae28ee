"""Networks gan-lab trains for itself (the eval classifier, the text encoder and attribute classifier of
``shapes_text``), cached on disk as ``<cache_dir>/<digest>.pt`` keyed on what they were trained for.

The file stores its own key; a file that is unreadable, holds another key or does not rebuild is ignored
(with a warning) and trained again, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

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
        return restore(entry)
    except FileNotFoundError:
        return None
    except Exception as err:  # truncated or foreign file: rebuild it
        log.warning("ignoring unreadable cache file %s (%s)", path, type(err).__name__)
        return None


def write(path: Path, key: dict, entry: dict) -> None:
    """Store ``entry`` (tensors, plain containers) with its key, atomically."""
    checkpoint.save({"key": key, **entry}, path)
