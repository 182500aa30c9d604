"""The exception hierarchy; the CLI maps each class to one exit code (see ``mtlx.cli``).

Messages say what went wrong, where, and what to do next, so that a user never
needs the traceback (``--debug`` shows it).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

__all__ = [
    "CheckpointError",
    "ComponentError",
    "ConfigError",
    "DataError",
    "MtlxError",
    "NonFiniteLossError",
    "PluginError",
    "PluginLoadError",
    "RunInterrupted",
    "UnknownComponentError",
    "component_failed",
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
    """One ``mtlx`` entry point could not be loaded, or one of its hooks raised (``hook``).

    Carries enough to report the plugin without re-raising: the entry-point
    name, its distribution and version, the target it points to, the hook and the cause.
    """

    def __init__(self, name: str, dist: str, target: str, cause: BaseException, hook: str | None = None):
        self.name, self.dist, self.target, self.cause, self.hook = name, dist, target, cause, hook
        what = f"mtlx plugin {name!r} ({dist}, {target}) raised in {hook}" if hook else (
            f"Error loading mtlx plugin {name!r} ({dist}, {target})")
        text = str(cause).strip().splitlines()
        super().__init__(f"{what}: {type(cause).__name__}: {text[-1] if text else ''}".rstrip(": "))


class ComponentError(PluginError):
    """A component (strategy, dataset, meter, model, handler) raised while a run used it.

    The message names the component and the distribution it comes from; the
    component's own exception is the ``__cause__`` (``mtlx --debug`` shows its traceback).
    """


def component_failed(label: str, where: str, error: BaseException, message: str | None = None) -> ComponentError:
    """``label`` (e.g. ``strategy 'ew' (mtlx-baselines==0.1.0 (baselines))``) raised ``error`` ``where``.

    ``message`` replaces the error's own text (a DataLoader worker's error, unwrapped); one line either way.
    """
    text = (message if message is not None else str(error)).strip().splitlines()
    cause = f"{type(error).__name__}: {text[-1] if text else ''}".rstrip(": ")
    return ComponentError(f"{label} raised {where}: {cause} (mtlx --debug ... shows the traceback)")


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
    """SIGINT/SIGTERM stopped the run: after writing a resumable checkpoint, or during start-up before anything."""

    exit_code = 130


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for close matches of ``name``, else ``""``.

    Case and separators are ignored first (``RepMTL`` and ``rep_mtl`` mean ``rep-mtl``), then difflib's ratio.
    """
    folded = {c.lower(): c for c in candidates}
    bare = re.sub(r"[-_.\s]+", "", name.lower())
    same = [c for key, c in folded.items() if re.sub(r"[-_.\s]+", "", key) == bare]
    close = [folded[m] for m in difflib.get_close_matches(name.lower(), list(folded), n=3, cutoff=0.6)]
    matches = list(dict.fromkeys([*same, *close]))[:3]
    return f"; did you mean {' or '.join(map(repr, matches))}?" if matches else ""
