"""Run configuration: attrs classes, TOML files and ``-o section.key=value`` overrides.

Layers, later wins: built-in defaults < the dataset's ``recommended`` < its
``--preset`` < the ``--config`` TOML file < CLI flags < ``-o`` overrides.
The resolved config is written to the run directory as ``config.toml``.

Component sections (``strategy``, ``dataset``, ``arch``, ``backbone``,
``head``) hold ``name`` plus that component's options; the options are
checked against the component's own attrs ``Config`` when it is built.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import tomli_w

from .errors import ConfigError, did_you_mean
from .gradients import METHODS

__all__ = [
    "COMPONENT_SECTIONS",
    "ComponentConfig",
    "RunConfig",
    "TrainConfig",
    "build_component_config",
    "flatten",
    "load_toml",
    "parse_override",
    "resolve",
]

COMPONENT_SECTIONS = ("strategy", "dataset", "arch", "backbone", "head")
_in = attrs.validators.in_


def _mapping(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(value or {})


@attrs.frozen(kw_only=True)
class ComponentConfig:
    """Which component to use (``name``; None = the dataset's recommendation) and its options."""

    name: str | None = None
    options: dict[str, Any] = attrs.field(factory=dict, converter=_mapping)


@attrs.frozen(kw_only=True)
class TrainConfig:
    """Training-loop settings shared by every strategy and dataset."""

    epochs: int = attrs.field(default=10, validator=attrs.validators.ge(1))
    batch_size: int = attrs.field(default=32, validator=attrs.validators.ge(1))
    #: drop the last incomplete training batch (BatchNorm on image-level pooling fails on a batch of one)
    drop_last: bool = False
    eval_batch_size: int | None = None
    lr: float = attrs.field(default=1e-3, validator=attrs.validators.gt(0))
    weight_decay: float = attrs.field(default=0.0, validator=attrs.validators.ge(0))
    optimizer: str = attrs.field(default="adam", validator=_in(("adam", "adamw", "sgd")))
    momentum: float = 0.9
    scheduler: str = attrs.field(default="none", validator=_in(("none", "step", "cosine")))
    step_size: int = attrs.field(default=100, validator=attrs.validators.ge(1))
    gamma: float = 0.5
    seed: int = 0
    device: str = "auto"
    #: CPU threads for torch (None: torch's default); 1 is often fastest for small models on a busy machine
    threads: int | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.ge(1)))
    precision: str = attrs.field(default="fp32", validator=_in(("fp32", "bf16", "fp16")))
    loss_transform: str = attrs.field(default="none", validator=_in(("none", "log")))
    num_workers: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    data_root: str | None = None
    max_steps: int | None = None
    eval_every: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    log_every: int = attrs.field(default=10, validator=attrs.validators.ge(1))
    checkpoint_every: int | None = None
    on_nonfinite: str = attrs.field(default="stop", validator=_in(("stop", "skip")))
    #: clip the global gradient norm before the optimiser step (Nash-MTL/FAMO originals use 1.0)
    max_grad_norm: float | None = None
    #: per-task gradients w.r.t. the shared parameters: ``loop`` (T backward passes), ``two-stage`` (T
    #: gradients down to Z, one vmapped pass into the encoder) or ``auto`` (the faster one measured per device)
    per_task_grads: str = attrs.field(default="auto", validator=_in(METHODS))
    val_split: str = "val"
    test_split: str = "test"
    select_metric: str = "delta_m"


@attrs.frozen(kw_only=True)
class RunConfig:
    """Everything ``mtlx run`` needs; round-trips through TOML (:meth:`to_dict`)."""

    strategy: ComponentConfig = attrs.field(factory=lambda: ComponentConfig(name="ew"))
    dataset: ComponentConfig = attrs.field(factory=lambda: ComponentConfig(name="digits"))
    arch: ComponentConfig = attrs.field(factory=ComponentConfig)
    backbone: ComponentConfig = attrs.field(factory=ComponentConfig)
    head: ComponentConfig = attrs.field(factory=ComponentConfig)
    train: TrainConfig = attrs.field(factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict in the TOML layout (component options inline with ``name``)."""
        out: dict[str, Any] = {}
        for section in COMPONENT_SECTIONS:
            comp: ComponentConfig = getattr(self, section)
            body = {"name": comp.name} if comp.name is not None else {}
            body.update(comp.options)
            out[section] = body
        out["train"] = {k: v for k, v in attrs.asdict(self.train).items() if v is not None}
        return out

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``section.key=value``; the value is read as a TOML literal, else kept as a string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    section, _, name = key.partition(".")
    if not sep or not section or not name:
        raise ConfigError(f"override {text!r} must look like section.key=value (e.g. strategy.lambda_tsr=0.9)")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key, value


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a config TOML file into flat ``section.key`` overrides."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
    return flatten(data, where=str(path))


def flatten(data: Mapping[str, Any], where: str = "config") -> dict[str, Any]:
    """``{"train": {"epochs": 3}}`` -> ``{"train.epochs": 3}`` (one level of sections)."""
    flat: dict[str, Any] = {}
    for section, body in data.items():
        if not isinstance(body, Mapping):
            raise ConfigError(f"{where}: top-level key {section!r} must be a [section] table")
        for key, value in body.items():
            flat[f"{section}.{key}"] = value
    return flat


_TRAIN_FIELDS = {f.name: f for f in attrs.fields(TrainConfig)}


#: The bottom layer: what ``mtlx run`` with no options trains.
DEFAULTS: dict[str, Any] = {"strategy.name": "ew", "dataset.name": "digits", "arch.name": "hps"}


def resolve(layers: list[Mapping[str, Any]]) -> RunConfig:
    """Merge flat override layers (later wins, :data:`DEFAULTS` first) into a validated :class:`RunConfig`."""
    merged: dict[str, Any] = dict(DEFAULTS)
    for layer in layers:
        merged.update(layer)
    sections: dict[str, dict[str, Any]] = {s: {} for s in (*COMPONENT_SECTIONS, "train")}
    for dotted, value in merged.items():
        section, _, key = dotted.partition(".")
        if section not in sections:
            raise ConfigError(f"unknown config section {section!r} in {dotted!r}{did_you_mean(section, sections)}")
        if section == "train" and key not in _TRAIN_FIELDS:
            raise ConfigError(f"unknown key train.{key}{did_you_mean(key, _TRAIN_FIELDS)}")
        sections[section][key] = value
    components = {}
    for section in COMPONENT_SECTIONS:
        body = dict(sections[section])
        name = body.pop("name", None)
        components[section] = ComponentConfig(name=name, options=body)
    try:
        train = TrainConfig(**sections["train"])
    except (TypeError, ValueError) as error:
        raise ConfigError(f"invalid [train] setting: {error}") from None
    return RunConfig(train=train, **components)


def build_component_config(config_cls: type, options: Mapping[str, Any], where: str) -> Any:
    """Instantiate a component's attrs ``Config`` from options, with errors that name ``where``."""
    fields = {f.name for f in attrs.fields(config_cls)}
    for key in options:
        if key not in fields:
            known = ", ".join(sorted(fields)) or "none"
            raise ConfigError(f"{where} has no option {key!r}{did_you_mean(key, fields)} (options: {known})")
    try:
        return config_cls(**options)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"invalid option for {where}: {error}") from None
