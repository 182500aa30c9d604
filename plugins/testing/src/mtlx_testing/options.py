"""``check_options``: every option of a component is documented where ``mtlx list --details`` reads it."""

from __future__ import annotations

import attrs

from mtlx.option_docs import describe_options
from mtlx.registry import Registries

from .blame import label

__all__ = ["check_options"]


def check_options(component: object, registries: Registries | None = None) -> None:
    """The component class (or an instance of it) has an attrs ``Config`` whose every field is documented; or,
    given a plugin's section options class itself (``mtlx_addoption``), its every field is.

    An option's doc is its entry in the ``Attributes:`` section of the ``Config`` docstring (or a base's):
    what ``mtlx list --details`` and ``help()`` show. Every ``check_*`` runs this first. Messages name the
    component as ``registries`` know it (None: the installed plugins).
    """
    cls = component if isinstance(component, type) else type(component)
    config = cls if attrs.has(cls) else getattr(cls, "Config", None)
    assert config is not None and attrs.has(config), (
        f"{label(cls, registries)}: Config is {config!r}; expected: an attrs class whose fields are the options"
    )
    for option in describe_options(config):
        assert option.doc, (
            f"{label(cls, registries)}: option {option.name!r} has no doc; expected: an entry '{option.name}: ...' "
            "in the Attributes: section of the Config docstring (mtlx list --details shows it)"
        )
