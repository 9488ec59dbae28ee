"""Training tricks: reusable pieces a config adds to any model (``tricks=[ema,r1]``).

A trick is an object built from ``configs/tricks/<name>.yaml`` (the key under
``tricks`` is its name in the checkpoint). It subclasses :class:`base.Trick` and
overrides the hooks it needs; the others do nothing:

- ``modify(task)``: change the networks (spectral norm, extra discriminator layers), after
  the task is built and on its device, before the optimizers exist; ``gan-lab eval`` and
  ``gan-lab sample`` call it too, before loading a checkpoint's weights;
- ``setup(task)``: once, after every trick's ``modify``, before any step (and before a
  resumed run loads its state); where a trick checks that it can apply and plugs into
  the task;
- ``begin_step(task, step)``: before every step (instance noise's annealing is a function of it);
- ``after_phase(task, player, step)``: after every optimizer step of ``player`` (``"D"``:
  ``n_critic`` times per step, WGAN weight clipping; ``"G"``: EMA). No trick counts steps itself;
- ``state_dict()`` / ``load_state_dict(state)``: what the trick keeps in checkpoints
  (tensors and plain values only).

The noise-to-image tasks (``gan_lab.models.noise.NoiseToImage``) take three plug-ins:
``task.penalties`` (:class:`gan_lab.models.terms.LossTerm`, as tricks :class:`base.Penalty`: terms added to D's loss through
``d_terms(task, seen)`` and to G's through ``g_terms(task, seen)``, each logged; ``seen``
is the step's ``CriticPass``: the real and generated samples, G's inputs and D's outputs
on them - and D's features, for a penalty with ``uses_features`` - so a term on those
costs no extra pass of D), ``task.d_input`` (functions applied to every sample D sees)
and ``task.g_objective`` (replaces the generator's adversarial loss). A trick whose
plug-in a task lacks is a ConfigError at setup, never a no-op.

Tricks that need D's features use :func:`base.feature_discriminator`: D exposes
``features(x, *cond) -> (B, F)`` and a linear ``head`` on them.
"""
