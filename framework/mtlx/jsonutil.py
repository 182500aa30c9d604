"""JSON output that stays valid: NaN/Inf become null (JSON has no NaN)."""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["dumps", "jsonable"]


def jsonable(value: Any) -> Any:
    """Recursively replace non-finite floats by None and tuples by lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    return json.dumps(jsonable(value), allow_nan=False, **kwargs)
