"""mtlx: a multi-task learning framework built from plugins.

The core holds the interfaces, the plugin registry, the engine, metrics and
the CLI; every strategy, dataset and architecture is a plugin found through
the ``mtlx`` entry-point group.
"""

from importlib.metadata import PackageNotFoundError, version

from .config import RunConfig, TrainConfig
from .errors import (
    CheckpointError,
    ConfigError,
    DataError,
    MtlxError,
    NonFiniteLossError,
    PluginError,
    PluginLoadError,
    UnknownComponentError,
)
from .hooks import PluginManager, hookimpl
from .interfaces import (
    Backbone,
    Dataset,
    LossWeighting,
    Meter,
    MTOStrategy,
    MultiTaskModel,
    Need,
    StepContext,
    StepResult,
    TaskHead,
    TaskSpec,
)
from .loop import MTL

try:
    __version__ = version("mtlx")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0+unknown"

__all__ = [
    "MTL",
    "Backbone",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "Dataset",
    "LossWeighting",
    "MTOStrategy",
    "Meter",
    "MtlxError",
    "MultiTaskModel",
    "Need",
    "NonFiniteLossError",
    "PluginError",
    "PluginLoadError",
    "PluginManager",
    "RunConfig",
    "StepContext",
    "StepResult",
    "TaskHead",
    "TaskSpec",
    "TrainConfig",
    "UnknownComponentError",
    "__version__",
    "hookimpl",
]
