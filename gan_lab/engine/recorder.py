"""TensorBoard scalars and sample images, plus PNG files under ``<run>/samples``."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter
from torchvision.utils import make_grid, save_image

from gan_lab.engine import signals
from gan_lab.engine.checkpoint import os_reason
from gan_lab.errors import OutputError
from gan_lab.models.base import Grid


def scatter_image(fake: torch.Tensor, real: torch.Tensor, size: int = 256) -> torch.Tensor:
    """Rasterise 2-D points into an RGB image in [0, 1]: real data grey, samples blue.

    Avoids a plotting dependency; the view is fixed by the real data's extent so
    images of one run are comparable.
    """
    fake, real = fake.float().cpu(), real.float().cpu()
    extent = real.abs().max().item() * 1.25 or 1.0
    image = torch.ones(3, size, size)
    for points, colour in ((real, (0.7, 0.7, 0.7)), (fake, (0.1, 0.3, 0.9))):
        pix = ((points[:, :2] / extent + 1) / 2 * (size - 1)).round().long()
        pix = pix[((pix >= 1) & (pix < size - 1)).all(dim=1)]
        for dx in (-1, 0, 1):  # 3x3 dots
            for dy in (-1, 0, 1):
                x, y = pix[:, 0] + dx, size - 1 - (pix[:, 1] + dy)  # y axis up
                for c in range(3):
                    image[c, y, x] = colour[c]
    return image


MAX_PIXELS = 2**21  # a grid of at most ~1450 x 1450 pixels: readable, and a PNG of a few MB at most


def max_rows(grid: Grid, pixels: int) -> int:
    """Rows of ``grid`` that fit in ``pixels`` (at least one)."""
    per_row = grid.nrow * grid.images[0].shape[-1] * grid.images[0].shape[-2]
    return max(1, pixels // per_row)


def wait_past_events(tb_dir: Path) -> None:
    """Wait until the clock has passed the second of the newest event file in ``tb_dir``: TensorBoard reads
    a directory's files in name order, and a name is ``events.out.tfevents.<second>.<host>.<pid>.<counter>``, so
    a session started in the same second as the last (tests) could sort before it (counter 10 < 9)."""
    names = [p.name.split(".") for p in tb_dir.glob("events.out.tfevents.*")]
    seconds = [int(parts[3]) for parts in names if parts[3].isdigit()]
    while seconds and time.time() < max(seconds) + 1:
        time.sleep(0.05)


class Recorder:
    """Writes a run's scalars and sample grids; ``purge_step`` drops events a crashed
    session wrote after its last checkpoint, so a resumed run's curves have no duplicates. A new run
    (no ``purge_step``) in a directory holding events, of a session killed before its first checkpoint,
    drops them all.

    A failed write (disk full, read-only, file size limit) raises :class:`OutputError` naming the file or
    the TensorBoard directory. Used as a context manager it closes the writer on exit; a failure to close
    then gives way to an error already in flight (the first failure is the one to report)."""

    def __init__(self, run_dir: Path, purge_step: int | None = None):
        self.samples_dir = Path(run_dir) / "samples"
        self.tb_dir = Path(run_dir) / "tb"
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        if purge_step is None and any(self.tb_dir.glob("events.out.tfevents.*")):
            purge_step = 1  # only then: TensorBoard orders event files by name, not by when they were written
        # TensorBoard's writer thread prints its OSError as a traceback, then the next write raises it here
        self._excepthook = threading.excepthook
        threading.excepthook = self._writer_thread_hook
        wait_past_events(self.tb_dir)
        with self._events():
            self.writer = SummaryWriter(log_dir=str(self.tb_dir), purge_step=purge_step)

    def _writer_thread_hook(self, args) -> None:
        if not (isinstance(args.exc_value, OSError) and type(args.thread).__name__ == "_AsyncWriterThread"):
            self._excepthook(args)

    @contextlib.contextmanager
    def _events(self) -> Iterator[None]:
        try:
            yield
        except OSError as err:
            raise OutputError(f"cannot write TensorBoard events in {self.tb_dir}: {os_reason(err)}") from None

    def scalars(self, step: int, values: dict[str, float]) -> None:
        with self._events():
            for tag, value in values.items():
                self.writer.add_scalar(tag, value, step)

    def visual(self, step: int, name: str, visual) -> Path:
        """Write one of a task's visuals (``gan_lab.models.base.Grid`` or ``Points``) as
        ``samples/<name>_<step>.png`` and the TensorBoard image ``samples/<name>``."""
        if isinstance(visual, Grid):
            images = visual.images[:max_rows(visual, MAX_PIXELS) * visual.nrow]
            image = make_grid(images.float().cpu(), nrow=visual.nrow, normalize=True, value_range=(-1, 1),
                              pad_value=1.0)
        else:
            reference = visual.reference if visual.reference is not None else visual.points
            image = scatter_image(visual.points, reference)
        path = self.samples_dir / f"{name}_{step:07d}.png"
        tmp = path.with_name(f".{path.name}.tmp")  # written whole or not at all, as checkpoints are
        try:
            with signals.held():
                save_image(image, tmp, format="png")
                os.replace(tmp, path)
        except OSError as err:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot write {path}: {os_reason(err)}") from None
        with self._events():
            self.writer.add_image(f"samples/{name}", image, step)
        return path

    def flush(self) -> None:
        with self._events():
            self.writer.flush()

    def close(self) -> None:
        threading.excepthook = self._excepthook
        with self._events():
            self.writer.close()

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        try:
            self.close()
        except OutputError:
            if exc_type is None:
                raise
