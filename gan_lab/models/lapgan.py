"""LAPGAN of Denton, Chintala, Szlam and Fergus 2015, "Deep Generative Image Models using a Laplacian
Pyramid of Adversarial Networks" (NIPS; arXiv 1506.05751), as in the authors' code (facebookarchive/eyescream,
"EY" below, read at 0b8f72d: ``cifar/scripts/train_cifar.lua``, ``train_cifar_coarse_to_fine.lua``).

§3.1 Laplacian pyramid: ``d`` halves an image, ``u`` doubles it; the Gaussian pyramid is ``I_0 = I``,
``I_{k+1} = d(I_k)``; the coefficients ``h_k = I_k - u(I_{k+1})`` for k < K and ``h_K = I_K``; the image comes
back as ``I_k = u(I_{k+1}) + h_k``. Here ``d`` is antialiased bilinear and ``u`` bilinear: the round trip is
exact up to rounding for any pair (:func:`laplacian_pyramid`, :func:`reconstruct`).

§3.2 LAPGAN: one conditional GAN per level. Sampling runs coarse to fine: ``Ĩ_K = G_K(z_K)``, then
``l_k = u(Ĩ_{k+1})``, ``h̃_k = G_k(z_k, l_k)`` and ``Ĩ_k = l_k + h̃_k``. Each level is trained independently on
the *real* pyramid (not end to end): G_k gets ``l_k = u(d(I_k))`` of a training image and D_k tells its ``h̃_k``
from the real ``h_k``, seeing ``l_k + h`` (the candidate image; "l_k is explicitly added to h_k before the first
convolution layer", as recalled, not verified; EY's D starts with a ``CAddTable`` of the difference and the
coarse image). The residual has no output squashing (EY); only the final image is clamped to [-1, 1].

§4 networks (CIFAR-10; "as recalled, not verified" for the paper's numbers):
- the coarsest level (8x8) is a fully connected GAN: G z (100-d, U[-1, 1]) -> 1200 ReLU -> 1200 ReLU -> the
  image (linear output, EY ``train_cifar.lua``); D image -> 600 ReLU -> 600 ReLU -> logit, dropout 0.5 before
  each hidden-to-next layer (EY); weights N(0, 0.05) in G and N(0, 0.005) in D, zero biases (EY);
- finer levels (EY ``train_cifar_coarse_to_fine.lua``): G takes a noise plane (1 channel U[-1, 1]) and ``l_k``
  joined as channels: conv 7x7 -> width, ReLU, conv 7x7 -> width, ReLU, conv 5x5 -> the residual (size kept);
  D: conv 5x5 (valid) -> width, ReLU, conv 5x5 stride 2 (valid), ReLU, dropout 0.5, linear -> logit.
Class conditioning (EY's ``*_classcond.lua``; ``model.conditional=true``): a one-hot label joins the MLPs'
inputs, and a label map (linear classes -> size x size, ReLU) joins the conv levels' inputs as one more plane.

Players: ``G`` holds every level's generator and ``D`` every level's discriminator; each phase's loss is the sum
of the levels' losses. The levels share no parameters, so the gradient of the sum w.r.t. level k's parameters
is the gradient of level k's own loss, and a per-parameter optimizer (SGD, Adam) then updates every level
exactly as if it were trained alone on the same batch. (Clipping by a global gradient norm would couple them.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.models.base import GANTask, Grid, LossOut, square_columns
from gan_lab.models.blocks import conv_block, dense, one_hot


def down(x: torch.Tensor) -> torch.Tensor:
    """``d``: j x j -> j/2 x j/2, bilinear with an antialiasing (low-pass) filter."""
    return F.interpolate(x, scale_factor=0.5, mode="bilinear", antialias=True, align_corners=False)


def up(x: torch.Tensor) -> torch.Tensor:
    """``u``: j x j -> 2j x 2j, bilinear."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def gaussian_pyramid(image: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """``[I_0 = image, I_1 = d(I_0), ..., I_K]`` with K = levels - 1, finest first."""
    pyramid = [image]
    for _ in range(levels - 1):
        pyramid.append(down(pyramid[-1]))
    return pyramid


def laplacian_pyramid(image: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """``[h_0, ..., h_K]``: ``h_k = I_k - u(I_{k+1})`` for k < K and ``h_K = I_K``, finest first."""
    g = gaussian_pyramid(image, levels)
    return [fine - up(coarse) for fine, coarse in zip(g, g[1:])] + [g[-1]]


def reconstruct(pyramid: list[torch.Tensor]) -> torch.Tensor:
    """The image of a Laplacian pyramid (finest first): ``I_k = u(I_{k+1}) + h_k`` from the coarsest level."""
    image = pyramid[-1]
    for h in reversed(pyramid[:-1]):
        image = up(image) + h
    return image


def level_sizes(image_size: int, levels: int) -> list[int]:
    """Sides of the pyramid's levels, finest first; a ConfigError unless the coarsest is at least 8 px (the
    finer levels' D needs 16 px: two valid 5x5 convolutions) and every level halves exactly."""
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
        raise ConfigError(f"model.generator.levels must be a positive integer, got {levels!r}")
    sizes = [image_size >> k for k in range(levels)]
    if image_size % (1 << (levels - 1)) or sizes[-1] < 8:
        raise ConfigError(f"model.generator.levels={levels}: dataset.image_size={image_size} must halve "
                          f"{levels - 1} times exactly down to a coarsest level of at least 8 px")
    return sizes


def _normal_init(net: nn.Module, std: float) -> None:
    """Linear weights N(0, std), zero biases (EY ``train_cifar.lua`` ``setWeights``)."""
    for module in net.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, std)
            nn.init.zeros_(module.bias)


class LabelMap(nn.Module):
    """A class label as one feature plane (B, 1, size, size): linear classes -> size * size, ReLU (EY
    ``*_classcond.lua``)."""

    def __init__(self, num_classes: int, size: int):
        super().__init__()
        self.num_classes, self.size = num_classes, size
        self.net = dense(num_classes, size * size, act="relu")

    def forward(self, label: torch.Tensor) -> torch.Tensor:
        return self.net(one_hot(label, self.num_classes)).view(-1, 1, self.size, self.size)


class CoarseGenerator(nn.Module):
    """z (B, z_dim) [+ label] -> the coarsest image (B, C, size, size), fully connected, linear output."""

    def __init__(self, size: int, channels: int, z_dim: int, hidden: int, num_classes: int):
        super().__init__()
        self.shape, self.num_classes = (channels, size, size), num_classes
        self.net = nn.Sequential(dense(z_dim + num_classes, hidden, act="relu"), dense(hidden, hidden, act="relu"),
                                 dense(hidden, channels * size * size))
        _normal_init(self, 0.05)

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes:
            z = torch.cat([z, one_hot(label, self.num_classes)], 1)
        return self.net(z).view(len(z), *self.shape)


class CoarseDiscriminator(nn.Module):
    """The coarsest image [+ label] -> one logit, fully connected with dropout."""

    def __init__(self, size: int, channels: int, hidden: int, dropout: float, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.net = nn.Sequential(dense(channels * size * size + num_classes, hidden, act="relu"),
                                 dense(hidden, hidden, act="relu", input_dropout=dropout),
                                 dense(hidden, 1, input_dropout=dropout))
        _normal_init(self, 0.005)

    def forward(self, x: torch.Tensor, coarse: None = None, label: torch.Tensor | None = None) -> torch.Tensor:
        """``coarse`` is None: the coarsest level has no condition but the label."""
        x = x.flatten(1)
        if self.num_classes:
            x = torch.cat([x, one_hot(label, self.num_classes)], 1)
        return self.net(x).view(-1)


class ResidualGenerator(nn.Module):
    """(noise plane (B, 1, s, s), l_k (B, C, s, s) [, label]) -> the residual h̃_k (B, C, s, s), unbounded."""

    def __init__(self, size: int, channels: int, width: int, num_classes: int):
        super().__init__()
        self.label_map = LabelMap(num_classes, size) if num_classes else None
        planes = 1 + channels + (1 if num_classes else 0)
        self.net = nn.Sequential(
            conv_block(planes, width, kernel=7, stride=1, padding=3, norm=None, act="relu"),
            conv_block(width, width, kernel=7, stride=1, padding=3, norm=None, act="relu"),
            conv_block(width, channels, kernel=5, stride=1, padding=2, norm=None),
        )

    def forward(self, noise: torch.Tensor, coarse: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        planes = [noise, coarse, *([self.label_map(label)] if self.label_map is not None else [])]
        return self.net(torch.cat(planes, 1))


class ResidualDiscriminator(nn.Module):
    """(residual h (B, C, s, s), l_k [, label]) -> one logit: D sees the candidate image l_k + h."""

    def __init__(self, size: int, channels: int, width: int, dropout: float, num_classes: int):
        super().__init__()
        self.label_map = LabelMap(num_classes, size) if num_classes else None
        planes = channels + (1 if num_classes else 0)
        side = (size - 4 - 5) // 2 + 1  # after a valid 5x5 and a valid 5x5 of stride 2
        self.net = nn.Sequential(
            conv_block(planes, width, kernel=5, stride=1, padding=0, norm=None, act="relu"),
            conv_block(width, width, kernel=5, stride=2, padding=0, norm=None, act="relu", dropout=dropout),
            nn.Flatten(), nn.Linear(width * side * side, 1),
        )

    def forward(self, h: torch.Tensor, coarse: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        planes = [coarse + h, *([self.label_map(label)] if self.label_map is not None else [])]
        return self.net(torch.cat(planes, 1)).view(-1)


def _classes(num_classes: int, conditional: bool) -> int:
    if conditional and num_classes < 2:
        raise ConfigError("model.conditional=true needs a labelled dataset (dataset.num_classes >= 2)")
    return num_classes if conditional else 0


class PyramidGenerator(nn.Module):
    """Every level's generator, finest first (``levels[-1]`` is the coarsest, fully connected one).
    ``forward(z, noise, label)`` samples coarse to fine and returns ``[Ĩ_K, ..., Ĩ_0]`` (coarsest first, unclamped);
    ``noise[k]`` is level k's noise plane (k < K)."""

    def __init__(self, image_size: int, channels: int, levels: int = 3, z_dim: int = 100, hidden: int = 1200,
                 width: int = 64, num_classes: int = 0, conditional: bool = False):
        super().__init__()
        self.sizes = level_sizes(image_size, levels)
        self.z_dim, self.num_classes = z_dim, _classes(num_classes, conditional)
        self.levels = nn.ModuleList([ResidualGenerator(s, channels, width, self.num_classes) for s in self.sizes[:-1]]
                                    + [CoarseGenerator(self.sizes[-1], channels, z_dim, hidden, self.num_classes)])

    def forward(self, z: torch.Tensor, noise: list[torch.Tensor],
                label: torch.Tensor | None = None) -> list[torch.Tensor]:
        images = [self.levels[-1](z, label)]
        for k in reversed(range(len(self.levels) - 1)):
            coarse = up(images[-1])
            images.append(coarse + self.levels[k](noise[k], coarse, label))
        return images


class PyramidDiscriminator(nn.Module):
    """Every level's discriminator, finest first; ``forward(k, h, l_k, label)`` is level k's logits."""

    def __init__(self, image_size: int, channels: int, levels: int = 3, hidden: int = 600, width: int = 64,
                 dropout: float = 0.5, num_classes: int = 0, conditional: bool = False):
        super().__init__()
        sizes = level_sizes(image_size, levels)
        self.num_classes = classes = _classes(num_classes, conditional)
        self.levels = nn.ModuleList([ResidualDiscriminator(s, channels, width, dropout, classes) for s in sizes[:-1]]
                                    + [CoarseDiscriminator(sizes[-1], channels, hidden, dropout, classes)])

    def forward(self, k: int, h: torch.Tensor, coarse: torch.Tensor | None,
                label: torch.Tensor | None = None) -> torch.Tensor:
        return self.levels[k](h, coarse, label)


class LaplacianTask(GANTask):
    """The pyramid of conditional GANs, trained level by level on the real pyramid (see the module docstring).
    Logs each level's losses and D accuracy (real logits > 0, fake < 0) as ``level<k>/...`` (k = 0: finest)."""

    def __init__(self, generator: PyramidGenerator, discriminator: PyramidDiscriminator, loss: nn.Module,
                 conditional: bool = False):
        if len(generator.levels) != len(discriminator.levels):
            raise ConfigError(f"model.generator.levels={len(generator.levels)} and model.discriminator.levels="
                              f"{len(discriminator.levels)} must be equal")
        if conditional != bool(generator.num_classes) or generator.num_classes != discriminator.num_classes:
            raise ConfigError(f"model.conditional={conditional} must match model.generator.conditional and "
                              f"model.discriminator.conditional (the config interpolates them)")
        super().__init__(generator, discriminator, loss)
        self.num_classes = generator.num_classes

    # -- inputs -------------------------------------------------------------------------------------------
    def _uniform(self, *shape: int) -> torch.Tensor:
        """U[-1, 1] noise from the latent stream (the paper's and EY's noise)."""
        return self.draw_rows(torch.rand, shape[0], *shape[1:]) * 2 - 1

    def sample_inputs(self, n: int, **given) -> dict[str, torch.Tensor]:
        """``z`` (coarsest level), ``noise<k>`` (level k's plane) [, ``label``], drawn unless given."""
        inputs = {"z": given["z"] if given.get("z") is not None else self._uniform(n, self.G.z_dim)}
        for k, s in enumerate(self.G.sizes[:-1]):
            plane = given.get(f"noise{k}")
            inputs[f"noise{k}"] = plane if plane is not None else self._uniform(n, 1, s, s)
        if self.num_classes:
            label = given.get("label")
            inputs["label"] = label if label is not None else self.draw_labels(self.num_classes, n)
        return inputs

    def generate(self, G: nn.Module, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        noise = [inputs[f"noise{k}"] for k in range(len(G.levels) - 1)]
        return G(inputs["z"], noise, inputs.get("label"))

    def _label(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        if not self.num_classes:
            return None
        if "label" not in batch:
            raise ConfigError("model.conditional=true needs class labels, but the dataset's batches have no 'label'")
        return batch["label"]

    def real_levels(self, real: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """Per level, finest first: (the real target, its condition l_k = u(d(I_k))); (I_K, None) at the coarsest."""
        g = gaussian_pyramid(real, len(self.G.levels))
        return [(fine - up(coarse), up(coarse)) for fine, coarse in zip(g, g[1:])] + [(g[-1], None)]

    def fake_levels(self, G: nn.Module, levels: list, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """Per level, each generator's output on the real conditions: h̃_k = G_k(z_k, l_k) and Ĩ_K = G_K(z_K)."""
        label = inputs.get("label")
        fakes = [G.levels[k](inputs[f"noise{k}"], coarse, label) for k, (_, coarse) in enumerate(levels[:-1])]
        return fakes + [G.levels[-1](inputs["z"], label)]

    # -- losses -------------------------------------------------------------------------------------------
    def draw(self, batch: dict[str, torch.Tensor]) -> tuple[list, dict[str, torch.Tensor], list[torch.Tensor]]:
        """(the batch's real levels, fresh generator inputs with the batch's labels, each level's fake)."""
        label = self._label(batch)
        levels = self.real_levels(batch["real"])
        inputs = self.sample_inputs(len(batch["real"]), **({"label": label} if label is not None else {}))
        return levels, inputs, self.fake_levels(self.G, levels, inputs)

    def d_level_losses(self, batch: dict[str, torch.Tensor]) -> tuple[list[torch.Tensor], dict, tuple]:
        """Each level's D loss (finest first), the stats, and what the G step reuses."""
        levels, inputs, fakes = self.draw(batch)
        label = inputs.get("label")
        losses, stats, real_all, fake_all = [], {}, [], []
        for k, ((target, coarse), fake) in enumerate(zip(levels, fakes)):
            real_logits = self.D(k, target, coarse, label)
            fake_logits = self.D(k, fake.detach(), coarse, label)
            losses.append(self.loss.d_loss(real_logits, fake_logits))
            accuracy = torch.cat([real_logits > 0, fake_logits < 0]).float().mean()
            stats |= {f"level{k}/loss/D": losses[-1].detach(), f"level{k}/D_accuracy": accuracy}
            real_all.append(real_logits)
            fake_all.append(fake_logits)
        stats |= self.loss.d_stats(sum(losses).detach(), torch.cat(real_all), torch.cat(fake_all))
        return losses, stats, (levels, inputs, fakes)

    def g_level_losses(self, batch: dict[str, torch.Tensor], carry=None) -> tuple[list[torch.Tensor], dict]:
        """Each level's G loss (finest first) on the D step's fakes (``carry``) or fresh ones, and the stats."""
        levels, inputs, fakes = self.draw(batch) if carry is None else carry
        losses = [self.loss.g_loss(self.D(k, fake, coarse, inputs.get("label")))
                  for k, ((_, coarse), fake) in enumerate(zip(levels, fakes))]
        return losses, {f"level{k}/loss/G": loss.detach() for k, loss in enumerate(losses)}

    def d_loss(self, batch: dict[str, torch.Tensor], carry=None) -> LossOut:
        losses, stats, hand_off = self.d_level_losses(batch)
        return LossOut(sum(losses), stats, hand_off if hand_off[2][0].requires_grad else None)

    def g_loss(self, batch: dict[str, torch.Tensor], carry=None) -> LossOut:
        losses, stats = self.g_level_losses(batch, carry)
        loss = sum(losses)
        return LossOut(loss, {"loss/G": loss.detach(), **stats})

    # -- after training -----------------------------------------------------------------------------------
    def fixed_inputs(self, batch: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
        if self.num_classes:
            self._label(batch)  # an unlabelled dataset fails here, before the first step
            return self.sample_inputs(n, label=torch.arange(n, device=self.device) % self.num_classes)
        return self.sample_inputs(n)

    def sample(self, n: int, G: nn.Module, **given) -> dict[str, torch.Tensor]:
        """The final images ``Ĩ_0`` clamped to [-1, 1]; ``given`` fixes ``z``, ``noise<k>``, ``label``."""
        inputs = self.sample_inputs(n, **given)
        return {"samples": self.generate(G, inputs)[-1].clamp(-1, 1), **inputs}

    def interpolation(self, rows: int, steps: int) -> dict[str, torch.Tensor]:
        """The coarsest z on a straight line between two uniform draws per row (the uniform prior is a cube:
        the segment stays inside it); the finer levels' noise (and label) are held along each row."""
        ends = self._uniform(2, rows, self.G.z_dim)
        t = torch.linspace(0, 1, steps, device=self.device)[None, :, None]
        given = {"z": torch.lerp(ends[0][:, None], ends[1][:, None], t).flatten(0, 1)}
        held = {k: v.repeat_interleave(steps, 0) for k, v in self.sample_inputs(rows).items() if k != "z"}
        return {**given, **held}

    def visuals(self, fixed: dict[str, torch.Tensor], G: nn.Module) -> dict[str, Grid]:
        """``fixed``: the final images; ``pyramid``: per row one sample's coarse image, then per finer level
        its upsampled input u(Ĩ_{k+1}), residual h̃_k (scaled to the row's largest magnitude) and result Ĩ_k,
        every panel enlarged (nearest) to full size."""
        images = self.generate(G, fixed)
        n = len(images[-1])
        size = images[-1].shape[-1]
        show = min(n, 8)

        def panel(x: torch.Tensor) -> torch.Tensor:
            return F.interpolate(x[:show].clamp(-1, 1), size=size, mode="nearest")

        columns = [panel(images[0])]
        for coarse, fine in zip(images, images[1:]):
            lowpass = up(coarse)
            residual = (fine - lowpass)[:show]
            scale = residual.flatten(1).abs().amax(1).clamp_min(1e-8).view(-1, 1, 1, 1)
            columns += [panel(lowpass), panel(residual / scale), panel(fine)]
        pyramid = torch.stack(columns, 1).flatten(0, 1)
        columns_per_row = self.num_classes if self.num_classes else square_columns(n)
        return {"fixed": Grid(images[-1].clamp(-1, 1), columns_per_row), "pyramid": Grid(pyramid, len(columns))}
