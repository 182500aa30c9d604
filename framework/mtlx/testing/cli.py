"""Running the ``mtlx`` command line in-process, as tests do."""

from __future__ import annotations

from click.testing import CliRunner, Result

__all__ = ["invoke_cli"]


def invoke_cli(*args: object) -> Result:
    """``invoke_cli("run", "-d", "toy", ...)`` runs the real CLI in-process and returns click's Result.

    Arguments go through ``str`` (paths and numbers may be passed as they
    are). Exceptions other than the CLI's own errors propagate, so a bug
    shows its traceback instead of only a non-zero exit code.
    """
    from ..cli import main  # imported on use: the CLI pulls in rich and every subcommand's options

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
