"""The plugin machinery: hook specifications and the plugin manager (pluggy + entry points).

"Plugin" means a distribution that extends mtlx (the first-party ones live in plugins/); this package is
how the core finds them and calls their hooks. What they register goes into :mod:`mtlx.registry`.
"""

import pluggy

from .manager import ENTRY_POINT_GROUP, PluginInfo, PluginManager

hookimpl = pluggy.HookimplMarker("mtlx")

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "PluginManager",
    "hookimpl",
]
