"""Plugin discovery (pluggy + entry points) and the component registries."""

import pluggy

from .manager import ENTRY_POINT_GROUP, PluginInfo, PluginManager, get_plugin_manager, reset_plugin_manager
from .registry import Entry, Registries, Registry

hookimpl = pluggy.HookimplMarker("mtlx")

__all__ = [
    "ENTRY_POINT_GROUP",
    "Entry",
    "PluginInfo",
    "PluginManager",
    "Registries",
    "Registry",
    "get_plugin_manager",
    "hookimpl",
    "reset_plugin_manager",
]
