"""Entry point of mtlx-tools: adds ``mtlx report``, ``mtlx analyze``, ``mtlx profile`` and ``mtlx sweep``."""

from __future__ import annotations

import click

import mtlx


@mtlx.hookimpl
def mtlx_commands() -> list[click.Command]:
    from .analyze import analyze
    from .profile.command import profile
    from .report.command import report
    from .sweep.command import sweep

    return [report, analyze, profile, sweep]
