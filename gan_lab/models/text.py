"""What the text-to-image GANs share: GAN-INT-CLS (Reed et al. 2016, "Generative Adversarial Text to Image
Synthesis", ICML, arXiv 1605.05396) and StackGAN (Zhang et al. 2017, "StackGAN: Text to Photo-realistic Image
Synthesis with Stacked Generative Adversarial Networks", ICCV, arXiv 1612.03242).

- The matching-aware discriminator (Reed et al. §4.2, Algorithm 1; StackGAN §3.3 uses it at both stages):
  D scores (image, text) pairs and learns three kinds of them: real image with its own text (label 1), real
  image with another example's text (label 0: the "mismatch") and generated image with the text it was made
  for (label 0). :func:`matching_d_loss` weighs them; :func:`mismatch_index` picks the other text.
- Conditioning augmentation (StackGAN §3.2): :class:`ConditioningAugmentation` maps the text embedding to a
  Gaussian N(mu, diag(sigma^2)), G is conditioned on a draw from it, and G's loss adds
  KL(N(mu, sigma^2) || N(0, I)) (:func:`kl_to_standard_normal`).
- :class:`TextDiscriminator`: the image trunk down to 4x4 feature maps, the text compressed by a linear layer
  and replicated spatially, depth-concatenated and scored (Reed et al. §4.1; StackGAN §3.3 "spatially
  replicated to form a Md x Md x Nd tensor", Md = 4), optionally with StackGAN-Pytorch's unconditional logit.
- :class:`TextToImageTask`: the training game, sampling from caption embeddings, grids of fixed captions x
  noise and evaluation on held-out captions (``EvalSet.attributes``, so caption accuracy applies).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.losses.adversarial import AdversarialLoss
from gan_lab.models.base import EvalSet, GANTask, Grid, LossOut
from gan_lab.models.blocks import activation, conv_block, dcgan_init


def mismatch_index(n: int, labels: torch.Tensor | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """For each of ``n`` examples, another example whose text it is paired with as a mismatch: never itself
    (no fixed point) and, when ``labels`` are given, one of another class wherever the batch has one (Reed
    et al.'s code draws the wrong image from another class; StackGAN's TF code re-draws same-class picks).
    Uniform over the allowed examples, drawn from ``generator``."""
    if n < 2:
        raise ValueError("a mismatched pair needs a batch of at least 2 examples")
    device = labels.device if labels is not None else (generator.device if generator is not None else None)
    allowed = ~torch.eye(n, dtype=torch.bool, device=device)
    if labels is not None:
        other = labels[:, None] != labels[None, :]
        allowed = torch.where(other.any(1, keepdim=True), other, allowed)
    return torch.multinomial(allowed.float(), 1, generator=generator).squeeze(1)


def matching_d_loss(loss: AdversarialLoss, real: torch.Tensor, wrong: torch.Tensor | None, fake: torch.Tensor,
                    cls_weight: float, real_uncond: torch.Tensor | None = None,
                    fake_uncond: torch.Tensor | None = None) -> torch.Tensor:
    """D's cost on the logits of (real image, right text), (real image, wrong text) and (fake, its text).

    Without unconditional logits (Reed et al. Algorithm 1, their code's ``cls_weight``):
    ``real + cls_weight * wrong + (1 - cls_weight) * fake``; cls_weight 0.5 is Algorithm 1's
    ``log s_r + (log(1 - s_w) + log(1 - s_f)) / 2``, cls_weight 0 the plain conditional GAN (``wrong`` unused).
    With them (StackGAN-Pytorch's Stage-II D, ``compute_discriminator_loss``): the mean of the real terms
    plus the mean of the negative ones, ``(real + real_u) / 2 + (fake + wrong + fake_u) / 3`` (``wrong``
    left out when cls_weight is 0)."""
    if real_uncond is None:
        total = loss.real_term(real) + (1.0 - cls_weight) * loss.fake_term(fake)
        return total + cls_weight * loss.fake_term(wrong) if cls_weight else total
    negatives = [fake, fake_uncond, *([wrong] if cls_weight else [])]
    return (loss.real_term(real) + loss.real_term(real_uncond)) / 2 + sum(map(loss.fake_term, negatives)) / len(negatives)


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor, reduce: str = "sum") -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) = 1/2 sum(mu^2 + sigma^2 - 1 - log sigma^2), averaged over the
    batch. ``reduce="mean"`` averages over the dimensions instead of summing, as both StackGAN reference codes
    do (``KL_loss``: the mean over batch and dimensions)."""
    per_dim = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)
    if reduce == "sum":
        return per_dim.sum(1).mean()
    if reduce == "mean":
        return per_dim.mean()
    raise ConfigError(f"model.kl_reduce={reduce!r}: choose sum (the KL itself) or mean (the reference code's)")


class ConditioningAugmentation(nn.Module):
    """Text embedding (B, text_dim) -> (c, mu, logvar), each (B, c_dim) (StackGAN §3.2).

    A fully connected layer gives mu and log sigma^2; ``c = mu + sigma * eps`` with ``eps`` ~ N(0, I) given by
    the caller (the task draws it from its latent stream). ``act``: None is the paper's plain layer; "relu"
    is StackGAN-Pytorch's ``CA_NET`` (forcing mu >= 0 and sigma >= 1), "lrelu" StackGAN's TF code (which
    reads its second half as log sigma: the same family up to a factor 2 the layer absorbs). ``enabled``
    False gives c = mu (the paper's ablation without CA; no KL term then)."""

    def __init__(self, text_dim: int, c_dim: int = 128, act: str | None = None, enabled: bool = True):
        super().__init__()
        if act not in (None, "relu", "lrelu"):
            raise ConfigError(f"ca_act={act!r}: choose null (the paper's), relu or lrelu (the reference codes')")
        self.c_dim, self.enabled = c_dim, enabled
        self.fc = nn.Sequential(nn.Linear(text_dim, 2 * c_dim), *activation(act))

    def forward(self, text: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.fc(text).chunk(2, dim=1)
        c = mu + (0.5 * logvar).exp() * eps if self.enabled else mu
        return c, mu, logvar


class TextDiscriminator(nn.Module):
    """(images (B, C, S, S), text (B, text_dim)) -> one logit per pair (B,).

    The trunk halves the image with 4x4 stride-2 convolutions down to 4x4 (no norm on the first, batch norm
    after, LeakyReLU 0.2; ``width`` doubling per block), then 3x3 convolutions halve the channels back to
    ``8 * width`` where the trunk went beyond it (StackGAN Stage-II D at 256 px: 2048 -> 1024 -> 512). The text
    is compressed to ``text_proj`` by a linear layer (batch norm: GAN-INT-CLS's code; none: StackGAN's TF code)
    and LeakyReLU, replicated to 4x4 and concatenated; a ``head_kernel`` convolution (1: Reed et al. §4.1's
    1x1, 3: StackGAN's) with batch norm and LeakyReLU, then a 4x4 convolution gives the logit. ``uncond``: a
    second logit from the image features alone (StackGAN-Pytorch's Stage-II ``get_uncond_logits``)."""

    def __init__(self, text_dim: int, image_size: int = 64, channels: int = 3, width: int = 64,
                 text_proj: int = 128, head_kernel: int = 1, text_norm: bool = True, uncond: bool = False):
        super().__init__()
        downs = int(math.log2(image_size)) - 2
        if image_size < 8 or 2 ** (downs + 2) != image_size:
            raise ConfigError(f"dataset.image_size={image_size}: the text discriminator needs a power of two >= 8")
        if head_kernel not in (1, 3):
            raise ConfigError(f"model.discriminator.head_kernel={head_kernel}: choose 1 or 3")
        ch = [width * 2**i for i in range(downs)]
        layers = [conv_block(channels, ch[0], norm=None, act="lrelu"),
                  *(conv_block(a, b, act="lrelu") for a, b in zip(ch, ch[1:]))]
        while ch[-1] > 8 * width:
            ch.append(ch[-1] // 2)
            layers.append(conv_block(ch[-2], ch[-1], kernel=3, stride=1, act="lrelu"))
        self.trunk = nn.Sequential(*layers)
        self.text = nn.Sequential(nn.Linear(text_dim, text_proj, bias=not text_norm),
                                  *([nn.BatchNorm1d(text_proj)] if text_norm else []), *activation("lrelu"))
        self.joint = nn.Sequential(
            conv_block(ch[-1] + text_proj, ch[-1], kernel=head_kernel, stride=1, padding=head_kernel // 2,
                       act="lrelu"),
            nn.Conv2d(ch[-1], 1, 4))
        self.uncond = nn.Conv2d(ch[-1], 1, 4) if uncond else None
        self.apply(dcgan_init)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The image's 4x4 feature maps (B, channels, 4, 4): computed once, judged with several texts."""
        return self.trunk(x)

    def judge(self, features: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """The matching logit of image features and a text embedding (B,)."""
        t = self.text(text)[:, :, None, None].expand(-1, -1, *features.shape[2:])
        return self.joint(torch.cat([features, t], 1)).view(-1)

    def unconditional(self, features: torch.Tensor) -> torch.Tensor | None:
        return None if self.uncond is None else self.uncond(features).view(-1)

    def forward(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.judge(self.features(x), text)


def check_fraction(value, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ConfigError(f"{key}={value!r} must be a number in [0, 1]")
    return float(value)


class TextToImageTask(GANTask):
    """The matching-aware game on (image, caption embedding) batches (``{"real", "text", "label"?}``).

    D step: real images with their text (1), with a mismatched text (0, weight ``cls_weight``, the paper's
    {real image, wrong text}; both reference codes pair the right text with a wrong image instead, the same
    set of pairs), and G's images with their text (0, weight ``1 - cls_weight``); the mismatch is drawn from
    the latent stream by :func:`mismatch_index`. G step: the non-saturating loss (``loss``) on its images
    judged with their text, plus what :meth:`g_terms` adds (the KL of conditioning augmentation; GAN-INT
    overrides :meth:`g_loss`).

    Subclasses say how G is fed: :meth:`draw_latents` (z and any other noise, from the latent stream),
    :meth:`generate` and, to show real images at G's resolution, :meth:`as_output`."""

    data_kinds = ("text",)

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: nn.Module, cls_weight: float = 0.5,
                 reuse_fake: bool = True):
        super().__init__(generator, discriminator, loss, reuse_fake)
        if not isinstance(loss, AdversarialLoss):
            raise ConfigError(f"loss={type(loss).__name__}: the matching-aware discriminator is a cross-entropy "
                              "game (Reed et al. 2016, Algorithm 1); choose loss=nonsaturating or loss=minimax")
        self.cls_weight = check_fraction(cls_weight, "model.cls_weight")

    # -- what subclasses provide --

    def draw_latents(self, n: int) -> dict[str, torch.Tensor]:
        """The noise of ``n`` samples (``z``, ...), drawn from the latent stream."""
        raise NotImplementedError

    def generate(self, G: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def g_terms(self, batch: dict[str, torch.Tensor], inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Extra named terms of G's loss (the KL of conditioning augmentation)."""
        return {}

    def as_output(self, real: torch.Tensor) -> torch.Tensor:
        """Real images as D sees them at this G's resolution (StackGAN Stage I: downsampled)."""
        return real

    # -- the game --

    def sample_inputs(self, n: int, **given) -> dict[str, torch.Tensor]:
        """G's inputs for the text embeddings ``text=`` (n, text_dim); the noise from the latent stream unless
        given (``z=``, ...)."""
        if given.get("text") is None:
            raise ValueError(f"{type(self).__name__} draws images for captions: sample(n, G, text=embeddings)")
        drawn = self.draw_latents(n)
        return {**{k: given[k] if given.get(k) is not None else v for k, v in drawn.items()}, "text": given["text"]}

    def d_loss(self, batch: dict[str, torch.Tensor], carry=None) -> LossOut:
        real, text = self.as_output(batch["real"]), batch["text"]
        inputs = self.sample_inputs(len(real), text=text)
        fake = self.generate(self.G, inputs)  # with G's graph only when the engine hands it off
        features_real, features_fake = self.D.features(real), self.D.features(fake.detach())
        real_logits, fake_logits = self.D.judge(features_real, text), self.D.judge(features_fake, text)
        wrong_logits = None
        if self.cls_weight:
            wrong = mismatch_index(len(real), batch.get("label"), self.latent)
            wrong_logits = self.D.judge(features_real, text[wrong])
        real_u, fake_u = self.D.unconditional(features_real), self.D.unconditional(features_fake)
        loss = matching_d_loss(self.loss, real_logits, wrong_logits, fake_logits, self.cls_weight, real_u, fake_u)
        stats = self.loss.d_stats(loss, real_logits, fake_logits)
        if wrong_logits is not None:
            stats["D(x, wrong text)"] = torch.sigmoid(wrong_logits.detach()).mean()
        return LossOut(loss, stats, (inputs, fake) if fake.requires_grad else None)

    def adversarial_g_loss(self, fake: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """G's adversarial cost: D's matching logit (plus its unconditional one, StackGAN-Pytorch's sum)."""
        features = self.D.features(fake)
        loss = self.loss.g_loss(self.D.judge(features, text))
        uncond = self.D.unconditional(features)
        return loss if uncond is None else loss + self.loss.g_loss(uncond)

    def g_loss(self, batch: dict[str, torch.Tensor], carry=None) -> LossOut:
        if carry is not None:
            inputs, fake = carry
        else:
            inputs = self.sample_inputs(len(batch["text"]), text=batch["text"])
            fake = self.generate(self.G, inputs)
        adversarial = self.adversarial_g_loss(fake, inputs["text"])
        terms = self.g_terms(batch, inputs)
        loss = sum(terms.values(), adversarial)
        return LossOut(loss, {"loss/G": loss.detach(), "loss/G_adv": adversarial.detach(),
                              **{f"loss/{k}": v.detach() for k, v in terms.items()}})

    # -- after training --

    def sample(self, n: int, G: nn.Module, **given) -> dict[str, torch.Tensor]:
        """``{"samples": G(inputs), **inputs}`` for the caption embeddings ``text=`` (n, text_dim)."""
        inputs = self.sample_inputs(n, **given)
        return {"samples": self.generate(G, inputs), **inputs}

    def fixed_inputs(self, batch: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
        """A grid of fixed captions x noise: the texts of the dataset's first examples, one per row, and one
        noise draw per column, shared by the rows (so a column shows what the text changes)."""
        columns = max(1, math.isqrt(n))
        rows = min(max(1, n // columns), len(batch["text"]))
        latents = self.draw_latents(columns)
        return {**{k: v.repeat(rows, *[1] * (v.dim() - 1)) for k, v in latents.items()},
                "text": batch["text"][:rows].repeat_interleave(columns, 0)}

    @staticmethod
    def grid_columns(count: int) -> int:
        """Columns of a grid of :meth:`fixed_inputs` with ``count`` samples (isqrt(n) columns of n // isqrt(n)
        rows hold between k^2 and k^2 + 2k samples, whose isqrt is k)."""
        return max(1, math.isqrt(count))

    def visuals(self, fixed: dict[str, torch.Tensor], G: nn.Module) -> dict[str, Grid]:
        out = self.generate(G, fixed)
        return {"fixed": Grid(out, self.grid_columns(len(out)))}

    def eval_sets(self, data, n: int) -> list[EvalSet]:
        """Samples for ``n`` held-out captions (``data.eval_conditions``), judged by what the captions ask for
        (``attributes``), against the held-out images they describe (else the first ``n`` examples), at G's
        resolution."""
        conditions = data.eval_conditions(n)
        text = conditions["text"].to(self.device)
        real = conditions.get("real")
        real = data.examples(len(text))["real"] if real is None else real
        real = self.as_output(real.to(self.device)).cpu()
        return [EvalSet("", real, given={"text": text}, attributes=conditions.get("attributes"))]

    def text_interpolation(self, start: torch.Tensor, end: torch.Tensor, rows: int,
                           steps: int) -> dict[str, torch.Tensor]:
        """``given`` of :meth:`sample` for ``rows`` rows of ``steps`` samples whose text embedding moves
        linearly from ``start`` to ``end`` (D,) with the noise of each row fixed (Reed et al. §5.4, Fig. 8)."""
        t = torch.linspace(0, 1, steps, device=self.device)[:, None]
        text = (1 - t) * start.to(self.device) + t * end.to(self.device)
        latents = self.draw_latents(rows)
        return {**{k: v.repeat_interleave(steps, 0) for k, v in latents.items()}, "text": text.repeat(rows, 1)}

    def interpolation(self, rows: int, steps: int) -> dict[str, torch.Tensor]:
        raise ConfigError(f"{type(self).__name__} interpolates between captions: give text=[first, second] "
                          "with interpolate=true")


def downsample(images: torch.Tensor, size: int) -> torch.Tensor:
    """Images (B, C, S, S) -> (B, C, size, size), antialiased bilinear (identity at the same size)."""
    if images.shape[-1] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
