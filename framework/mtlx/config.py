"""Run configuration: attrs classes, TOML files and ``-o section.key=value`` overrides.

Layers, later wins: built-in defaults < the dataset's ``recommended`` < its
``--preset`` < the ``--config`` TOML file < CLI flags < ``-o`` overrides.
The resolved config is written to the run directory as ``config.toml``.

Component sections (``strategy``, ``dataset``, ``arch``, ``backbone``,
``head``) hold ``name`` plus that component's options; sections that plugins
own (``mtlx_addoption``, :mod:`mtlx.plugin_options`) hold options alone.
Resolved against the registries (:func:`resolve_run_config`), each section's
attrs ``Config`` is built once, from those options: that built ``Config`` is
what its component receives and, every default written out, what the run records.
"""

from __future__ import annotations

import math
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import tomli_w

from .errors import ConfigError, UnknownComponentError, did_you_mean
from .gradients import METHODS

if TYPE_CHECKING:
    from .registry import Registries

__all__ = [
    "COMPONENT_SECTIONS",
    "ComponentConfig",
    "RunConfig",
    "TrainConfig",
    "build_component_config",
    "flatten",
    "installed_registries",
    "load_toml",
    "parse_override",
    "read_run_id",
    "read_toml",
    "resolve",
    "resolve_run_config",
    "resolve_sections",
]

COMPONENT_SECTIONS = ("strategy", "dataset", "arch", "backbone", "head")
#: The order components are built (and their sections resolved) in.
BUILD_ORDER = ("dataset", "arch", "backbone", "head", "strategy")
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
    """A section: which component (``name``; None = the dataset's recommendation, or a plugin's section), its
    options as given, and ``config``, the attrs ``Config`` built from them when resolved (derived: not compared)."""

    name: str | None = None
    options: dict[str, Any] = attrs.field(factory=dict, converter=dict)
    config: Any = attrs.field(default=None, eq=False, repr=False)

    def written_out(self) -> dict[str, Any]:
        """What a run records: every option of the built ``config`` at its default (None: not written; a later
        default changes no old run), then the options as given (a resume that repeats them matches)."""
        if self.config is None:
            return dict(self.options)
        built = attrs.asdict(self.config, recurse=False)
        defaults = {k: list(v) if isinstance(v, tuple) else v for k, v in built.items()
                    if k not in self.options and v is not None}
        return {**defaults, **self.options}


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
    #: the sections plugins own (``mtlx_addoption``), by name; once resolved, every installed plugin's
    plugins: dict[str, ComponentConfig] = attrs.field(factory=dict, converter=dict)

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict in the TOML layout (component options inline with ``name``; plugin sections last)."""
        out: dict[str, Any] = {}
        for section in COMPONENT_SECTIONS:
            comp: ComponentConfig = getattr(self, section)
            body = {"name": comp.name} if comp.name is not None else {}
            body.update(comp.written_out())
            out[section] = body
        out["train"] = {k: v for k, v in attrs.asdict(self.train).items() if v is not None}
        for name, section in sorted(self.plugins.items()):  # TOML has no null: an option left at None is not written
            out[name] = {k: v for k, v in section.written_out().items() if v is not None}
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


def read_toml(path: Path, what: str = "config file") -> dict[str, Any]:
    """``path`` parsed; missing, a directory, not UTF-8 or not TOML: one :class:`ConfigError` line naming ``what``."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{what} {path} is not UTF-8 text (byte {error.start}); TOML files are UTF-8") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path} is a directory") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{what} {path} is not valid TOML: {error}") from None


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a config TOML file into flat ``section.key`` overrides (a run's ``[run]`` record is left out)."""
    path = Path(path)
    data = read_toml(path)
    data.pop(RUN_TABLE, None)
    return flatten(data, where=str(path))


def read_run_id(path: str | Path) -> str | None:
    """The run id a run's ``config.toml`` records (None for runs written before ids existed)."""
    record = read_toml(Path(path)).get(RUN_TABLE)
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


def resolve(
    layers: list[Mapping[str, Any]], registries: Registries | None = None, sections: Iterable[str] | None = None
) -> RunConfig:
    """Merge flat override layers (later wins, :data:`DEFAULTS` first) into a validated :class:`RunConfig`; with
    ``registries``, their plugins' sections are known too, and each component section's ``Config`` is built (only
    ``sections``, when given: rebuilding a run's model needs no strategy, whose plugin may be gone)."""
    config = _merged(layers, registries.sections if registries is not None else ())
    return resolve_sections(config, registries, sections) if registries is not None else config


def _merged(layers: list[Mapping[str, Any]], plugin_sections: Iterable[str]) -> RunConfig:
    """The layers merged into sections; any unknown section or ``train`` key is refused."""
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
    plugins = {name: ComponentConfig(options=sections[name]) for name in plugin_sections if sections[name]}
    return RunConfig(train=train, plugins=plugins, **components)


def resolve_sections(config: RunConfig, registries: Registries, sections: Iterable[str] | None = None) -> RunConfig:
    """``config`` with each component section's ``Config`` built (once: a built one is kept; only ``sections``,
    when given), every installed plugin's section too."""
    components = {}
    for section in BUILD_ORDER:  # so the first error is the one a build would meet first (a model's before a strategy's)
        registry, comp = registries.by_section[section], getattr(config, section)
        if sections is not None and section not in sections:
            continue
        if comp.config is None:
            if comp.name is None:
                raise ConfigError(
                    f"no {section} chosen: pass --{section} NAME (dataset {config.dataset.name!r} recommends none); "
                    f"installed: {', '.join(registry.list()) or 'none'}"
                )
            cls, where = registry.get(comp.name), f"{registry.kind} {comp.name!r}"
            comp = attrs.evolve(comp, config=build_component_config(cls.Config, comp.options, where))
        components[section] = comp
    plugins = {}
    for name, section in registries.sections.items():
        given = config.plugins.get(name, ComponentConfig())
        plugins[name] = given if given.config is not None else attrs.evolve(
            given, config=build_component_config(section.config, given.options, where=section.label))
    return attrs.evolve(config, plugins=plugins, **components)


def installed_registries(registries: Registries | None) -> Registries:
    """``registries``, or (None: the Python API's default) the installed plugins', loaded afresh
    (:class:`~mtlx.hooks.PluginManager`)."""
    from .hooks import PluginManager  # on use: the plugin machinery imports this module

    return registries if registries is not None else PluginManager().registries


def resolve_run_config(
    user_layers: Sequence[Mapping[str, Any]], presets: Sequence[str] = (), registries: Registries | None = None
) -> RunConfig:
    """Resolve the run config: defaults < dataset ``recommended`` < presets < user layers, each section built.

    When the user picks another component than the recommended one (``--backbone``),
    the options recommended for that section are dropped with it.
    """
    registries = installed_registries(registries)
    chosen_by_user = {key: value for layer in user_layers for key, value in layer.items()}
    dataset_name = chosen_by_user.get("dataset.name", DEFAULTS["dataset.name"])
    dataset_cls = registries.datasets.get(str(dataset_name))
    recommended = dict(dataset_cls.recommended)
    for section in COMPONENT_SECTIONS:
        # options recommended for one component do not apply to another the user picked instead
        chosen = chosen_by_user.get(f"{section}.name")
        if chosen is not None and chosen != recommended.get(f"{section}.name", chosen):
            recommended = {k: v for k, v in recommended.items() if not k.startswith(f"{section}.")}
    layers: list[Mapping[str, Any]] = [recommended]
    strategy_name = chosen_by_user.get("strategy.name", DEFAULTS["strategy.name"])
    strategy_cls = _preset_owner(registries.strategies, str(strategy_name)) if presets else None
    owners = ((dataset_cls.presets, ""), (getattr(strategy_cls, "presets", {}), "strategy."))
    for preset in presets:
        # a preset names a published setting: the dataset's part (data, model, training) and the strategy's
        found = [{k: v for k, v in table[preset].items() if k.startswith(prefix)}
                 for table, prefix in owners if preset in table]
        if not found:
            known = sorted({name for table, _ in owners for name in table})
            raise ConfigError(
                f"neither dataset {dataset_name!r} nor strategy {strategy_name!r} has a preset {preset!r}"
                f"{did_you_mean(preset, known)} (presets: {', '.join(known) or 'none'})"
            )
        layers.extend(found)
    return resolve([*layers, *user_layers], registries)


def _preset_owner(registry: Any, name: str) -> type | None:
    """The strategy class whose presets apply, or None when it is not installed (building it says so later)."""
    try:
        return registry.get(name)
    except UnknownComponentError:
        return None


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
                  registries: Registries) -> tuple[RunConfig, dict[str, Any]]:
    """The config of a resumed run: ``saved`` (its config.toml, flat) with the ``user`` options that may change,
    resolved as :func:`resolve` does with ``registries``.

    Returns the config and ``{key: [old, new]}`` of what changed. Any other difference is a
    :class:`ConfigError` naming every differing key; ``train.epochs`` may only grow.
    """
    before = flatten(_merged([saved], registries.sections).to_dict())
    after_config = _merged([saved, user], registries.sections)
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
    return resolve_sections(after_config, registries), changed


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
