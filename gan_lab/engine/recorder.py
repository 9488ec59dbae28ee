"""TensorBoard scalars and sample images, plus PNG files under ``<run>/samples``."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter
from torchvision.utils import make_grid, save_image

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


class Recorder:
    """Writes a run's scalars and sample grids; ``purge_step`` drops events a crashed
    session wrote after its last checkpoint, so a resumed run's curves have no duplicates."""

    def __init__(self, run_dir: Path, purge_step: int | None = None):
        self.samples_dir = Path(run_dir) / "samples"
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tb"), purge_step=purge_step)

    def scalars(self, step: int, values: dict[str, float]) -> None:
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
        save_image(image, path)
        self.writer.add_image(f"samples/{name}", image, step)
        return path

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
