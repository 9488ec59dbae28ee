"""``gan-lab sample``: sample grids, latent interpolations, latent-code traversals, folder translation,
images from sentences (text-to-image models) and files of a model's own format (``format=midi``) from a
checkpoint."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torchvision.utils import save_image

from gan_lab import config as config_lib
from gan_lab.data.folders import decode_image, decode_square, list_images
from gan_lab.engine.inference import inference
from gan_lab.engine.precision import resolve_device
from gan_lab.engine.restore import Restored, restore
from gan_lab.models.base import Grid
from gan_lab.errors import ConfigError, exit_on_error

log = logging.getLogger("gan_lab")

config_lib.register()


def grid(run: Restored, n: int) -> dict:
    """The model's own visuals for ``n`` fresh inputs (cGAN rows = classes, pix2pix triplets, translators
    A | G_AB(A) | G_BA(G_AB(A)) and the same from B)."""
    data = instantiate(run.config.dataset)
    examples = {k: v.to(run.task.device) for k, v in data.examples(n).items()}
    with inference(run.task, run.generator):
        return run.task.visuals(run.task.fixed_inputs(examples, min(n, len(data))), run.generator)


@torch.no_grad()
def interpolations(run: Restored, rows: int, steps: int) -> torch.Tensor:
    """``rows`` paths of ``steps`` samples through the model's latent space (its ``interpolation``)."""
    given = run.task.interpolation(rows, steps)
    return run.task.sample(rows * steps, run.generator, **given)["samples"]


@torch.no_grad()
def traversal(run: Restored, code: str, n: int, steps: int, span: list[float]) -> tuple[torch.Tensor, int]:
    """Rows that vary one latent code and hold the others at one draw per row (InfoGAN, Chen et al.
    2016, Fig. 2): a categorical code through its values, a continuous one over ``steps`` values."""
    try:
        given, nrow = run.task.traversal(code, n, steps, tuple(span))
    except ValueError as err:
        raise ConfigError(f"traverse={code}: {err}") from None
    return run.task.sample(len(given["z"]), run.generator, **given)["samples"], nrow


@torch.no_grad()
def from_text(run: Restored, sentences: list[str], n: int, interpolate: bool, steps: int) -> Grid:
    """A text-to-image model's samples for ``sentences``: ``n`` per sentence, one row each; with
    ``interpolate``, rows of ``steps`` samples whose caption embedding moves from the first sentence to the
    second (Reed et al. 2016, §5.4), the noise fixed per row, ``max(1, n // steps)`` rows."""
    if "text" not in type(run.task).data_kinds:
        raise ConfigError(f"text= is for text-to-image models (model=gan_int_cls, model=stackgan); this checkpoint "
                          f"is {type(run.task).__name__}")
    if not sentences or not all(isinstance(s, str) and s.strip() for s in sentences):
        raise ConfigError(f"text= must be a sentence or a list of sentences, got {sentences!r}")
    data = instantiate(run.config.dataset)
    embeddings = data.embed(sentences).to(run.task.device)
    if interpolate:
        if len(sentences) != 2:
            raise ConfigError(f"interpolate=true with text= walks between two sentences: text=[first,second], "
                              f"got {len(sentences)}")
        given = run.task.text_interpolation(embeddings[0], embeddings[1], max(1, n // steps), steps)
        return Grid(run.task.sample(len(given["text"]), run.generator, **given)["samples"], steps)
    text = embeddings.repeat_interleave(n, 0)
    return Grid(run.task.sample(len(text), run.generator, text=text)["samples"], n)


@torch.no_grad()
def translate(run: Restored, input_dir: Path, output_dir: Path, direction: str, batch_size: int = 16) -> int:
    """Translate every image of ``input_dir`` with an image-to-image model (a translator: in
    ``direction``); returns the count. Images are center-cropped and resized to the dataset's size, except
    for models that take any size (super-resolution: each image is upsampled whole, at its own size)."""
    if not {"paired", "unpaired"} & set(type(run.task).data_kinds):
        raise ConfigError("input_dir= is for image-to-image models (e.g. pix2pix, cyclegan); this checkpoint is "
                          f"{type(run.task).__name__}")
    if direction not in ("AtoB", "BtoA"):
        raise ConfigError(f"direction must be AtoB or BtoA, got {direction!r}")
    given = {"direction": direction} if "unpaired" in type(run.task).data_kinds else {}
    paths = list_images(input_dir)
    if not paths:
        raise ConfigError(f"input_dir={input_dir} holds no images")
    ds = run.config.dataset
    mode = "L" if ds.channels == 1 else "RGB"
    output_dir.mkdir(parents=True, exist_ok=True)
    whole = type(run.task).any_input_size
    for start in range(0, len(paths), 1 if whole else batch_size):  # sizes differ: one image at a time
        chunk = paths[start:start + (1 if whole else batch_size)]
        x = torch.stack([decode_image(p, mode) if whole else decode_square(p, ds.image_size, mode)
                         for p in chunk]).to(run.task.device)
        x = x.float().div(127.5).sub(1)
        out = run.task.sample(len(x), run.generator, input=x, **given)["samples"]
        for path, image in zip(chunk, out):
            save_image(image * 0.5 + 0.5, output_dir / f"{path.stem}.png")
    return len(paths)


@torch.no_grad()
def sample_files(run: Restored, fmt: str, n: int, out_dir: Path) -> list[Path]:
    """``n`` samples from the prior, one file of format ``fmt`` each (the task's ``save_sample``: MIDI files of
    piano-roll models), named ``000``, ``001``, ... in ``out_dir``."""
    if fmt not in type(run.task).sample_formats:
        raise ConfigError(f"format={fmt}: {type(run.task).__name__} writes png grids"
                          f"{''.join(f' or {f} files' for f in type(run.task).sample_formats)}")
    with inference(run.task, run.generator):
        samples = run.task.sample(n, run.generator)["samples"]
    return [run.task.save_sample(sample, out_dir / f"{i:03d}", fmt) for i, sample in enumerate(samples)]


def write_samples(cfg: DictConfig) -> None:
    """Everything `gan-lab sample` writes for ``cfg``."""
    torch.manual_seed(cfg.seed)  # the ops that draw from the global RNG (pix2pix's dropout)
    run = restore(cfg.ckpt, resolve_device(OmegaConf.create({"device": cfg.device})), use_ema=cfg.ema)
    run.task.seed_latent(cfg.seed)
    if cfg.format != "png":
        out = Path(cfg.out or run.path.parent.parent / "samples" / f"{cfg.format}-{run.step:07d}-seed{cfg.seed}")
        files = sample_files(run, str(cfg.format), cfg.n, out)
        log.info("wrote %d %s files into %s (step %d)", len(files), cfg.format, out, run.step)
        return
    if cfg.input_dir:
        if not cfg.output_dir:
            raise ConfigError("input_dir= needs output_dir= (where the translated images go)")
        count = translate(run, Path(cfg.input_dir).expanduser(), Path(cfg.output_dir).expanduser(),
                          str(cfg.direction))
        log.info("translated %d images into %s", count, cfg.output_dir)
        return
    if cfg.text is not None:
        sentences = list(cfg.text) if OmegaConf.is_list(cfg.text) else [str(cfg.text)]
        with inference(run.task, run.generator):
            visual = from_text(run, sentences, cfg.n, cfg.interpolate, cfg.steps)
        out = Path(cfg.out or run.path.parent.parent / "samples" /
                   f"{'text-interp' if cfg.interpolate else 'text'}-{run.step:07d}-seed{cfg.seed}.png")
        out.parent.mkdir(parents=True, exist_ok=True)
        save_image(visual.images.float() * 0.5 + 0.5, out, nrow=visual.nrow, pad_value=1.0)
        log.info("wrote %s (%d images for %d sentence(s), step %d)", out, len(visual.images), len(sentences),
                 run.step)
        return
    if cfg.interpolate and cfg.traverse:
        raise ConfigError("interpolate=true and traverse= each write their own grid: choose one")
    kind = "interp" if cfg.interpolate else f"traverse-{cfg.traverse}" if cfg.traverse else "sample"
    out = Path(cfg.out or run.path.parent.parent / "samples" / f"{kind}-{run.step:07d}-seed{cfg.seed}.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    if cfg.interpolate:
        visuals = {"": Grid(interpolations(run, max(1, cfg.n // cfg.steps), cfg.steps), cfg.steps)}
    elif cfg.traverse:
        if not (OmegaConf.is_list(cfg.span) and len(cfg.span) == 2):
            raise ConfigError(f"span={cfg.span} must be [low, high], the range of a continuous code")
        visuals = {"": Grid(*traversal(run, str(cfg.traverse), cfg.n, cfg.steps, list(cfg.span)))}
    else:
        visuals = grid(run, cfg.n)
    for name, visual in visuals.items():
        if not isinstance(visual, Grid):
            raise ConfigError("this model draws points, not images; its scatter plots are in <run>/samples")
        path = out if len(visuals) == 1 else out.with_name(f"{out.stem}-{name}{out.suffix}")
        save_image(visual.images.float() * 0.5 + 0.5, path, nrow=visual.nrow, pad_value=1.0)
        log.info("wrote %s (%d images, step %d%s)", path, len(visual.images), run.step,
                 ", EMA generator" if run.generator is not run.task.G else "")


@hydra.main(config_path="pkg://gan_lab.configs", config_name="sample", version_base="1.3")
def main(cfg: DictConfig) -> None:
    exit_on_error(write_samples, cfg)


if __name__ == "__main__":
    main()
