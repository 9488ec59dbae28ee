"""Training tricks: reusable pieces a config adds to any model (``tricks=[ema,r1]``).

A trick is an object built from ``configs/tricks/<name>.yaml`` (the key under
``tricks`` is its name in the checkpoint). It subclasses :class:`base.Trick` and
overrides the hooks it needs; the others do nothing:

- ``setup(task)``: once, after the task is built and on its device, before any
  step (and before a resumed run loads its state);
- ``after_d_step(task)``: after every discriminator optimizer step, ``n_critic``
  times per step (WGAN weight clipping);
- ``after_g_step(task)``: after every generator optimizer step (EMA);
- ``state_dict()`` / ``load_state_dict(state)``: what the trick keeps in checkpoints
  (tensors and plain values only).

A trick that adds a term to D's loss subclasses :class:`base.Penalty`: its ``setup``
registers it in ``task.penalties``, and the task's ``d_loss`` calls
``d_penalty(task, real, fake, cond)`` with the real batch, the *detached* generated
batch and the real batch's conditioning arguments (``()`` or the cGAN labels). It
returns named extra D losses (``{"penalty/gp": tensor}``); the task adds them to D's
loss and logs each. Tasks without ``penalties`` (pix2pix) refuse such tricks at setup.
"""
