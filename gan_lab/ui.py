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
    """Training progress: step, images/s, ETA and the latest losses.

    ``mode="auto"`` shows a live bar only on an interactive terminal; a plain
    line every ``every`` steps is always logged (to the console in plain mode and to
    the run's log file), so CI logs and multirun jobs show progress too.
    """

    def __init__(self, total: int, start: int, images_per_step: int, every: int, mode: str = "auto"):
        self.total, self.start, self.every = total, start, every
        self.images_per_step = images_per_step
        self.live = mode == "bar" or (mode == "auto" and CONSOLE.is_interactive)
        self._t0 = self._tw = time.perf_counter()
        self._sw = start
        self._recent: deque[tuple[float, int]] = deque(maxlen=20)  # the bar's rate: the last 20 steps
        self.rate = self.window_rate = 0.0
        self._progress = None

    def __enter__(self) -> "ProgressReport":
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:>7.0f} img/s"), TimeElapsedColumn(), TextColumn("ETA"),
                TimeRemainingColumn(), TextColumn("G {task.fields[G]:.3f}  D {task.fields[D]:.3f}"),
                console=CONSOLE, refresh_per_second=4,
            )
            self._progress.start()
            self._task = self._progress.add_task("train", total=self.total, completed=self.start,
                                                 rate=0.0, G=float("nan"), D=float("nan"))
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, step: int, current: dict[str, float], mean: dict[str, float]) -> None:
        """Called after every step: ``current`` holds this step's losses (the bar shows
        them), ``mean`` the means over the last log window (the log line shows them)."""
        now = time.perf_counter()
        self._recent.append((now, step))
        t_old, s_old = self._recent[0]
        if step > s_old:
            self.rate = (step - s_old) * self.images_per_step / (now - t_old)
        if step % self.every == 0 or step == self.total:
            self.window_rate = (step - self._sw) * self.images_per_step / max(now - self._tw, 1e-9)
            self._tw, self._sw = now, step
            eta = (self.total - step) * self.images_per_step / max(self.window_rate, 1e-9)
            log.info("step %d/%d | %.0f img/s | ETA %s | G %.4f | D %.4f", step, self.total, self.window_rate,
                     format_duration(eta), mean.get("loss/G", float("nan")), mean.get("loss/D", float("nan")))
        if self._progress is not None:
            self._progress.update(self._task, completed=step, rate=self.rate,
                                  G=current.get("loss/G", float("nan")), D=current.get("loss/D", float("nan")))


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
