"""TensorBoard scalars and sample images, plus PNG files under ``<run>/samples``."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter
from torchvision.utils import make_grid, save_image


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

    def images(self, step: int, images: torch.Tensor, nrow: int) -> Path:
        """Save a grid of images in [-1, 1]; returns the PNG path."""
        grid = make_grid(images.float().cpu(), nrow=nrow, normalize=True, value_range=(-1, 1), pad_value=1.0)
        return self._write(step, grid)

    def points(self, step: int, fake: torch.Tensor, real: torch.Tensor) -> Path:
        return self._write(step, scatter_image(fake, real))

    def _write(self, step: int, grid: torch.Tensor) -> Path:
        path = self.samples_dir / f"step_{step:07d}.png"
        save_image(grid, path)
        self.writer.add_image("samples/fixed", grid, step)
        return path

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
