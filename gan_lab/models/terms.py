"""Loss terms a noise-to-image task adds to its players' losses, and what D computed for them.

Tricks (``gan_lab.tricks``) and models (InfoGAN's information term) both provide terms, so the
protocol lives here, on the model side: tricks depend on models, never the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass(kw_only=True)
class CriticPass:
    """What D computed in one step of a :class:`NoiseToImage` task, handed to the penalties
    (:meth:`LossTerm.d_terms` / ``g_terms``) so that none of them runs D again for it.

    - ``fake`` = G(``inputs``): detached in the D step, with G's graph in the G step;
    - ``real``, ``cond``: the D step's real batch and D's extra arguments for it (the cGAN labels);
      None and () in the G step;
    - ``real_logits``, ``fake_logits``: D's outputs on them as D saw them (after ``task.d_input``),
      with D's graph; ``fake_logits`` is None in a G step whose loss a ``g_objective`` replaces;
    - ``real_features``, ``fake_features``: D's features (``D.features``) from the same forward
      passes; None unless a penalty uses them (:attr:`LossTerm.uses_features`).

    ``real`` and ``fake`` themselves are the samples as the data and G gave them, before ``d_input``."""

    fake: torch.Tensor | None = None
    inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    fake_logits: torch.Tensor | None = None
    fake_features: torch.Tensor | None = None
    real: torch.Tensor | None = None
    cond: tuple = ()
    real_logits: torch.Tensor | None = None
    real_features: torch.Tensor | None = None


class LossTerm:
    """Terms added to D's and/or G's loss, each logged under its name.

    The task hands each term the step's :class:`CriticPass`, so a term on D's outputs or features
    reuses them; only a term on other inputs (interpolates, inputs that need a gradient) runs D itself.
    Subclasses set ``name`` and implement :meth:`penalty` (one D term, ``penalty/<name>``), or override
    :meth:`d_terms` and :meth:`g_terms`. ``uses_features = True`` asks the task for D's features in the
    pass; D must then expose ``features(x, *cond)`` and ``from_features(features)`` with
    ``D(x, *cond) == D.from_features(D.features(x, *cond))``."""

    name: str
    uses_features = False

    def d_terms(self, task: nn.Module, seen: CriticPass) -> dict[str, torch.Tensor]:
        """Named terms of D's loss; ``seen.fake`` is detached."""
        return {f"penalty/{self.name}": self.penalty(task.D, seen)}

    def g_terms(self, task: nn.Module, seen: CriticPass) -> dict[str, torch.Tensor]:
        """Named terms of G's loss; ``seen.fake`` carries G's graph, ``seen.real`` is None."""
        return {}

    def penalty(self, D: nn.Module, seen: CriticPass) -> torch.Tensor:
        raise NotImplementedError
