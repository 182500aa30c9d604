"""The core interfaces every plugin implements (see docs in each module)."""

from .dataset import Dataset, task_subset_field
from .model import Backbone, BackboneFactory, EncoderHeads, HeadFactory, MultiTaskModel, TaskHead
from .strategy import LossWeighting, MTOStrategy, Need, StepContext, StepResult
from .task import Meter, TaskSpec

__all__ = [
    "Backbone",
    "BackboneFactory",
    "Dataset",
    "EncoderHeads",
    "HeadFactory",
    "LossWeighting",
    "MTOStrategy",
    "Meter",
    "MultiTaskModel",
    "Need",
    "StepContext",
    "StepResult",
    "TaskHead",
    "TaskSpec",
    "task_subset_field",
]
