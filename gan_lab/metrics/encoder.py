"""Metrics of a learned encoder E (BiGAN / ALI, ``gan_lab.models.bigan``): how well G(E(x)) reconstructs x, and how
much class information a linear classifier finds in E(x).

- Reconstruction (Donahue et al. 2017, the ``EGr`` / ``EGr_b`` of their code, jeffdonahue/bigan ``train_gan.py``):
  the per-image error |x - G(E(x))| on held-out real images, beside the same error against another image,
  |x' - G(E(x))| with x' the next image of the set (the code's shift by one): an encoder that carries no
  information about x scores the same on both. Also the latent round trip |z - E(G(z))| for prior draws and its
  shifted baseline (the code's ``EGg`` measures G(z) against G(E(G(z))) in pixels instead).
- Linear probe (the representation-learning protocol of the BiGAN paper's MNIST table, as recalled, with its
  code's logistic-regression ``CLS``): a multinomial logistic regression fit on E(x) of labelled training images,
  accuracy on held-out images; beside it the same probe on a randomly initialised encoder of the same
  architecture, whose features are a random projection of the pixels (on MNIST a strong baseline: the BiGAN
  code's epoch-0 numbers).

Both apply to any task with ``encode(x, E=None, sample=True)`` and ``random_encoder(seed)``; E runs in eval mode on
its mean (a stochastic encoder's mu). Everything is seeded: the probe's training subset, the prior draws, the random
encoder, and the probe's optimiser (full-batch L-BFGS from zero weights) is deterministic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.metrics.evaluate import Metric, held_out, training_data


def has_encoder(task) -> bool:
    return callable(getattr(task, "encode", None)) and callable(getattr(task, "random_encoder", None))


@torch.no_grad()
def encode_all(task, E: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int) -> torch.Tensor:
    """E's mean code of every image (N, z_dim), E in eval mode (its mode restored), on the CPU."""
    mode = E.training
    E.eval()
    try:
        return torch.cat([task.encode(images[i:i + batch_size].to(device), E, sample=False).float().cpu()
                          for i in range(0, len(images), batch_size)])
    finally:
        E.train(mode)


def shifted(t: torch.Tensor) -> torch.Tensor:
    """Row i becomes row i + 1 (the last the first): every row meets another one."""
    return torch.roll(t, -1, 0)


def per_row_l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs().flatten(1).mean(1)


def per_row_l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).flatten(1).norm(dim=1)


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                 num_classes: int, steps: int = 200, l2: float = 1e-4) -> float:
    """Test accuracy of a multinomial logistic regression on standardised features (the training set's mean and
    standard deviation), cross-entropy + ``l2`` ||W||^2, fit by full-batch L-BFGS (``steps`` iterations at most)
    from zero weights: deterministic."""
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    train_x, test_x = ((x.double() - mean) / std for x in (train_x, test_x))
    weight = torch.zeros(train_x.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=steps, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(train_x @ weight + bias, train_y) + l2 * weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        return float(((test_x @ weight + bias).argmax(1) == test_y).double().mean())


class EncoderMetric(Metric):
    """Applies to the prior-sample set of a task with an encoder."""

    def applies(self, ev, s) -> bool:
        return has_encoder(ev.task) and s.given is None and s.real.dim() == 4


class Reconstruction(EncoderMetric):
    """``reconstruction L1`` / ``L1 shuffled`` (mean |x - G(E(x))| per pixel on [0, 1] images, and against the
    next image), ``reconstruction L2`` / ``L2 shuffled`` (per-image L2 norm on [0, 1], BiGAN's EGr / EGr_b),
    ``latent L1`` / ``L1 shuffled`` (mean |z - E(G(z))| per dimension), on ``count`` held-out images and prior
    draws (seeded by ``seed``)."""

    def __init__(self, count: int = 2000, seed: int = 0):
        if isinstance(count, bool) or not isinstance(count, int) or count < 2:
            raise ConfigError(f"eval.available.reconstruction.count must be an integer >= 2, got {count!r}")
        self.count, self.seed = count, seed

    @torch.no_grad()
    def __call__(self, ev, s) -> dict[str, float]:
        data, where = held_out(ev)
        x = data.examples(self.count)["real"]
        size, task, G = ev.settings.batch_size, ev.task, ev.G
        codes = encode_all(task, task.E, x, ev.device, size)
        recon = torch.cat([G(codes[i:i + size].to(ev.device)).float().cpu() for i in range(0, len(codes), size)])
        z = _prior(task, len(x), self.seed)
        fakes = torch.cat([G(z[i:i + size].to(ev.device)).float().cpu() for i in range(0, len(z), size)])
        z_back = encode_all(task, task.E, fakes, ev.device, size)
        a, b = x * 0.5 + 0.5, recon * 0.5 + 0.5
        ev.info["reconstruction_on"] = f"{where}, {len(x)} images"
        return {"reconstruction L1": float(per_row_l1(a, b).mean()),
                "reconstruction L1 shuffled": float(per_row_l1(shifted(a), b).mean()),
                "reconstruction L2": float(per_row_l2(a, b).mean()),
                "reconstruction L2 shuffled": float(per_row_l2(shifted(a), b).mean()),
                "latent L1": float(per_row_l1(z, z_back).mean()),
                "latent L1 shuffled": float(per_row_l1(shifted(z), z_back).mean())}


def _prior(task, n: int, seed: int) -> torch.Tensor:
    """``n`` prior draws from a stream seeded by ``seed`` (the task's own stream is left where it was)."""
    latent = task.latent
    try:
        task.latent = torch.Generator(task.device).manual_seed(seed)
        return task.draw_z(n).float().cpu()
    finally:
        task.latent = latent


class LinearProbe(EncoderMetric):
    """``probe accuracy`` of a logistic regression on E(x) of ``train_count`` labelled training images (a seeded
    subset; null: all), tested on the held-out images, and ``probe accuracy random E`` for an encoder of the same
    architecture with random weights (seeded by ``seed``)."""

    def __init__(self, train_count: int | None = 10000, steps: int = 200, l2: float = 1e-4, seed: int = 0):
        if train_count is not None and (isinstance(train_count, bool) or not isinstance(train_count, int)
                                        or train_count < 2):
            raise ConfigError(f"eval.available.probe.train_count must be an integer >= 2 or null, got {train_count!r}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"eval.available.probe.steps must be a positive integer, got {steps!r}")
        if not l2 >= 0:
            raise ConfigError(f"eval.available.probe.l2 must be >= 0, got {l2}")
        self.train_count, self.steps, self.l2, self.seed = train_count, steps, l2, seed

    def applies(self, ev, s) -> bool:
        return super().applies(ev, s) and "label" in ev.data.tensors

    def __call__(self, ev, s) -> dict[str, float]:
        test, where = held_out(ev)
        train = training_data(ev)
        index = torch.arange(len(train))
        if self.train_count is not None and self.train_count < len(train):
            index = torch.randperm(len(train), generator=torch.Generator().manual_seed(self.seed))[:self.train_count]
        train_batch = train.batch(index)
        test_batch = test.batch(torch.arange(len(test)))
        classes = int(max(train_batch["label"].max(), test_batch["label"].max())) + 1
        out = {}
        for key, E in (("probe accuracy", ev.task.E), ("probe accuracy random E", ev.task.random_encoder(self.seed))):
            feats = [encode_all(ev.task, E, b["real"], ev.device, ev.settings.batch_size) for b in (train_batch,
                                                                                                 test_batch)]
            out[key] = linear_probe(feats[0], train_batch["label"].cpu(), feats[1], test_batch["label"].cpu(),
                                    classes, self.steps, self.l2)
        ev.info["probe_on"] = f"fit on {len(index)} training images, tested on {where}, {len(test)} images"
        return out
