"""``gan-lab project``: iGAN's projection of real images onto a trained generator's manifold, its edits under
constraints, and interpolation between projections (Zhu, Krähenbühl, Shechtman, Efros 2016, "Generative Visual
Manipulation on the Natural Image Manifold", ECCV, arXiv 1609.03552).

§3.1, projection: z* = argmin_z L(G(z), x), with L a pixel distance plus a feature distance; the paper solves it by
optimisation from random starts, by a trained encoder z = P(x), or by the *hybrid*, P's guess refined by the
optimisation (the reference code's default, ``--solver cnn_opt``). Here: ``starts`` random draws from the task's
prior per image, searched as one batch by :func:`gan_lab.latent_search.search` with G and D frozen, the best kept;
``init=encoder`` puts the task's ``encode(x)`` in the first start (the hybrid; BiGAN's encoder provides one).
L: mean squared (``loss=l2``) or absolute (``l1``) pixel error plus ``feature_weight`` x the mean squared
difference of D's features (``D.features``).

§3.2, manipulation: edits are constraints f_g(G(z)) = v_g solved as z* = argmin_z sum_g ||f_g(G(z)) - v_g||^2
+ lambda_s ||z - z0||^2 from the projection z0: the data terms pull G(z) to the user's edit, the second (the
paper's "manifold smoothness" term, as recalled, not verified) keeps it near the projected image, and the result
is G's output, on the manifold by construction. gan-lab has the colour brush: ``mask`` (white = constrained
pixels) with ``color`` (one colour) or ``strokes`` (an image giving each masked pixel's colour). The sketch (HOG
edges) and warp brushes are not here.

Checked in the reference code (junyanz/iGAN @ 50cecd2: ``iGAN_predict.py``, ``constrained_opt.py``,
``constrained_opt_theano.py``): projection cost ``mean((x - G(z))^2) + 0.002 mean((f(x) - f(G(z)))^2)`` with f
AlexNet conv4, L-BFGS-B, 200 iterations, solvers ``opt``, ``cnn`` and ``cnn_opt`` (the hybrid, "default and
best"); edit cost = the masked mean squared colour error (normalised by the mask's area) + 0.2 x a HOG edge term
+ ``5.0 * mean((z - z0)^2)``, Adam (lr 0.1, beta1 0.9) on 32 starts z0 + U(-0.5, 0.5), an optional ``d_weight``
x BCE(D(G(z)), real) term, off by default; z uniform in [-1, 1], reparametrised as z = tanh(w). Both terms are
means here as in that code, so ``lambda_s`` (default 5.0, its ``z_const``) does not depend on the image or latent
size. The paper's equation and section numbers are as recalled, not verified against its text (only its abstract
could be read here). Departures: Adam through the shared search instead of L-BFGS-B; D's features instead of
AlexNet's (no ImageNet network offline); a uniform prior's support is kept by clamping z into its box
(``bounds``) instead of the tanh reparametrisation; edits start from z0 itself (one start); no D term.
Interpolation: ``slerp`` for a Gaussian prior, a straight line in a bounded (uniform) one, as the reference's
default ``interp='linear'``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from PIL import Image
from torchvision.utils import save_image

from gan_lab import config as config_lib
from gan_lab.data.folders import decode_square
from gan_lab.engine.precision import resolve_device
from gan_lab.engine.restore import Restored, restore
from gan_lab.errors import ConfigError, exit_on_error
from gan_lab.latent_search import frozen, search
from gan_lab.models.noise import slerp

log = logging.getLogger("gan_lab")

config_lib.register()


@dataclass
class Projector:
    """A frozen noise-to-image generator ``G`` of ``task`` (z (B, z_dim) -> images (B, C, H, W)) and how to search
    its latent space: pixel ``loss`` ("l2" or "l1"), ``feature_weight`` x D's feature distance, ``bounds`` of z (a
    uniform prior's support; None: unbounded)."""

    task: torch.nn.Module
    G: torch.nn.Module
    shape: tuple[int, int, int]
    z_dim: int
    loss: str = "l2"
    feature_weight: float = 0.0
    bounds: tuple[float, float] | None = None

    def reconstruction(self, x: torch.Tensor):
        """``loss(z) -> (B,)`` of z against the images ``x`` (B, C, H, W) in [-1, 1]."""
        D = self.task.D
        target = D.features(x).detach() if self.feature_weight else None

        def loss(z: torch.Tensor) -> torch.Tensor:
            out = self.G(z)
            diff = out - x
            value = (diff.square() if self.loss == "l2" else diff.abs()).flatten(1).mean(1)
            if target is not None:
                value = value + self.feature_weight * (D.features(out) - target).square().flatten(1).mean(1)
            return value
        return loss

    def project(self, x: torch.Tensor, starts: int, steps: int, lr: float,
                z_init: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(z (N, z_dim), loss (N,)) of the images ``x`` (N, C, H, W): ``starts`` starts per image from the prior
        (``z_init`` (N, z_dim), the encoder's guess, replaces the first), searched as one batch, the best kept."""
        n = len(x)
        z0 = self.task.draw_z(n * starts).view(starts, n, self.z_dim)
        if z_init is not None:
            z0[0] = z_init
        with frozen(self.G, self.task.D):
            loss = self.reconstruction(x.repeat(starts, 1, 1, 1))
            z, final = search(loss, z0.flatten(0, 1), steps, lr, self.bounds)
        best = final.view(starts, n).argmin(0)
        rows = torch.arange(n, device=x.device)
        return z.view(starts, n, self.z_dim)[best, rows], final.view(starts, n)[best, rows]

    def edit(self, z0: torch.Tensor, mask: torch.Tensor, target: torch.Tensor, lambda_s: float, steps: int,
             lr: float) -> torch.Tensor:
        """z near ``z0`` (N, z_dim) whose G(z) takes the colours of ``target`` (N, C, H, W) where ``mask``
        (N, 1, H, W, 1 = constrained) is set (§3.2): mean masked squared error + lambda_s mean((z - z0)^2)."""
        area = mask.flatten(1).mean(1).clamp_min(1e-8)

        def loss(z: torch.Tensor) -> torch.Tensor:
            colour = ((self.G(z) - target).square() * mask).flatten(1).mean(1) / area
            return colour + lambda_s * (z - z0).square().mean(1)
        with frozen(self.G, self.task.D):
            return search(loss, z0, steps, lr, self.bounds)[0]

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        with frozen(self.G):
            return self.G(z)

    def path(self, a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
        """``steps`` latents from ``a`` to ``b`` (each (z_dim,)): slerp for a Gaussian prior, a line in a box."""
        t = torch.linspace(0, 1, steps, device=a.device)
        if self.bounds is not None:
            return a + t[:, None] * (b - a)
        return slerp(a[None], b[None], t)[0]


def projector(run: Restored, loss: str = "l2", feature_weight: float = 0.0,
              bounds: list[float] | None = None) -> Projector:
    """The :class:`Projector` of a restored run; ConfigError unless it is an unconditional noise-to-image model."""
    task, name = run.task, type(run.task).__name__
    drawn = {}
    if callable(getattr(task, "draw_z", None)):  # a latent z; a sample shows what else G takes
        with torch.no_grad(), frozen(run.generator):
            drawn = task.sample(1, run.generator)  # {"samples", "z"} for G(z) alone
    inputs = sorted(set(drawn) - {"samples"})
    if inputs != ["z"] or drawn["z"].dim() != 2:
        raise ConfigError(f"ckpt={run.path}: gan-lab project needs an unconditional noise-to-image model "
                          f"(G(z) with z alone); this checkpoint's model is {name}, whose generator takes "
                          f"{inputs or 'no latent z'}")
    out = drawn["samples"]
    if out.dim() != 4:
        raise ConfigError(f"ckpt={run.path}: gan-lab project needs a model that generates images; {name}'s "
                          f"samples have shape {tuple(out.shape[1:])}")
    if loss not in ("l2", "l1"):
        raise ConfigError(f"loss={loss}: choose l2 or l1")
    if feature_weight < 0:
        raise ConfigError(f"feature_weight={feature_weight} must be >= 0")
    if feature_weight and not hasattr(task.D, "features"):
        raise ConfigError(f"feature_weight={feature_weight}: {name}'s discriminator exposes no features; "
                          f"use feature_weight=0")
    if bounds is None:
        bounds = task.latent_bounds  # a uniform prior's box
    if bounds is not None:
        if len(bounds) != 2 or not bounds[0] < bounds[1]:
            raise ConfigError(f"bounds={list(bounds)} must be [low, high] with low < high")
        bounds = (float(bounds[0]), float(bounds[1]))
    return Projector(task, run.generator, tuple(out.shape[1:]), drawn["z"].shape[1], loss, float(feature_weight),
                     bounds)


def open_image(path: str | Path, key: str) -> Image.Image:
    """The file of config key ``key``, opened (and loaded) with PIL; ConfigError naming the key and the file."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"{key}={path}: no such file")
    try:
        with Image.open(file) as img:
            img.load()
            return img
    except (OSError, ValueError) as err:
        raise ConfigError(f"{key}={path}: cannot read it as an image ({err})") from None


def read_image(path: str | Path, key: str, shape: tuple[int, int, int]) -> torch.Tensor:
    """The image of ``key`` as the model sees it: (C, H, W) in [-1, 1], centre-cropped and resized to ``shape``."""
    open_image(path, key)
    channels, size = shape[0], shape[-1]
    x = decode_square(Path(path).expanduser(), size, "L" if channels == 1 else "RGB")
    return x.float().div(127.5).sub(1)


def constraint(cfg: DictConfig, shape: tuple[int, int, int], image: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask (1, H, W) in {0, 1}, target colours (C, H, W) in [-1, 1]) of the colour-brush edit of ``cfg``."""
    if (cfg.color is None) == (cfg.strokes is None):
        raise ConfigError("mask= needs one of color=[r,g,b] (a colour brush) or strokes=<png> (painted colours)")
    size = open_image(cfg.mask, "mask").size
    if image is not None and size != (reference := open_image(image, "image").size):
        raise ConfigError(f"mask={cfg.mask} is {size[0]}x{size[1]} but image={image} is "
                          f"{reference[0]}x{reference[1]}: the mask marks pixels of the image")
    channels, side = shape[0], shape[-1]
    mask = (decode_square(Path(cfg.mask).expanduser(), side, "L") >= 128).float()
    if cfg.strokes is not None:
        if open_image(cfg.strokes, "strokes").size != size:
            raise ConfigError(f"strokes={cfg.strokes} must have the size of mask={cfg.mask} ({size[0]}x{size[1]})")
        return mask, read_image(cfg.strokes, "strokes", shape)
    color = list(cfg.color) if isinstance(cfg.color, ListConfig) else [cfg.color]
    if len(color) not in (1, channels) or not all(isinstance(c, (int, float)) and 0 <= c <= 1 for c in color):
        raise ConfigError(f"color={cfg.color}: give {channels} value(s) in [0, 1] (the model has {channels} "
                          f"channel(s); one value is grey)")
    value = torch.tensor([float(c) for c in color]).expand(channels) * 2 - 1
    return mask, value[:, None, None].expand(shape).clone()


def psnr_rmse(a: torch.Tensor, b: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-image (RMSE, PSNR in dB) of images in [-1, 1], measured in [0, 1] units."""
    mse = ((a - b) / 2).square().flatten(1).mean(1)
    return mse.sqrt().tolist(), [10 * math.log10(1 / max(m, 1e-12)) for m in mse.tolist()]


def masked_rmse(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    """RMSE in [0, 1] units of one image pair (1, C, H, W) over the pixels of ``mask`` (1, 1, H, W)."""
    squares = ((a - b) / 2).square() * mask
    return math.sqrt(float(squares.sum() / (mask.sum() * a.shape[1]).clamp_min(1)))


def load_z(path: str, z_dim: int) -> torch.Tensor:
    """The latents (N, z_dim) that `gan-lab project` saved in ``path`` (its z.pt); ConfigError naming ``z``."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"z={path}: no such file")
    try:
        z = torch.load(file, map_location="cpu", weights_only=True)["z"]
    except Exception as err:  # any unpickling failure: not a file this command wrote
        raise ConfigError(f"z={path}: not a z.pt written by gan-lab project ({type(err).__name__}: {err})") from None
    if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != z_dim:
        raise ConfigError(f"z={path}: holds no (N, {z_dim}) latents of this checkpoint's generator")
    return z


def check(cfg: DictConfig) -> list[str]:
    """The checks of ``cfg`` that need no checkpoint; returns the image paths."""
    images = [] if cfg.image is None else [str(p) for p in cfg.image] if isinstance(cfg.image, ListConfig) \
        else [str(cfg.image)]
    if not images and cfg.z is None:
        raise ConfigError("image=<path> (or image=[a,b] with interpolate=) is required, or z=<z.pt> to edit a "
                          "saved projection")
    for key in ("starts", "steps", "edit_steps", "interpolate"):
        if not isinstance(cfg[key], int) or cfg[key] < (1 if key == "starts" else 0):
            raise ConfigError(f"{key}={cfg[key]} must be an integer >= {1 if key == 'starts' else 0}")
    for key in ("lr", "edit_lr"):
        if not cfg[key] > 0:
            raise ConfigError(f"{key}={cfg[key]} must be > 0")
    if cfg.lambda_s < 0:
        raise ConfigError(f"lambda_s={cfg.lambda_s} must be >= 0")
    if cfg.init not in ("prior", "encoder"):
        raise ConfigError(f"init={cfg.init}: choose prior or encoder")
    if cfg.interpolate and (len(images) != 2 or cfg.z is not None or cfg.interpolate < 2):
        raise ConfigError(f"interpolate={cfg.interpolate} walks between two projections: image=[a,b] and at "
                          f"least 2 steps, without z=")
    if cfg.mask is None and (cfg.color is not None or cfg.strokes is not None):
        raise ConfigError("color= and strokes= paint inside mask=<png> (white = the pixels to change): set mask=")
    if cfg.mask is not None and (len(images) > 1 or cfg.interpolate):
        raise ConfigError("mask= edits one image: give one image= (or z=), without interpolate=")
    return images


def write(cfg: DictConfig) -> Path:
    """Everything `gan-lab project` writes for ``cfg``; returns the output folder."""
    images = check(cfg)
    run = restore(cfg.ckpt, resolve_device(OmegaConf.create({"device": cfg.device})), use_ema=cfg.ema)
    run.task.seed_latent(cfg.seed)
    proj = projector(run, cfg.loss, cfg.feature_weight, None if cfg.bounds is None else list(cfg.bounds))
    device = run.task.device
    x = torch.stack([read_image(p, "image", proj.shape) for p in images]).to(device) if images else None
    edit = constraint(cfg, proj.shape, images[0] if images else None) if cfg.mask is not None else None
    encode = getattr(run.task, "encode", None)
    if cfg.init == "encoder" and encode is None and cfg.z is None:
        raise ConfigError(f"init=encoder needs a model with an encoder (encode(x) -> z, e.g. BiGAN); "
                          f"{type(run.task).__name__} has none: use init=prior")
    z = load_z(cfg.z, proj.z_dim).to(device) if cfg.z is not None else None
    if z is not None and x is not None and len(z) != len(x):
        raise ConfigError(f"z={cfg.z} holds {len(z)} latent(s) for {len(x)} image(s)")
    name = "-".join(Path(p).stem for p in images) if images else f"{Path(cfg.z).parent.name}-edit"
    out = Path(cfg.out).expanduser() if cfg.out else run.path.parent.parent / "project" / name
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"ckpt": str(run.path), "step": run.step, "images": images}
    if z is not None:
        report["z"] = str(cfg.z)
    else:
        with torch.no_grad():
            guess = encode(x) if cfg.init == "encoder" else None
        z, loss = proj.project(x, cfg.starts, cfg.steps, cfg.lr, guess)
        torch.save({"z": z.cpu(), "ckpt": str(run.path), "step": run.step, "images": images}, out / "z.pt")
        report.update(loss=loss.tolist(), starts=cfg.starts, steps=cfg.steps, init=cfg.init)
    projection = proj.generate(z)
    if x is not None:
        save_image(x * 0.5 + 0.5, out / "input.png", nrow=len(x), pad_value=1.0)
        report["rmse"], report["psnr"] = psnr_rmse(projection, x)
        log.info("projected %s: RMSE %s, PSNR %s dB", ", ".join(images),
                 ", ".join(f"{v:.4f}" for v in report["rmse"]), ", ".join(f"{v:.2f}" for v in report["psnr"]))
    save_image(projection * 0.5 + 0.5, out / "projection.png", nrow=len(z), pad_value=1.0)
    if edit is not None:
        report["edit"] = write_edit(proj, cfg, out, z[:1], x[:1] if x is not None else None, *edit)
    if cfg.interpolate:
        frames = proj.generate(proj.path(z[0], z[1], cfg.interpolate))
        strip = torch.cat([x[:1], frames, x[1:]])
        save_image(strip * 0.5 + 0.5, out / "interpolation.png", nrow=len(strip), pad_value=1.0)
        log.info("wrote %s (input a | %d steps | input b)", out / "interpolation.png", cfg.interpolate)
    (out / "projection.json").write_text(json.dumps(report, indent=2) + "\n")
    log.info("wrote %s", out)
    return out


def write_edit(proj: Projector, cfg: DictConfig, out: Path, z0: torch.Tensor, x: torch.Tensor | None,
               mask: torch.Tensor, target: torch.Tensor) -> dict:
    """The colour-brush edit of the projection ``z0`` (1, z_dim) of ``x`` (1, C, H, W, or None) into ``out``
    (edit.png, z_edit.pt, edit_strip.png: input | projection | the constraint drawn over it | edit); returns
    what projection.json says of it."""
    mask, target = mask[None].to(z0.device), target[None].to(z0.device)
    z = proj.edit(z0, mask, target, cfg.lambda_s, cfg.edit_steps, cfg.edit_lr)
    before, after = proj.generate(z0), proj.generate(z)
    torch.save({"z": z.cpu(), "ckpt": str(cfg.ckpt)}, out / "z_edit.pt")
    save_image(after * 0.5 + 0.5, out / "edit.png")
    strip = torch.cat([*([x] if x is not None else []), before, before * (1 - mask) + target * mask, after])
    save_image(strip * 0.5 + 0.5, out / "edit_strip.png", nrow=len(strip), pad_value=1.0)
    log.info("wrote %s (%sprojection | constraint | edit)", out / "edit_strip.png", "input | " if x is not None else "")
    return {"lambda_s": cfg.lambda_s, "steps": cfg.edit_steps, "z_distance": float((z - z0).norm()),
            "masked_rmse_before": masked_rmse(before, target, mask),
            "masked_rmse_after": masked_rmse(after, target, mask)}


@hydra.main(config_path="pkg://gan_lab.configs", config_name="project", version_base="1.3")
def main(cfg: DictConfig) -> None:
    exit_on_error(write, cfg)


if __name__ == "__main__":
    main()
