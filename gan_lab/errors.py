"""Errors caused by the user's input or machine, shown as one message without a traceback."""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class GanLabError(Exception):
    """Base class: the CLI prints ``str(error)`` and exits with status 1."""


class ConfigError(GanLabError):
    """An invalid configuration value; the message names the key."""


class DataNotFoundError(GanLabError):
    """A dataset is missing and cannot be downloaded; the message says where we looked and how to get it."""


class DataFileError(GanLabError):
    """A data file cannot be decoded or has the wrong shape; the message names the file."""


class CheckpointError(GanLabError):
    """A checkpoint is missing, corrupt, or not a gan-lab checkpoint."""


class OutputError(GanLabError):
    """A run's output could not be written (disk full, read-only directory, file size limit); the message
    names the file."""


class NonFiniteLossError(GanLabError):
    """A loss became NaN or infinite; the message names the step."""


# The machine refused a file (disk full, read-only, quota, file size limit, permissions): no bug to trace.
REFUSED = {errno.ENOSPC, errno.EROFS, errno.EFBIG, errno.EDQUOT, errno.EACCES, errno.EPERM}


def exit_on_error(command: Callable[..., T], *args) -> T:
    """Run a ``gan-lab`` command's body: a :class:`GanLabError`, or an OSError of :data:`REFUSED` naming its
    file, becomes one logged line and exit status 1."""
    try:
        return command(*args)
    except GanLabError as err:
        logging.getLogger("gan_lab").error("%s", err)
        raise SystemExit(1) from None
    except OSError as err:
        if err.errno not in REFUSED or not err.filename:
            raise
        logging.getLogger("gan_lab").error("%s: %s", err.filename, err.strerror)
        raise SystemExit(1) from None
