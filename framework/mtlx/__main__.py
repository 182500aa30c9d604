"""``python -m mtlx`` (and ``torchrun -m mtlx``) runs the CLI."""

from .cli import main

main(prog_name="mtlx")
