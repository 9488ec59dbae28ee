"""Semi-supervised GAN of Salimans et al. 2016, "Improved Techniques for Training GANs", §5.

D is a classifier with K+1 outputs: the K classes of the data and "generated". Its (K+1)-th logit
is fixed at 0 (§5: subtracting a function of x from every logit leaves the softmax unchanged), so
with Z(x) = sum_k exp l_k(x) the probability of "real" is D(x) = Z(x) / (Z(x) + 1) = sigmoid(log Z(x)):
the discriminators here return log Z(x) = logsumexp_k l_k(x) as their real/fake logit, and any
adversarial loss, penalty or trick of gan-lab applies to it unchanged; ``classify(x)`` gives the K
logits. D minimises L = L_supervised + L_unsupervised: the cross-entropy of the K logits on a batch
of the few labelled examples, plus the GAN loss on an unlabelled real batch and a generated one.
G is trained by feature matching (§3.1; ``tricks/feature_matching``), which §5 uses.

As in the authors' code (openai/improved-gan, ``train_*_feature_matching.py``): a fixed subset of
``labelled`` examples, balanced over the classes and picked from a seeded permutation of the data;
every D step takes a labelled batch of the unlabelled batch's size from successive random
permutations of that subset; Adam with beta1 = 0.5. The MNIST networks of the code are
:class:`MLPDiscriminator` (Gaussian noise before every layer) and :class:`MLPGenerator`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from gan_lab.data.base import TensorDataset
from gan_lab.errors import ConfigError
from gan_lab.models import dcgan
from gan_lab.models.base import LossOut
from gan_lab.models.blocks import numel
from gan_lab.models.noise import NoiseToImage


def real_fake_logit(class_logits: torch.Tensor) -> torch.Tensor:
    """log Z(x) for K class logits (B, K) and a fixed fake logit 0: sigmoid of it is Z / (Z + 1) (§5)."""
    return torch.logsumexp(class_logits.float(), dim=1)


class KPlusOneLogits:
    """Mixin for a discriminator with ``features`` and a linear ``head`` to K outputs: ``classify`` gives
    the K class logits, ``forward`` the real/fake logit of the K+1-class model (§5)."""

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """The K class logits (B, K)."""
        return self.head(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return real_fake_logit(self.classify(x))


class Discriminator(KPlusOneLogits, dcgan.Discriminator):
    """The DCGAN discriminator with K class logits: images -> real/fake logit (B,); ``classify`` -> (B, K)."""

    def __init__(self, num_classes: int, image_size: int = 64, channels: int = 3, width: int = 64,
                 norm: str = "batch"):
        super().__init__(image_size=image_size, channels=channels, width=width, norm=norm, outputs=num_classes)
        self.num_classes = num_classes


class GaussianNoise(nn.Module):
    """Adds N(0, sigma^2) noise in training mode only (the reference code's ``GaussianNoiseLayer``)."""

    def __init__(self, sigma: float):
        super().__init__()
        self.sigma = sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.sigma * torch.randn_like(x) if self.training and self.sigma else x


class MLPDiscriminator(KPlusOneLogits, nn.Module):
    """The code's MNIST discriminator: noise (sigma 0.3 on the input, 0.5 after each hidden layer), dense
    ReLU layers 1000-500-250-250-250, K outputs; the features are the last hidden layer before its noise,
    as the code's feature matching uses. Weight-normalised layers, initialised from data
    (:meth:`init_from_data`) as the code does: the noise would drown the signal of default-initialised layers."""

    def __init__(self, in_shape: list[int], num_classes: int, hidden: list[int] = (1000, 500, 250, 250, 250),
                 input_noise: float = 0.3, noise: float = 0.5):
        super().__init__()
        self.num_classes = num_classes
        sizes = [numel(in_shape), *hidden]
        sigmas = [input_noise] + [noise] * (len(sizes) - 2)
        self.body = nn.Sequential(nn.Flatten(), *(m for a, b, sigma in zip(sizes, sizes[1:], sigmas) for m in
                                                  (GaussianNoise(sigma), weight_norm(nn.Linear(a, b)), nn.ReLU())))
        # the noise after the last hidden layer belongs to the path to the logits, not to the features
        self.head = nn.Sequential(GaussianNoise(noise), weight_norm(nn.Linear(sizes[-1], num_classes)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer (B, hidden[-1])."""
        return self.body(x)

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> None:
        """Data-dependent initialisation of weight normalisation (Salimans & Kingma 2016, §3.1): layer by layer,
        each unit's scale and bias are set so that its pre-activations on ``x`` have zero mean and unit variance."""
        h = x
        for layer in [*self.body, *self.head]:
            if isinstance(layer, nn.Linear):
                pre = layer(h)
                mean, std = pre.mean(0), pre.std(0) + 1e-6
                layer.parametrizations.weight.original0.div_(std[:, None])  # the scale g of each unit
                layer.bias.sub_(mean).div_(std)
            h = layer(h)


class MLPGenerator(nn.Module):
    """The code's MNIST generator: z (100) -> 500 softplus -> 500 softplus (batch norm on both) -> the image,
    squashed by tanh for data in [-1, 1] (the code's sigmoid, for [0, 1] data); weight norm on the output."""

    def __init__(self, out_shape: list[int], z_dim: int = 100, hidden: list[int] = (500, 500)):
        super().__init__()
        self.out_shape, self.z_dim = tuple(int(s) for s in out_shape), z_dim
        sizes = [z_dim, *hidden]
        hidden_layers = (m for a, b in zip(sizes, sizes[1:])
                         for m in (nn.Linear(a, b, bias=False), nn.BatchNorm1d(b), nn.Softplus()))
        self.net = nn.Sequential(*hidden_layers, weight_norm(nn.Linear(sizes[-1], numel(self.out_shape))), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(len(z), *self.out_shape)


class SemiSupervisedTask(NoiseToImage):
    """The GAN game of :class:`NoiseToImage` on the real/fake logit, plus the cross-entropy of D's K
    class logits on the labelled subset. The subset (``labelled`` examples, ``labelled / K`` per class,
    picked by ``labelled_seed``) and the position in its current permutation are buffers, so they are
    saved in checkpoints and a resumed run continues the same stream of labelled batches."""

    data_kinds = ("image",)

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: nn.Module, labelled: int,
                 image_shape: list[int], labelled_seed: int = 0):
        super().__init__(generator, discriminator, loss)
        if not callable(getattr(discriminator, "classify", None)):
            raise ConfigError(f"model.discriminator: {type(discriminator).__name__} has no classify(x); the "
                              "semi-supervised GAN needs a K-class discriminator (gan_lab.models.ssgan.Discriminator)")
        classes = discriminator.num_classes
        if isinstance(labelled, bool) or not isinstance(labelled, int) or labelled < classes or labelled % classes:
            lower = max(classes, labelled // classes * classes) if isinstance(labelled, int) else classes
            raise ConfigError(f"model.labelled={labelled!r} must be a positive multiple of the {classes} classes (the "
                              f"labelled examples are balanced over the classes), e.g. {lower} or {lower + classes}")
        self.num_classes, self.labelled_seed = classes, labelled_seed
        self.register_buffer("labelled_real", torch.zeros(labelled, *image_shape, dtype=torch.uint8))
        self.register_buffer("labelled_label", torch.zeros(labelled, dtype=torch.long))
        # Labelled batches run through successive random permutations of the subset (the reference code);
        # position == labelled: the current one is used up and the next draw starts a new one.
        self.register_buffer("labelled_order", torch.arange(labelled))
        self.register_buffer("labelled_position", torch.tensor(labelled))

    def use_data(self, data: TensorDataset) -> None:
        """Pick the labelled subset: the first ``labelled / K`` examples of each class in a permutation
        seeded by ``labelled_seed`` (the reference code's ``seed_data``)."""
        if "label" not in data.tensors:
            raise ConfigError("model=ssgan needs class labels for its labelled subset, but the dataset has none: "
                              "choose a labelled dataset (e.g. dataset=shapes or dataset=mnist)")
        if tuple(data.tensors["real"].shape[1:]) != tuple(self.labelled_real.shape[1:]):
            raise ConfigError(f"model.image_shape={list(self.labelled_real.shape[1:])} differs from the dataset's "
                              f"images {list(data.tensors['real'].shape[1:])}")
        labels = data.tensors["label"].cpu()
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(self.labelled_seed))
        per_class = len(self.labelled_label) // self.num_classes
        picks = []
        for k in range(self.num_classes):
            of_k = order[labels[order] == k][:per_class]
            if len(of_k) < per_class:
                raise ConfigError(f"model.labelled={len(self.labelled_label)}: class {k} has only {len(of_k)} "
                                  f"examples in the dataset, {per_class} are needed per class")
            picks.append(of_k)
        index = torch.cat(picks)
        self.labelled_real.copy_(data.tensors["real"].index_select(0, index.to(data.device)))
        self.labelled_label.copy_(labels[index])
        if callable(getattr(self.D, "init_from_data", None)):  # on 500 examples, as the reference code
            self.D.init_from_data(data.batch(order[:500].to(data.device))["real"].to(self.labelled_real.device))

    def labelled_batch(self, n: int) -> dict[str, torch.Tensor]:
        """The next ``n`` labelled examples; a new permutation (global torch RNG, on the CPU so that the
        stream is the same on every device) when the current one is used up."""
        total = len(self.labelled_label)
        parts = []
        while n > 0:
            position = int(self.labelled_position)
            if position == total:
                self.labelled_order.copy_(torch.randperm(total))
                position = 0
            take = min(n, total - position)
            parts.append(self.labelled_order[position:position + take])
            self.labelled_position.fill_(position + take)
            n -= take
        subset = TensorDataset({"real": self.labelled_real, "label": self.labelled_label})
        return subset.batch(torch.cat(parts))

    def d_loss(self, batch: dict[str, torch.Tensor], carry=None) -> LossOut:
        unsupervised = super().d_loss(batch, carry)  # the configured GAN loss (and penalties); labels unused
        labelled = self.labelled_batch(len(batch["real"]))
        logits = self.D.classify(self.d_view(labelled["real"]))
        supervised = F.cross_entropy(logits.float(), labelled["label"])  # L_supervised, over the K classes
        loss = unsupervised.loss + supervised
        stats = {**unsupervised.stats, "loss/D": loss.detach(), "loss/D_unsupervised": unsupervised.stats["loss/D"],
                 "loss/D_supervised": supervised.detach(),
                 "accuracy/labelled": (logits.detach().argmax(1) == labelled["label"]).float().mean()}
        return LossOut(loss, stats, unsupervised.carry)
