"""Example third-party mtlx plugin."""

__version__ = "0.1.0"
