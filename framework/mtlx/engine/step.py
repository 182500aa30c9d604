"""The forward half of a training step, shared by the engine, its evaluation and ``mtlx_testing``.

Whenever the model exposes a shared representation Z, the forward runs as
``encode`` then ``decode`` so Z is available to the strategy at no extra cost.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import torch

from ..errors import ConfigError
from ..interfaces import MultiTaskModel, TaskSpec

__all__ = ["LOSS_TRANSFORMS", "autocast", "forward", "nonfinite_message", "task_losses", "to_device"]

#: Engine-level loss transforms (rep-mtl.md: the paper trains with ``log``).
LOSS_TRANSFORMS = {
    "none": lambda loss: loss,
    "log": lambda loss: torch.log(loss + 1e-8),
}


def to_device(obj: Any, device: torch.device) -> Any:
    """Move tensors (nested in dicts, lists, tuples, or objects with ``.to``) to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, Mapping):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    if hasattr(obj, "to"):
        return obj.to(device)
    return obj


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """The autocast context of ``precision`` (``fp32``, ``bf16``, ``fp16``) on ``device``; a no-op for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def forward(
    model: MultiTaskModel, inputs: Any, *, multi_input: bool = False
) -> tuple[dict[str, torch.Tensor], torch.Tensor | dict[str, torch.Tensor] | None]:
    """Run the model; return ``(predictions, representation)``.

    ``inputs`` is a tensor, or ``{task: tensor}`` for multi-input data, where
    task t is decoded from its own ``Z_t``.
    """
    if multi_input:
        if not model.has_shared_representation:
            raise ConfigError(
                f"multi-input datasets need an architecture with a shared encoder; {type(model).__name__} has none"
            )
        reps = {t: model.encode(x) for t, x in inputs.items()}
        preds = {t: model.decode(z, [t])[t] for t, z in reps.items()}
        return preds, reps
    if model.has_shared_representation:
        z = model.encode(inputs)
        return model.decode(z), z
    return model(inputs), None


def task_losses(
    predictions: Mapping[str, torch.Tensor],
    targets: Mapping[str, torch.Tensor],
    tasks: Mapping[str, TaskSpec],
    transform: str = "none",
) -> dict[str, torch.Tensor]:
    """Per-task scalar losses in task order, after the loss transform, computed in fp32."""
    fn = LOSS_TRANSFORMS[transform]
    return {name: fn(spec.loss(predictions[name].float(), targets[name])) for name, spec in tasks.items()}


def nonfinite_message(iteration: int, epoch: int, what: str, losses: Mapping[str, torch.Tensor]) -> str:
    """``step N (epoch E): WHAT; losses: t=v, ...``: one wording for the engine and ``mtlx.MTL``."""
    shown = ", ".join(f"{t}={float(v.detach()):.4g}" for t, v in losses.items())
    return f"step {iteration} (epoch {epoch}): {what}; losses: {shown}"
