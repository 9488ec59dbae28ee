"""What the user sees: a live progress bar on a terminal, plain lines elsewhere, a summary table.

Every log line goes through ``CONSOLE`` (Hydra's console handler is a
``RichHandler`` bound to it, see ``configs/hydra/job_logging/rich.yaml``), so log
lines print above the bar instead of over it.
"""

from __future__ import annotations

import io
import logging
import time
from collections import deque

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

CONSOLE = Console()
if not CONSOLE.is_terminal:
    CONSOLE.width = max(CONSOLE.width, 140)  # pipes and CI logs: no wrapping at 80 columns
log = logging.getLogger("gan_lab")


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressReport:
    """Progress of a loop: step, images/s, ETA and the latest logged losses. ``name`` labels the bar and
    ``unit`` the plain lines (training: "train", "step"; ``gan-lab anomaly``: its batches).

    ``mode="auto"`` shows a live bar only on an interactive terminal; a plain
    line every ``every`` steps is always logged (to the console in plain mode and to
    the run's log file), so CI logs and multirun jobs show progress too. Rates count
    the real images drawn (every phase's batches), so they hold for any phase list.
    """

    def __init__(self, total: int, start: int, images: int, every: int, mode: str = "auto", name: str = "train",
                 unit: str = "step"):
        self.total, self.start, self.every, self.name, self.unit = total, start, every, name, unit
        self.live = mode == "bar" or (mode == "auto" and CONSOLE.is_interactive)
        self._tw, self._iw = time.perf_counter(), images
        self._recent: deque[tuple[float, int]] = deque(maxlen=20)  # the bar's rate: the last 20 steps
        self._recent.append((self._tw, images))
        self.rate = self.window_rate = 0.0
        self.losses = {"loss/G": float("nan"), "loss/D": float("nan")}
        self._progress = None

    def __enter__(self) -> "ProgressReport":
        if self.live:
            self._progress = Progress(
                TextColumn(f"[bold]{self.name}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]} img/s"), TimeElapsedColumn(), TextColumn("ETA"),
                TimeRemainingColumn(), TextColumn("{task.fields[losses]}"),
                console=CONSOLE, refresh_per_second=4,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.name, total=self.total, completed=self.start,
                                                 rate=format_rate(0.0), losses="")
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, step: int, images: int, mean: dict[str, float] | None) -> None:
        """Called after every step with the images drawn so far; ``mean`` (at log steps only)
        holds the losses averaged over the last log window, which the bar and the log line show."""
        now = time.perf_counter()
        self._recent.append((now, images))
        t_old, i_old = self._recent[0]
        if now > t_old:
            self.rate = (images - i_old) / (now - t_old)
        if mean is not None:
            self.losses = {k: v for k, v in mean.items() if k.startswith("loss/") and k.count("/") == 1}
            self.window_rate = (images - self._iw) / max(now - self._tw, 1e-9)
            self._tw, self._iw = now, images
            eta = (self.total - step) * (now - t_old) / max(len(self._recent) - 1, 1)
            log.info("%s %d/%d | %s img/s | ETA %s | %s", self.unit, step, self.total, format_rate(self.window_rate),
                     format_duration(eta), self.loss_text())
        if self._progress is not None:
            self._progress.update(self._task, completed=step, rate=format_rate(self.rate), losses=self.loss_text())

    def loss_text(self) -> str:
        return "  ".join(f"{k[5:]} {v:.4f}" for k, v in self.losses.items())


def format_rate(rate: float) -> str:
    """Two significant digits below 10 (``0.26``), whole numbers above."""
    return f"{rate:.2g}" if rate < 10 else f"{rate:.0f}"


def summary_table(rows: dict[str, str], title: str = "gan-lab run") -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold cyan")
    table.add_column()
    for key, value in rows.items():
        table.add_row(key, value)
    return table


def print_table(table: Table) -> None:
    """Print to the console, and a plain-text copy to the log files (not twice to the console)."""
    CONSOLE.print(table)
    plain = Console(width=100, no_color=True, record=True, file=io.StringIO())
    plain.print(table)
    text = plain.export_text()
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.acquire()
            try:
                handler.stream.write(text)
                handler.flush()
            finally:
                handler.release()
