"""One-sided label smoothing (Salimans et al. 2016, "Improved Techniques for Training GANs",
§3.4): the discriminator's targets for real examples become alpha < 1, those for generated
examples stay 0. The optimal discriminator is then alpha p_data / (p_data + p_g): smoothing only
the real side caps D's confidence without rewarding G for regions where p_data is 0, which
smoothing the fake targets would (the paper's argument for one-sided smoothing).

The paper gives no value; alpha = 0.9 is the example of Goodfellow 2016 ("NIPS 2016 Tutorial:
Generative Adversarial Networks", §4.2). The authors' ImageNet code (openai/improved-gan,
``imagenet/build_model.py``) used 0.75 (``d_label_smooth=.25``) and subtracted the target's
entropy from D's real cost, a constant that changes no gradient and is left out here. G's cost is
unchanged."""

from __future__ import annotations

from torch import nn

from gan_lab.errors import ConfigError
from gan_lab.losses.adversarial import AdversarialLoss
from gan_lab.tricks.base import Trick


class LabelSmoothing(Trick):
    """Sets the real target of the task's cross-entropy loss to ``alpha``."""

    def __init__(self, alpha: float = 0.9):
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"tricks.label_smoothing.alpha must be in (0, 1), got {alpha}")
        self.alpha = alpha

    def setup(self, task: nn.Module) -> None:
        loss = getattr(task, "loss", None)
        if not isinstance(loss, AdversarialLoss):
            raise ConfigError(
                f"tricks.label_smoothing: the loss {type(loss).__name__} has no real/fake targets (its D output is "
                "a score, not a probability), so label smoothing cannot apply; use a cross-entropy loss "
                "(loss=nonsaturating, minimax or maxlikelihood)")
        loss.real_target = self.alpha
