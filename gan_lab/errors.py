"""Errors caused by the user's input or machine, shown as one message without a traceback."""


class GanLabError(Exception):
    """Base class: the CLI prints ``str(error)`` and exits with status 1."""


class ConfigError(GanLabError):
    """An invalid configuration value; the message names the key."""


class DataNotFoundError(GanLabError):
    """A dataset is missing and cannot be downloaded; the message says where we looked and how to get it."""


class CheckpointError(GanLabError):
    """A checkpoint is missing, corrupt, or not a gan-lab checkpoint."""


class NonFiniteLossError(GanLabError):
    """A loss became NaN or infinite; the message names the step."""
