"""The child process of ``scripts/torture.py``: the real ``gan-lab`` CLI, announcing on stderr (lines starting
with ``@torture``) when a step, a sample grid, a checkpoint or an evaluation begins and ends, and pausing at one
point inside a write so that the parent's SIGKILL lands there.

    python scripts/torture_child.py PAUSE NTH train <overrides>

PAUSE is one of PAUSES (or ``none``) and NTH which occurrence of it pauses: ``ckpt-write`` halfway through a
checkpoint's temporary file, ``sample-write`` halfway through a sample PNG's, ``link`` after the numbered
checkpoint is written and before last.pt is linked to it, ``swap`` after the link is made and before it
replaces last.pt, ``prune`` before old numbered checkpoints are removed, ``eval`` inside an evaluation (its
value computed, not yet logged nor kept as best.pt). Nothing else changes: the run's
files are byte for byte those of a plain ``gan-lab train``.
"""

from __future__ import annotations

import collections
import io
import os
import sys
import time
from pathlib import Path

import torch

MARK = "@torture "
PAUSES = ("ckpt-write", "sample-write", "link", "swap", "prune", "eval")


def child(pause: str, nth: int, argv: list[str]) -> None:
    import gan_lab.engine.checkpoint as checkpoint
    import gan_lab.engine.loop as loop
    import gan_lab.engine.recorder as recorder
    from gan_lab.cli import main

    seen = collections.Counter()

    def say(event: str) -> None:
        os.write(2, f"{MARK}{event}\n".encode())

    def point(name: str) -> None:
        seen[name] += 1
        if name == pause and seen[name] == nth:
            say(f"pause {name}")
            time.sleep(600)  # the kill arrives now

    def around(label: str, real):
        def wrapped(state, *args, **kwargs):
            say(f"begin {label} {state.step}")
            out = real(state, *args, **kwargs)
            say(f"end {label} {state.step}")
            return out
        return wrapped

    def halfway(name: str, write):  # write(buffer), then the file gets half the bytes, the pause, the rest
        def into(f) -> None:
            buffer = io.BytesIO()
            write(buffer)
            data = buffer.getvalue()
            f.write(data[: len(data) // 2])
            f.flush()
            point(name)
            f.write(data[len(data) // 2:])
        return into

    for name, label in (("train_step", "step"), ("render_samples", "sample"), ("save_checkpoint", "save"),
                        ("evaluate", "eval")):
        setattr(loop, name, around(label, getattr(loop, name)))
    real_save, real_image, real_link, real_replace, real_prune = (
        torch.save, recorder.save_image, os.link, os.replace, checkpoint.prune)
    if pause == "ckpt-write":
        torch.save = lambda obj, f, **kw: halfway("ckpt-write", lambda b: real_save(obj, b, **kw))(f)
    if pause == "sample-write":
        def save_image(image, fp, **kw):
            with open(fp, "wb") as f:
                halfway("sample-write", lambda b: real_image(image, b, **kw))(f)
        recorder.save_image = save_image
    if pause == "link":
        os.link = lambda src, dst, **kw: (point("link"), real_link(src, dst, **kw))[1]
    if pause == "swap":
        os.replace = lambda src, dst, **kw: (Path(src).name == ".last.pt.link" and point("swap"),
                                             real_replace(src, dst, **kw))[1]
    if pause == "eval":  # the metric computed, not yet logged nor kept as best.pt
        from gan_lab.metrics.evaluate import TrainingEvaluator

        real_eval = TrainingEvaluator.__call__
        TrainingEvaluator.__call__ = lambda self, state: (real_eval(self, state), point("eval"))[0]
    if pause == "prune":
        checkpoint.prune = lambda *a: (point("prune"), real_prune(*a))[1]
    sys.argv = ["gan-lab", *argv]
    main()


if __name__ == "__main__":
    child(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
