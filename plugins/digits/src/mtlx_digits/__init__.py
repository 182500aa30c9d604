"""The embedded default mtlx dataset: overlapping handwritten digits with dense and image-level tasks."""

from .dataset import DigitsDataset
from .render import Canvases, render_canvases, split_sources

__version__ = "0.1.0"

__all__ = ["Canvases", "DigitsDataset", "__version__", "render_canvases", "split_sources"]
