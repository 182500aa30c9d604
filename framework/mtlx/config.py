"""Run configuration: attrs classes, TOML files and ``-o section.key=value`` overrides.

Layers, later wins: built-in defaults < the dataset's ``recommended`` < its
``--preset`` < the ``--config`` TOML file < CLI flags < ``-o`` overrides.
The resolved config is written to the run directory as ``config.toml``.

Component sections (``strategy``, ``dataset``, ``arch``, ``backbone``,
``head``) hold ``name`` plus that component's options; the options are
checked against the component's own attrs ``Config`` when it is built.
Sections that plugins own (``mtlx_addoption``, :mod:`mtlx.plugin_options`)
are checked against theirs when the config is resolved.
"""

from __future__ import annotations

import math
import tomllib
import types
import typing
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
    "read_run_id",
    "resolve",
]

COMPONENT_SECTIONS = ("strategy", "dataset", "arch", "backbone", "head")
#: The table of a run's ``config.toml`` that records the run (its id), not the experiment: never a config layer.
RUN_TABLE = "run"
_in = attrs.validators.in_
_ge, _gt, _lt, _optional = attrs.validators.ge, attrs.validators.gt, attrs.validators.lt, attrs.validators.optional


def _finite(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"'{attribute.name}' must be finite: {value!r}")


def _trainable_device(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    """A device torch can parse and train on; whether it exists here is checked when the run starts."""
    if value == "auto":
        return
    import torch  # only when a device is named: the config module stays light

    try:
        device = torch.device(value)
    except (RuntimeError, TypeError):
        raise ValueError(f"invalid --device {value!r} (auto, cpu, cuda, cuda:1, mps, ...)") from None
    if device.type == "meta":
        raise ValueError("--device meta cannot train: meta tensors hold no data (use cpu or cuda)")


@attrs.frozen(kw_only=True)
class ComponentConfig:
    """Which component to use (``name``; None = the dataset's recommendation) and its options."""

    name: str | None = None
    options: dict[str, Any] = attrs.field(factory=dict, converter=dict)


@attrs.frozen(kw_only=True)
class TrainConfig:
    """Training-loop settings shared by every strategy and dataset."""

    epochs: int = attrs.field(default=10, validator=_ge(1))
    batch_size: int = attrs.field(default=32, validator=_ge(1))
    #: drop the last incomplete training batch (BatchNorm on image-level pooling fails on a batch of one)
    drop_last: bool = False
    #: data parallelism on CUDA: BatchNorm statistics over the global batch (torch.nn.SyncBatchNorm). torch has
    #: no SyncBatchNorm on CPU (gloo): there each process normalises with its own batch's statistics
    sync_batchnorm: bool = True
    #: evaluation batch size (None: batch_size)
    eval_batch_size: int | None = attrs.field(default=None, validator=_optional(_ge(1)))
    lr: float = attrs.field(default=1e-3, validator=[_gt(0), _finite])
    weight_decay: float = attrs.field(default=0.0, validator=[_ge(0), _finite])
    optimizer: str = attrs.field(default="adam", validator=_in(("adam", "adamw", "sgd")))
    #: SGD momentum, in [0, 1)
    momentum: float = attrs.field(default=0.9, validator=[_ge(0), _lt(1)])
    scheduler: str = attrs.field(default="none", validator=_in(("none", "step", "cosine")))
    step_size: int = attrs.field(default=100, validator=_ge(1))
    #: StepLR's factor, > 0
    gamma: float = attrs.field(default=0.5, validator=[_gt(0), _finite])
    seed: int = 0
    device: str = attrs.field(default="auto", validator=_trainable_device)
    #: CPU threads for torch (None: torch's default); 1 is often fastest for small models on a busy machine
    threads: int | None = attrs.field(default=None, validator=_optional(_ge(1)))
    precision: str = attrs.field(default="fp32", validator=_in(("fp32", "bf16", "fp16")))
    loss_transform: str = attrs.field(default="none", validator=_in(("none", "log")))
    num_workers: int = attrs.field(default=0, validator=_ge(0))
    data_root: str | None = None
    max_steps: int | None = attrs.field(default=None, validator=_optional(_ge(1)))
    eval_every: int = attrs.field(default=1, validator=_ge(1))
    log_every: int = attrs.field(default=10, validator=_ge(1))
    checkpoint_every: int | None = attrs.field(default=None, validator=_optional(_ge(1)))
    on_nonfinite: str = attrs.field(default="stop", validator=_in(("stop", "skip")))
    #: with on_nonfinite = "skip": stop (exit 6) after this many skipped steps in a row
    max_consecutive_skips: int = attrs.field(default=10, validator=_ge(1))
    #: clip the global gradient norm before the optimiser step (Nash-MTL/FAMO originals use 1.0)
    max_grad_norm: float | None = attrs.field(default=None, validator=_optional([_gt(0), _finite]))
    #: per-task gradients w.r.t. the shared parameters: ``loop`` (T backward passes), ``two-stage`` (T
    #: gradients down to Z, one vmapped pass into the encoder) or ``auto`` (the faster one measured per device)
    per_task_grads: str = attrs.field(default="auto", validator=_in(METHODS))
    val_split: str = "val"
    test_split: str = "test"


@attrs.frozen(kw_only=True)
class RunConfig:
    """Everything ``mtlx run`` needs; round-trips through TOML (:meth:`to_dict`)."""

    strategy: ComponentConfig = attrs.field(factory=lambda: ComponentConfig(name="ew"))
    dataset: ComponentConfig = attrs.field(factory=lambda: ComponentConfig(name="digits"))
    arch: ComponentConfig = attrs.field(factory=ComponentConfig)
    backbone: ComponentConfig = attrs.field(factory=ComponentConfig)
    head: ComponentConfig = attrs.field(factory=ComponentConfig)
    train: TrainConfig = attrs.field(factory=TrainConfig)
    #: the sections plugins own (``mtlx_addoption``): ``{section: {option: value}}``, as given
    plugins: dict[str, dict[str, Any]] = attrs.field(factory=dict, converter=dict)

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict in the TOML layout (component options inline with ``name``; plugin sections last)."""
        out: dict[str, Any] = {}
        for section in COMPONENT_SECTIONS:
            comp: ComponentConfig = getattr(self, section)
            body = {"name": comp.name} if comp.name is not None else {}
            body.update(comp.options)
            out[section] = body
        out["train"] = {k: v for k, v in attrs.asdict(self.train).items() if v is not None}
        for name, body in sorted(self.plugins.items()):  # TOML has no null: an option left at None is not written
            out[name] = {k: v for k, v in body.items() if v is not None}
        return out

    def to_toml(self, run_id: str | None = None) -> str:
        """The TOML text; with ``run_id``, a leading ``[run]`` table that binds the file to its run's checkpoints."""
        record = {RUN_TABLE: {"id": run_id}} if run_id is not None else {}
        return tomli_w.dumps({**record, **self.to_dict()})


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


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {error.start}); TOML files are UTF-8") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a config TOML file into flat ``section.key`` overrides (a run's ``[run]`` record is left out)."""
    path = Path(path)
    data = _read_toml(path)
    data.pop(RUN_TABLE, None)
    return flatten(data, where=str(path))


def read_run_id(path: str | Path) -> str | None:
    """The run id a run's ``config.toml`` records (None for runs written before ids existed)."""
    record = _read_toml(Path(path)).get(RUN_TABLE)
    return str(record["id"]) if isinstance(record, Mapping) and "id" in record else None


def flatten(data: Mapping[str, Any], where: str = "config") -> dict[str, Any]:
    """``{"train": {"epochs": 3}}`` -> ``{"train.epochs": 3}`` (one level of sections)."""
    for section, body in data.items():
        if not isinstance(body, Mapping):
            raise ConfigError(f"{where}: top-level key {section!r} must be a [section] table")
    return {f"{section}.{key}": value for section, body in data.items() for key, value in body.items()}


_TRAIN_FIELDS = {f.name: f for f in attrs.fields(TrainConfig)}

#: Keys that older versions wrote into every run's config.toml and that no longer mean anything: dropped when
#: a config is read, so those runs still resume and report (``train.select_metric`` was never read).
RETIRED_KEYS = frozenset({"train.select_metric"})


#: The bottom layer: what ``mtlx run`` with no options trains.
DEFAULTS: dict[str, Any] = {"strategy.name": "ew", "dataset.name": "digits", "arch.name": "hps"}


def resolve(layers: list[Mapping[str, Any]], plugin_sections: Mapping[str, Any] = {}) -> RunConfig:
    """Merge flat override layers (later wins, :data:`DEFAULTS` first) into a validated :class:`RunConfig`.

    ``plugin_sections`` are the installed plugins' sections (:class:`mtlx.plugin_options.Section` by name):
    their options are checked against the section's ``config`` here; any other unknown section is refused.
    """
    merged = {key: value for layer in (DEFAULTS, *layers) for key, value in layer.items()}
    for key in RETIRED_KEYS:
        merged.pop(key, None)
    sections: dict[str, dict[str, Any]] = {s: {} for s in (*COMPONENT_SECTIONS, "train", *plugin_sections)}
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
    train_options = typed_options(TrainConfig, sections["train"], "train")
    try:
        train = TrainConfig(**train_options)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"invalid [train] setting: {_message(error)}") from None
    plugins = {name: sections[name] for name in plugin_sections if sections[name]}
    for name, body in plugins.items():
        build_component_config(plugin_sections[name].config, body, where=plugin_sections[name].label)
    return RunConfig(train=train, plugins=plugins, **components)


_SCALARS = {bool: "a boolean (true/false)", int: "an integer", float: "a number", str: "a string"}


def _scalar_type(annotation: Any) -> tuple[type | None, bool]:
    """``(scalar type, None allowed)`` of an annotation such as ``int`` or ``float | None``; (None, _) otherwise."""
    if annotation in _SCALARS:
        return annotation, False
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and rest[0] in _SCALARS:
            return rest[0], True
    return None, False


def typed_options(config_cls: type, options: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``options`` checked against the scalar annotations of ``config_cls`` (an int is a number, nothing else
    converts: ``2.5`` for an integer or ``"abc"`` for a number is a :class:`ConfigError` naming the key)."""
    try:
        hints = typing.get_type_hints(config_cls)
    except (NameError, TypeError):  # annotations that name what only a type checker sees: nothing to check
        hints = {}
    out = dict(options)
    for key, value in options.items():
        expected, optional = _scalar_type(hints.get(key))
        if expected is None or (optional and value is None):
            continue
        ok = isinstance(value, expected) and (expected is bool or not isinstance(value, bool))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            ok, value = True, float(value)
        if not ok:
            raise ConfigError(
                f"{where}: {key} expects {_SCALARS[expected]}{' or nothing' if optional else ''}, "
                f"got {value!r} ({type(value).__name__})"
            )
        out[key] = value
    return out


def _message(error: Exception) -> str:
    """attrs validators raise with ``(message, attribute, ...)``: the message alone, not the tuple."""
    return str(error.args[0]) if error.args else str(error)


#: Options a resumed run may change: they extend or observe the experiment, they do not define it.
RESUMABLE_KEYS = frozenset({
    "train.epochs", "train.max_steps", "train.log_every", "train.eval_every", "train.checkpoint_every",
    "train.threads", "train.num_workers", "train.device", "train.data_root", "train.eval_batch_size",
})


def resume_config(saved: Mapping[str, Any], user: Mapping[str, Any], where: str,
                  plugin_sections: Mapping[str, Any] = {}) -> tuple[RunConfig, dict[str, Any]]:
    """The config of a resumed run: ``saved`` (its config.toml, flat) with the ``user`` options that may change.

    Returns the config and ``{key: [old, new]}`` of what changed. Any other difference is a
    :class:`ConfigError` naming every differing key; ``train.epochs`` may only grow. ``plugin_sections``:
    as for :func:`resolve`.
    """
    before = flatten(resolve([saved], plugin_sections).to_dict())
    after_config = resolve([saved, user], plugin_sections)
    after = flatten(after_config.to_dict())
    changed = {k: [before.get(k), after.get(k)] for k in sorted({*before, *after}) if before.get(k) != after.get(k)}
    fixed = {k: v for k, v in changed.items() if k not in RESUMABLE_KEYS}
    if fixed:
        listed = ", ".join(f"{k} ({old!r} -> {new!r})" for k, (old, new) in fixed.items())
        raise ConfigError(
            f"cannot resume {where} with other settings: {listed} define the experiment; only "
            f"{', '.join(sorted(k.partition('.')[2] for k in RESUMABLE_KEYS))} may change on resume "
            "(start a new run with --out to change the rest)"
        )
    epochs = changed.get("train.epochs")
    if epochs and epochs[1] < epochs[0]:
        raise ConfigError(f"cannot resume {where} with fewer epochs ({epochs[0]} -> {epochs[1]}): epochs may only grow")
    return after_config, changed


def build_component_config(config_cls: type, options: Mapping[str, Any], where: str) -> Any:
    """Instantiate a component's attrs ``Config`` from options, with errors that name ``where``."""
    fields = {f.name for f in attrs.fields(config_cls)}
    for key in options:
        if key not in fields:
            known = ", ".join(sorted(fields)) or "none"
            raise ConfigError(f"{where} has no option {key!r}{did_you_mean(key, fields)} (options: {known})")
    options = typed_options(config_cls, options, where)
    try:
        return config_cls(**options)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"invalid option for {where}: {_message(error)}") from None
