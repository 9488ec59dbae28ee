"""Anomaly scores of a GAN trained on normal images only: AnoGAN's latent search and f-AnoGAN's encoder.

AnoGAN: T. Schlegl, P. Seeböck, S. M. Waldstein, U. Schmidt-Erfurth, G. Langs, "Unsupervised Anomaly Detection
with Generative Adversarial Networks to Guide Marker Discovery", IPMI 2017 (arXiv 1703.05921).
§2.1: a DCGAN learns the normal data. §2.2 "Mapping new images to the latent space": with G and D fixed, z
starts from the prior and takes Γ gradient steps on

    L(z) = (1 - λ) · L_R(z) + λ · L_D(z),   L_R(z) = Σ |x - G(z)|,   L_D(z) = Σ |f(x) - f(G(z))|,

f an intermediate layer of D (the feature-matching form of the discrimination loss); λ = 0.1 and Γ = 500 as
the ports (LeeDoYup/AnoGAN-tf, tkwoo/anogan-keras, houssamzenati/Efficient-GAN-Anomaly-Detection) set them
and cite the paper for (checked in their code; the paper text itself as recalled, not re-read).
§2.3 "Detection of anomalies": the anomaly score A(x) is that loss at z_Γ, the residual image
x_R = |x - G(z_Γ)| shows where the anomaly is. Here f = ``D.features`` (the flattened output of D's last
block before its output layer, as AnoGAN-tf's ``feature_match_layer``), the search is
:func:`gan_lab.latent_search.search`: Adam on z, as AnoGAN-tf and the EGAD code (the paper's optimiser and
step size are not checked here), z clamped into the prior's support when that is bounded (a uniform prior).

f-AnoGAN: T. Schlegl, P. Seeböck, S. M. Waldstein, G. Langs, U. Schmidt-Erfurth, "f-AnoGAN: Fast unsupervised
anomaly detection with generative adversarial networks", Medical Image Analysis 54 (2019). The search is
replaced by an encoder E trained with G and D frozen on normal training images, the izi_f training of the
authors' code (tSchlegl/f-AnoGAN ``z_encoding_izif.py``):

    L(E) = MSE(x, G(E(x))) + κ · MSE(f(x), f(G(E(x)))),   κ = 1,   RMSProp, lr 5e-5,

E is D's trunk with its own weights, then a linear map to z and tanh (``Z_REG_TYPE='tanh_fc'``, the "paper
version"; the code uses tanh with its N(0, I) prior; ``squash='auto'`` here follows the prior's shape instead:
tanh for a uniform prior, none for a Gaussian one). The anomaly score of the code's ``anomaly_detection.py``
is the same sum per image, A(x) = MSE_img + κ · MSE_feat (means over the pixels and the features).

Both scores rank images: a higher score is more anomalous; :func:`auroc` measures the ranking against
labels without a threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from hydra.utils import instantiate
from torch import nn

from gan_lab.latent_search import search

Generate = Callable[[torch.Tensor], torch.Tensor]  # z (B, z_dim) -> images (B, C, H, W)
Features = Callable[[torch.Tensor], torch.Tensor]  # images -> D's features (B, F)

SQUASHES = ("auto", "tanh", "none")


@dataclass
class Scores:
    """Per image: the anomaly score, its two parts (unweighted), the latent it was scored at and G of it."""

    score: torch.Tensor        # (N,)
    residual: torch.Tensor     # (N,) AnoGAN: Σ|x - G(z)|; f-AnoGAN: mean (x - G(E(x)))^2
    feature: torch.Tensor      # (N,) AnoGAN: Σ|f(x) - f(G(z))|; f-AnoGAN: mean (f(x) - f(G(E(x))))^2
    z: torch.Tensor            # (N, z_dim)
    reconstruction: torch.Tensor  # (N, C, H, W) G(z)

    @staticmethod
    def cat(parts: list["Scores"]) -> "Scores":
        return Scores(*(torch.cat([getattr(p, k) for p in parts]) for k in Scores.__dataclass_fields__))


def anogan_parts(generate: Generate, features: Features, x: torch.Tensor, fx: torch.Tensor,
                 z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(L_R, L_D, G(z)) per image (§2.2): the L1 residual and the L1 feature residual, summed per image."""
    g = generate(z)
    return (x - g).abs().flatten(1).sum(1), (fx - features(g)).abs().flatten(1).sum(1), g


def search_scores(generate: Generate, features: Features, x: torch.Tensor, z0: torch.Tensor, steps: int,
                  lr: float, weight: float, bounds: tuple[float, float] | None = None) -> Scores:
    """AnoGAN's A(x) for a batch of queries ``x``: ``steps`` (Γ) Adam steps on z from ``z0`` minimising
    (1 - weight) L_R + weight L_D per image, then the same loss at the end. Call it with the networks
    frozen (:func:`gan_lab.latent_search.frozen`): each image is then searched as if alone."""
    if not 0 <= weight <= 1:
        raise ValueError(f"weight (lambda) must lie in [0, 1], got {weight}")
    with torch.no_grad():
        fx = features(x)

    def loss(z: torch.Tensor) -> torch.Tensor:
        residual, feature, _ = anogan_parts(generate, features, x, fx, z)
        return (1 - weight) * residual + weight * feature

    z, score = search(loss, z0, steps, lr, bounds)
    with torch.no_grad():
        residual, feature, g = anogan_parts(generate, features, x, fx, z)
    return Scores(score, residual, feature, z, g)


class Encoder(nn.Module):
    """f-AnoGAN's E: a fresh discriminator of the GAN's own architecture (``discriminator``: its config,
    instantiated with new weights) up to its features, then a linear map to ``z_dim`` and ``squash``
    (``tanh``: into the cube [-1, 1]^d, the f-AnoGAN code's ``tanh_fc``; ``none``: unbounded)."""

    def __init__(self, discriminator: dict, image_shape: list[int], z_dim: int, squash: str):
        super().__init__()
        if squash not in ("tanh", "none"):
            raise ValueError(f"encoder.squash must be tanh or none here, got {squash!r}")
        self.arch = {"discriminator": discriminator, "image_shape": list(image_shape), "z_dim": z_dim, "squash": squash}
        self.trunk = instantiate(discriminator)
        with torch.no_grad():
            was = self.trunk.training
            width = self.trunk.eval().features(torch.zeros(1, *image_shape)).shape[1]
            self.trunk.train(was)
        self.to_z = nn.Linear(width, z_dim)
        self.squash = squash

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.to_z(self.trunk.features(x))
        return torch.tanh(z) if self.squash == "tanh" else z


def izi_f_parts(generate: Generate, features: Features, x: torch.Tensor,
                z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(MSE_img, MSE_feat, G(z)) per image, z = E(x): f-AnoGAN's izi_f residuals."""
    g = generate(z)
    return ((x - g) ** 2).flatten(1).mean(1), ((features(x) - features(g)) ** 2).flatten(1).mean(1), g


def train_encoder(encoder: nn.Module, generate: Generate, features: Features, batches: Callable[[int], torch.Tensor],
                  iterations: int, lr: float, kappa: float,
                  on_step: Callable[[int, float], None] | None = None) -> float:
    """f-AnoGAN's izi_f training: ``iterations`` RMSProp steps of rate ``lr`` on
    MSE(x, G(E(x))) + kappa MSE(f(x), f(G(E(x)))) over ``batches(k)`` (normal images). Only the encoder's
    parameters are handed to the optimiser; call it with G and D frozen. Returns the last loss."""
    optimizer = torch.optim.RMSprop(encoder.parameters(), lr=lr)
    encoder.train()
    loss = torch.tensor(float("nan"))
    for k in range(iterations):
        x = batches(k)
        image, feature, _ = izi_f_parts(generate, features, x, encoder(x))
        loss = image.mean() + kappa * feature.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if on_step is not None:
            on_step(k + 1, loss.item())
    encoder.eval()
    return float(loss.detach())


@torch.no_grad()
def encoder_scores(encoder: nn.Module, generate: Generate, features: Features, x: torch.Tensor,
                   kappa: float) -> Scores:
    """f-AnoGAN's A(x) = MSE_img + kappa MSE_feat of ``x`` mapped by ``encoder`` (in eval mode)."""
    z = encoder(x)
    image, feature, g = izi_f_parts(generate, features, x, z)
    return Scores(image + kappa * feature, image, feature, z, g)


def auroc(scores: torch.Tensor, anomalous: torch.Tensor) -> float:
    """Area under the ROC curve of ``scores`` (higher = more anomalous) against the boolean ``anomalous``:
    the probability that an anomalous image outscores a normal one, ties counting half (the Mann-Whitney U
    statistic over n_anomalous * n_normal, from average ranks)."""
    anomalous = anomalous.bool().flatten()
    n1, n0 = int(anomalous.sum()), int((~anomalous).sum())
    if n1 == 0 or n0 == 0:
        raise ValueError("AUROC needs both normal and anomalous images")
    values, inverse, counts = torch.unique(scores.double().flatten(), return_inverse=True, return_counts=True)
    last = torch.cumsum(counts, 0).double()  # 1-based rank of each distinct value's last copy
    ranks = (last - (counts - 1) / 2)[inverse]  # average rank of tied values
    return float((ranks[anomalous].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def stratified(labels: torch.Tensor, count: int | None) -> torch.Tensor:
    """Indices of a subset of ``count`` examples with each label's share of the whole (largest remainders),
    each label's picks evenly spaced through its examples in dataset order (deterministic; no seed); all
    indices when ``count`` is None or not smaller than the set."""
    if count is None or count >= len(labels):
        return torch.arange(len(labels))
    classes, sizes = torch.unique(labels, return_counts=True)
    quota = sizes.double() * count / len(labels)
    take = quota.floor().long()
    take[torch.argsort(quota - take, descending=True)[:count - int(take.sum())]] += 1
    picks = []
    for c, n in zip(classes.tolist(), take.tolist()):
        members = torch.nonzero(labels == c).flatten()
        if n:
            picks.append(members[torch.linspace(0, len(members) - 1, n).round().long()])
    return torch.sort(torch.cat(picks)).values


def squash_for(setting: str, prior: str) -> str:
    """The encoder's output map: ``auto`` follows the prior (tanh for uniform, none for normal)."""
    if setting not in SQUASHES:
        raise ValueError(f"encoder.squash must be one of {', '.join(SQUASHES)}, got {setting!r}")
    if setting != "auto":
        return setting
    return "tanh" if prior == "uniform" else "none"

