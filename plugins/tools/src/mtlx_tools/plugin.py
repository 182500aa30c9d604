"""Entry point of mtlx-tools: adds ``mtlx report``, ``mtlx analyze`` and ``mtlx profile``."""

from __future__ import annotations

import click

import mtlx


@mtlx.hookimpl
def mtlx_commands() -> list[click.Command]:
    from .analyze import analyze
    from .profile.command import profile
    from .report.command import report

    return [report, analyze, profile]
