"""Command-line settings as one config layer: shared by ``mtlx run`` and plugin commands that build a run.

A plugin command such as ``mtlx profile`` resolves its flags exactly as
``mtlx run`` does, so the same flags always give the same config.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..build import resolve_run_config
from ..config import RunConfig, load_toml, parse_override

__all__ = ["FLAG_KEYS", "cli_settings", "resolve_cli_config"]

#: CLI flag (click's parameter name) -> dotted config key.
FLAG_KEYS = {
    "strategy": "strategy.name",
    "dataset": "dataset.name",
    "arch": "arch.name",
    "backbone": "backbone.name",
    "head": "head.name",
    "backbone_weights": "backbone.weights",
    "data_root": "train.data_root",
    "epochs": "train.epochs",
    "batch_size": "train.batch_size",
    "lr": "train.lr",
    "seed": "train.seed",
    "device": "train.device",
    "threads": "train.threads",
    "precision": "train.precision",
    "loss_transform": "train.loss_transform",
    "num_workers": "train.num_workers",
    "max_steps": "train.max_steps",
    "checkpoint_every": "train.checkpoint_every",
    "on_nonfinite": "train.on_nonfinite",
}


def cli_settings(config_file: str | None, flags: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """The user's layer as dotted keys: the ``--config`` file < the flags that were given < ``-o`` overrides."""
    user: dict[str, Any] = load_toml(config_file) if config_file else {}
    user.update({FLAG_KEYS[k]: v for k, v in flags.items() if v is not None})
    user.update(parse_override(o) for o in overrides)
    return user


def resolve_cli_config(
    config_file: str | None, flags: Mapping[str, Any], overrides: Sequence[str], presets: Sequence[str]
) -> RunConfig:
    """The full run config of a new run: defaults < the dataset's recommendation < presets < the user's layer."""
    return resolve_run_config([cli_settings(config_file, flags, overrides)], presets)
