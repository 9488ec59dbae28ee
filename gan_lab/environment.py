"""What a run ran on: versions, device, git commit, CPU model, recorded in ``<run>/env.json``.

``gan-lab train`` appends one entry per session (a resumed run may continue on another machine);
``gan-lab report`` shows them.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

from gan_lab import __version__

FILE = "env.json"


def git_commit(where: Path = Path(__file__).parent) -> str | None:
    """The commit of the checkout gan-lab runs from (``+dirty`` with uncommitted changes); None when it is
    not a git checkout (an installed wheel) or git is absent."""
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()

        commit = git("rev-parse", "HEAD")
        return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what the platform module says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(device: torch.device) -> dict:
    """This process's environment as a JSON-able dict."""
    import torchvision

    return {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "gan_lab": __version__, "git_commit": git_commit(), "python": platform.python_version(),
        "torch": torch.__version__, "torchvision": torchvision.__version__,
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "cuda": torch.version.cuda, "cpu": cpu_model(), "cpu_count": os.cpu_count(),
        "platform": platform.platform(), "command": " ".join(sys.argv),
    }


def read(run_dir: Path) -> list[dict]:
    """The sessions recorded in ``run_dir`` (oldest first); [] when none were (runs before env.json)."""
    try:
        return json.loads((Path(run_dir) / FILE).read_text())["sessions"]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def record(run_dir: Path, device: torch.device) -> None:
    """Append this session's environment to ``<run_dir>/env.json``."""
    path = Path(run_dir) / FILE
    tmp = path.with_name(f".{FILE}.tmp")
    tmp.write_text(json.dumps({"sessions": [*read(run_dir), describe(device)]}, indent=2))
    tmp.replace(path)
