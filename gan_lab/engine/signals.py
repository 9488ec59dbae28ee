"""Ctrl-C and SIGTERM ask the loop to stop; it then saves a checkpoint and exits cleanly."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

log = logging.getLogger(__name__)


class StopFlag:
    """Installs SIGINT/SIGTERM handlers for the duration of a ``with`` block.

    The first signal sets the flag (the loop finishes its step and checkpoints);
    a second one raises ``KeyboardInterrupt`` for a user who really wants out.
    """

    def __init__(self):
        self.requested: str | None = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name
        log.warning("%s received: finishing this step, saving a checkpoint, then stopping "
                    "(send it again to abort without saving)", self.requested)

    def __enter__(self) -> "StopFlag":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


# The signals whose Python handlers may raise (KeyboardInterrupt, submitit's requeue exit on SIGUSR2/SIGUSR1).
HELD = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Hold ``HELD`` signals during a file write and deliver them after it: a handler that raises inside
    ``torch.save`` turns into a corrupt-write RuntimeError (submitit's SIGUSR2 requeue then ended a job
    with a failed checkpoint instead of requeueing it). Their handlers are swapped for one that notes the
    signal (a signal mask would not do: the kernel hands a process's signal to any thread, torch's included).
    SIGKILL cannot be held; atomic writes cover it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum)) for sig in HELD}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        for sig in caught:
            signal.raise_signal(sig)
