"""The event-driven training engine."""

from .engine import Engine
from .events import Events
from .handler import Handler
from .state import State
from .step import to_device

__all__ = ["Engine", "Events", "Handler", "State", "to_device"]
