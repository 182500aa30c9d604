"""The event-driven training engine."""

from .engine import Engine, RemovableHandle, to_device
from .events import EventFilter, Events
from .handler import Handler
from .state import StashKey, State

__all__ = ["Engine", "EventFilter", "Events", "Handler", "RemovableHandle", "StashKey", "State", "to_device"]
