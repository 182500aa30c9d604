"""Baseline multi-task optimisation strategies for mtlx."""

__version__ = "0.1.0"
