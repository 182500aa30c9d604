"""Cross-step state of the stateful aggregators, kept in one attrs object so resume is exact.

A stateful ``aggregate`` takes its state object and updates it in place;
the strategy owning it saves copies in ``state_dict`` (never references:
the live tensors keep changing in place after a checkpoint is taken).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import torch

__all__ = ["WithAggregatorState", "clone_state"]


def clone_state(value: Any) -> Any:
    """A deep copy of tensors nested in dicts/lists; other values as they are."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, Mapping):
        return {k: clone_state(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(clone_state(v) for v in value)
    return value


class WithAggregatorState:
    """Mixin: ``self.state`` (an attrs instance) goes through ``state_dict``/``load_state_dict``."""

    state: Any

    def state_dict(self) -> dict[str, Any]:
        saved = super().state_dict()  # type: ignore[misc]
        saved["aggregator"] = clone_state(attrs.asdict(self.state, recurse=False))
        return saved

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)  # type: ignore[misc]
        self.state = type(self.state)(**clone_state(state["aggregator"]))
