"""Ctrl-C and SIGTERM ask the loop to stop; it then saves a checkpoint and exits cleanly."""

from __future__ import annotations

import logging
import signal
import threading

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
