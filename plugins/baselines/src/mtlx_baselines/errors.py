"""The one error this plugin adds: a numerical solver that failed or did not converge."""

from __future__ import annotations

from mtlx.errors import MtlxError

__all__ = ["SolverError"]


class SolverError(MtlxError):
    """An aggregator's inner solver failed; raised instead of silently changing the method.

    Strategies re-raise it with the training step (see ``strategies._gradient.at_step``).
    """
