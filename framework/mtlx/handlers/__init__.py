"""Built-in handlers: one job each, attached by ``mtlx run``."""

from .checkpointing import CheckpointHandler
from .epoch_log import EpochLog
from .evaluation import EvaluationHandler
from .jsonl import JSONLLogger
from .lr_schedule import LRSchedulerHandler
from .progress import ProgressBar

__all__ = ["CheckpointHandler", "EpochLog", "EvaluationHandler", "JSONLLogger", "LRSchedulerHandler", "ProgressBar"]
