"""What the unpaired two-way translators share: CycleGAN (Zhu et al. 2017), DiscoGAN (Kim et al. 2017)
and DualGAN (Yi et al. 2017) each train two generators, ``G_AB: A -> B`` and ``G_BA: B -> A``, and two
discriminators, ``D_A`` (real A against G_BA's outputs) and ``D_B`` (real B against G_AB's), on batches
``{"A": (b, C, H, W), "B": ...}`` in [-1, 1] drawn independently per domain.

The players are two ``nn.ModuleDict`` s, ``G = {"AB", "BA"}`` and ``D = {"A", "B"}``: one optimizer over
both generators and one over both discriminators, as every reference code has it (CycleGAN's
``itertools.chain(netG_A, netG_B)``), and an averaged generator (``tricks=[ema]``) averages both
directions. Each network is built from one recipe, a partial ``_target_`` called once per direction with
the domain's channels (``in_channels``/``out_channels`` for generators, ``in_channels`` for
discriminators), so an override such as ``model.generator.width=64`` changes both.

Here: the task base (:class:`TwoWayTranslator`: players, ``fixed_examples``, ``sample``, ``visuals``), the
cycle (reconstruction) and identity distances, and CycleGAN's history of generated images
(:class:`ImagePool`, Shrivastava et al. 2017, §2.3, used by Zhu et al. 2017, §4).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.models.base import EvalSet, GANTask, Grid, square_columns
from gan_lab.models.pix2pix import triplets

DIRECTIONS = {"AtoB": "AB", "BtoA": "BA"}
Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def translate(G: nn.ModuleDict, x: torch.Tensor, direction: str) -> torch.Tensor:
    """``G_AB(x)`` for ``"AtoB"``, ``G_BA(x)`` for ``"BtoA"``."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    return G[DIRECTIONS[direction]](x)


def cycle_losses(G: nn.ModuleDict, real_A: torch.Tensor, real_B: torch.Tensor, fake_A: torch.Tensor,
                 fake_B: torch.Tensor, distance: Distance = F.l1_loss) -> tuple[torch.Tensor, torch.Tensor]:
    """``(d(G_BA(fake_B), real_A), d(G_AB(fake_A), real_B))`` with ``fake_B = G_AB(real_A)`` and
    ``fake_A = G_BA(real_B)``: CycleGAN's cycle consistency (Zhu et al. 2017, eq. 2, L1), DualGAN's
    recovery loss (Yi et al. 2017, L1; section unverified), DiscoGAN's reconstruction loss (Kim et al. 2017,
    §2.1/§2.3: any of L1, L2, Huber; MSE in its code). Zero exactly when the two generators invert each other on the batch."""
    return distance(G["BA"](fake_B), real_A), distance(G["AB"](fake_A), real_B)


def identity_losses(G: nn.ModuleDict, real_A: torch.Tensor, real_B: torch.Tensor,
                    distance: Distance = F.l1_loss) -> tuple[torch.Tensor, torch.Tensor]:
    """``(d(G_BA(real_A), real_A), d(G_AB(real_B), real_B))``: each generator should leave an image of
    its target domain unchanged (Zhu et al. 2017, §5.2 "photo generation from paintings", after Taigman
    et al. 2017). Needs the same channel count in both domains."""
    return distance(G["BA"](real_A), real_A), distance(G["AB"](real_B), real_B)


class ImagePool(nn.Module):
    """A history of ``size`` generated images that the discriminator sees instead of only the newest
    (Shrivastava et al. 2017, §2.3; Zhu et al. 2017, §4: "a history of 50 generated images"), per image as
    the CycleGAN code's ``util/image_pool.py``: while the pool holds fewer than ``size`` images, store the
    image and return it; once full, with probability 1/2 return a stored image (a clone) and store the new
    one in its place, else return the new one. ``size=0`` returns the batch unchanged.

    The draws come from the pool's own ``torch.Generator`` (seeded by ``seed``, on the CPU, so they do not
    depend on the device or move the global RNG). Contents, count and generator state are the module's
    extra state, so ``task.state_dict()`` carries them and a resumed run continues exactly (the reference
    code keeps none of it). The output is detached, same shape as the input."""

    def __init__(self, size: int = 50, seed: int = 0):
        super().__init__()
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ConfigError(f"model.pool_size must be an integer >= 0, got {size!r}")
        self.size, self.seed = size, seed
        self.images: list[torch.Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def count(self) -> int:
        """Images stored (at most ``size``). No ``__len__``: an empty module would then be falsy."""
        return len(self.images)

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        images = images.detach()
        if self.size == 0:
            return images
        out = []
        for image in images:
            if len(self.images) < self.size:
                self.images.append(image.clone())  # a clone: a view would keep the whole batch alive
                out.append(image)
            elif torch.rand((), generator=self.generator).item() > 0.5:
                k = int(torch.randint(self.size, (), generator=self.generator))
                out.append(self.images[k].to(image.device, image.dtype, copy=True))
                self.images[k] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.query(images)

    def get_extra_state(self) -> dict:
        images = torch.stack(self.images) if self.images else torch.empty(0)
        return {"images": images, "count": len(self.images), "rng": self.generator.get_state()}

    def set_extra_state(self, state: dict) -> None:
        count = int(state["count"])
        if count > self.size:
            raise ValueError(f"image pool state holds {count} images, more than model.pool_size={self.size}")
        self.images = [image.clone() for image in state["images"][:count]]
        self.generator.set_state(state["rng"].cpu())  # a map_location may have moved it

    def extra_repr(self) -> str:
        return f"size={self.size}, seed={self.seed}"


class TwoWayTranslator(GANTask):
    """Base task of the unpaired translators: ``G = ModuleDict(AB, BA)``, ``D = ModuleDict(A, B)``.

    ``generator`` and ``discriminator`` are recipes (partial targets): ``generator(in_channels=,
    out_channels=)`` and ``discriminator(in_channels=)``, called once per direction / domain with
    ``channels_A`` and ``channels_B``. Subclasses write ``phases`` and the phase losses."""

    data_kinds = ("unpaired",)
    fixed_examples = ("A", "B")

    def __init__(self, generator: Callable[..., nn.Module], discriminator: Callable[..., nn.Module],
                 loss: nn.Module | None = None, channels_A: int = 3, channels_B: int = 3):
        G = nn.ModuleDict({"AB": generator(in_channels=channels_A, out_channels=channels_B),
                           "BA": generator(in_channels=channels_B, out_channels=channels_A)})
        D = nn.ModuleDict({"A": discriminator(in_channels=channels_A), "B": discriminator(in_channels=channels_B)})
        super().__init__(G, D, loss)
        self.channels_A, self.channels_B = channels_A, channels_B

    def check_identity(self, weight: float, key: str) -> None:
        """A ConfigError naming both channel keys when the identity loss is on between domains of
        different channel counts (G_AB(b) cannot be compared with b; CycleGAN issue #1093)."""
        if weight and self.channels_A != self.channels_B:
            raise ConfigError(f"{key}={weight} needs images of the same channels in both domains, but "
                              f"model.channels_A={self.channels_A} and model.channels_B={self.channels_B}; "
                              f"set {key}=0")

    def fakes(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(fake_A, fake_B) = (G_BA(B), G_AB(A))``."""
        return self.G["BA"](batch["B"]), self.G["AB"](batch["A"])

    def discriminate(self, batch: dict[str, torch.Tensor], fake_A: torch.Tensor, fake_B: torch.Tensor,
                     weight: float = 1.0) -> tuple[torch.Tensor, dict]:
        """``weight * (loss.d_loss(D_A(A), D_A(fake_A)) + loss.d_loss(D_B(B), D_B(fake_B)))`` and its stats:
        ``loss/D``, ``loss/D_A``, ``loss/D_B`` and the loss's own statistics averaged over both domains."""
        total, stats, shared = 0.0, {}, []
        for domain, fake in (("A", fake_A), ("B", fake_B)):
            real_out, fake_out = self.D[domain](batch[domain]), self.D[domain](fake.detach())
            part = weight * self.loss.d_loss(real_out, fake_out)
            shared.append(self.loss.d_stats(part, real_out, fake_out))
            stats[f"loss/D_{domain}"] = part.detach()
            total = total + part
        for key in shared[0]:
            stats[key] = (shared[0][key] + shared[1][key]) / 2
        stats["loss/D"] = total.detach()
        return total, stats

    def adversarial(self, fake_A: torch.Tensor, fake_B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The generators' adversarial costs ``(loss.g_loss(D_B(G_AB(A))), loss.g_loss(D_A(G_BA(B))))``."""
        return self.loss.g_loss(self.D["B"](fake_B)), self.loss.g_loss(self.D["A"](fake_A))

    # -- after training: grids, eval and `gan-lab sample` --

    def sample(self, n: int, G: nn.Module, **given) -> dict[str, torch.Tensor]:
        """``{"samples": G_AB(input)}`` for ``direction="AtoB"`` (the default), ``G_BA(input)`` for
        ``"BtoA"``; ``input`` is (n, C, H, W) in [-1, 1]."""
        if "input" not in given:
            raise ValueError("a translator translates images: sample(n, G, input=images, direction='AtoB'|'BtoA')")
        return {"samples": translate(G, given["input"], given.get("direction", "AtoB"))}

    def eval_sets(self, data, n: int) -> list[EvalSet]:
        """Per direction, the translations of one domain's first ``n`` images against the other domain's
        (their true partners where the dataset keeps hidden pairs), and the way back."""
        examples = data.examples(n)
        return [EvalSet(f"{direction} ", examples[target], given={"input": examples[source], "direction": direction},
                        paired=data.paired, back={"direction": back})
                for direction, source, target, back in (("AtoB", "A", "B", "BtoA"), ("BtoA", "B", "A", "AtoB"))]

    def visuals(self, fixed: dict[str, torch.Tensor], G: nn.Module) -> dict[str, Grid]:
        """Rows ``A | G_AB(A) | G_BA(G_AB(A))`` ("AtoB") and ``B | G_BA(B) | G_AB(G_BA(B))`` ("BtoA")."""
        grids = {}
        for direction, source, back in (("AtoB", "A", "BtoA"), ("BtoA", "B", "AtoB")):
            x = fixed[source]
            out = translate(G, x, direction)
            grids[direction] = Grid(triplets(x, out, translate(G, out, back)), 3 * square_columns(len(x)))
        return grids
