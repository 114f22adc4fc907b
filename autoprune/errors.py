"""Exceptions that the command line turns into one sentence and exit code 2.

Anything else that escapes a command is a programming error and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["AutopruneError", "ConfigError", "StudyStateError", "DataNotFoundError"]


class AutopruneError(Exception):
    """Base of autoprune's user-facing errors (bad input, missing data, bad state)."""


class ConfigError(AutopruneError, ValueError):
    """A setting or argument has a value that is not allowed; the message names it."""


class StudyStateError(AutopruneError):
    """The study lacks what the command needs (no study, no completed or confirmed trial)."""


class DataNotFoundError(AutopruneError, FileNotFoundError):
    """A data set's files are missing or unreadable."""
