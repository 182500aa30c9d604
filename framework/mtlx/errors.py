"""The exception hierarchy; the CLI maps each class to one exit code (see ``mtlx.cli``).

Messages say what went wrong, where, and what to do next, so that a user never
needs the traceback (``--debug`` shows it).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "MtlxError",
    "NonFiniteLossError",
    "PluginError",
    "PluginLoadError",
    "RunInterrupted",
    "UnknownComponentError",
    "did_you_mean",
]


class MtlxError(Exception):
    """Base of every error mtlx raises on purpose."""

    exit_code = 1


class ConfigError(MtlxError):
    """A configuration value, file or override is invalid."""

    exit_code = 2


class PluginError(MtlxError):
    """A plugin is broken, misdeclared, or collides with another plugin."""

    exit_code = 3


class PluginLoadError(PluginError):
    """One ``mtlx`` entry point could not be loaded or registered.

    Carries enough to report the plugin without re-raising: the entry-point
    name, its distribution and version, the target it points to and the cause.
    """

    def __init__(self, name: str, dist: str, target: str, cause: BaseException):
        self.name, self.dist, self.target, self.cause = name, dist, target, cause
        super().__init__(
            f"Error loading mtlx plugin {name!r} ({dist}, {target}): "
            f"{type(cause).__name__}: {cause}"
        )


class UnknownComponentError(ConfigError):
    """A component name (strategy, dataset, ...) is not registered."""


class CheckpointError(MtlxError):
    """A checkpoint is missing, truncated, foreign or would be overwritten."""

    exit_code = 4


class DataError(MtlxError):
    """Data on disk is missing or malformed; the message names the file."""

    exit_code = 5


class NonFiniteLossError(MtlxError):
    """A loss or gradient became NaN/Inf; the message names the task and step."""

    exit_code = 6


class RunInterrupted(MtlxError):
    """SIGINT/SIGTERM stopped the run after writing a resumable checkpoint."""

    exit_code = 130


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for close matches of ``name``, else ``""``."""
    matches = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(map(repr, matches))}?" if matches else ""
