"""Loading backbone weights from a local file (e.g. torchvision's ImageNet ResNets).

Strict on purpose: a key that is missing, unexpected or of the wrong shape
means the file is not for this backbone, and training on half-loaded weights
would silently waste a run. Only the classifier keys that a backbone drops
(``fc.*`` of an ImageNet ResNet) are skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

from mtlx import CheckpointError

__all__ = ["load_backbone_weights"]

_LIST_LIMIT = 12


def _listing(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:_LIST_LIMIT])
    return shown + (f", ... ({len(keys) - _LIST_LIMIT} more)" if len(keys) > _LIST_LIMIT else "")


def _read_state_dict(path: Path, where: str) -> Mapping[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{where}: weights file {path} does not exist; pass a local .pth file (state_dict)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means an unusable file
        raise CheckpointError(f"{where}: cannot read weights file {path}: {type(error).__name__}: {error}") from None
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{where}: {path} does not hold a state_dict (a mapping of parameter names to tensors)")
    return state


def load_backbone_weights(
    module: nn.Module, path: str | Path, *, where: str, ignore_prefixes: tuple[str, ...] = ()
) -> None:
    """Copy the tensors saved at ``path`` into ``module`` or raise :class:`CheckpointError` listing mismatches."""
    path = Path(path).expanduser()
    state = {k: v for k, v in _read_state_dict(path, where).items() if not k.startswith(ignore_prefixes)}
    own = module.state_dict()
    missing = own.keys() - state.keys()
    unexpected = state.keys() - own.keys()
    misshaped = {k for k in own.keys() & state.keys() if own[k].shape != state[k].shape}
    problems = []
    if missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    if misshaped:
        details = [f"{k} (file {tuple(state[k].shape)}, model {tuple(own[k].shape)})" for k in sorted(misshaped)]
        problems.append(f"mis-shaped keys: {_listing(details)}")
    if problems:
        raise CheckpointError(
            f"{where}: weights file {path} does not match the backbone; "
            + "; ".join(problems)
            + ". Check that the file is for this backbone (and its input channels)."
        )
    module.load_state_dict(state, strict=True)
