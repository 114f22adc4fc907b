"""Exceptions that the command line turns into one sentence and exit code 2."""

from __future__ import annotations

__all__ = ["AutopruneError", "DataNotFoundError"]


class AutopruneError(Exception):
    """Base of autoprune's user-facing errors (bad input, missing data, bad state)."""


class DataNotFoundError(AutopruneError, FileNotFoundError):
    """A data set's files are missing or unreadable."""
