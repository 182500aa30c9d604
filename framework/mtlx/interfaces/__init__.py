"""The core interfaces every plugin implements (see docs in each module)."""

from .dataset import Dataset
from .model import Backbone, BackboneFactory, HeadFactory, MultiTaskModel, TaskHead
from .strategy import LossWeighting, MTOStrategy, Need, StepContext, StepResult
from .task import TASK_KINDS, Meter, TaskSpec

__all__ = [
    "Backbone",
    "BackboneFactory",
    "Dataset",
    "HeadFactory",
    "LossWeighting",
    "Meter",
    "MTOStrategy",
    "MultiTaskModel",
    "Need",
    "StepContext",
    "StepResult",
    "TASK_KINDS",
    "TaskHead",
    "TaskSpec",
]
