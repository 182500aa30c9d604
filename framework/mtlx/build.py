"""Turn a :class:`~mtlx.config.RunConfig` into components: dataset, model, strategy.

Everything is looked up in the plugin registries and every component's
options are validated against its own attrs ``Config`` here, before any
training starts, so a typo fails in the first second with the component named.

The registries are passed in: ``mtlx run`` and plugin commands pass their command
line's (:func:`mtlx.cli.plugin_manager`, ``--no-plugin`` applied), and the runner the
ones it built with. For the Python API (notebooks, benchmarks) ``registries=None``
loads the installed plugins afresh on each call: there is no cached process-wide
manager that a test would have to reset or that one caller's plugins could leak into.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from .config import COMPONENT_SECTIONS, DEFAULTS, RunConfig, build_component_config, resolve
from .errors import ConfigError, UnknownComponentError, did_you_mean
from .hooks import PluginManager
from .interfaces import Dataset, MTOStrategy, MultiTaskModel, Need, TaskSpec
from .registry import Registries

__all__ = [
    "Components",
    "build",
    "build_dataset",
    "build_model",
    "build_strategy",
    "plugin_options",
    "resolve_run_config",
    "strategy_by_name",
    "with_defaults",
]


def _registries(registries: Registries | None) -> Registries:
    """``registries``, or (None: the Python API's default) those of the installed plugins, loaded afresh."""
    return registries if registries is not None else PluginManager().registries


def resolve_run_config(
    user_layers: Sequence[Mapping[str, Any]], presets: Sequence[str] = (), registries: Registries | None = None
) -> RunConfig:
    """Resolve the run config: defaults < dataset ``recommended`` < presets < user layers.

    When the user picks another component than the recommended one (``--backbone``),
    the options recommended for that section are dropped with it.
    """
    registries = _registries(registries)
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
    return resolve([*layers, *user_layers], registries.sections)


def _preset_owner(registry: Any, name: str) -> type | None:
    """The strategy class whose presets apply, or None when it is not installed (building it says so later)."""
    try:
        return registry.get(name)
    except UnknownComponentError:
        return None


def _component(registry: Any, section: str, config: RunConfig) -> tuple[type, Any]:
    comp = getattr(config, section)
    if comp.name is None:
        raise ConfigError(
            f"no {section} chosen: pass --{section} NAME (dataset {config.dataset.name!r} recommends none); "
            f"installed: {', '.join(registry.list()) or 'none'}"
        )
    cls = registry.get(comp.name)
    return cls, build_component_config(cls.Config, comp.options, where=f"{registry.kind} {comp.name!r}")


def with_defaults(config: RunConfig, registries: Registries | None = None) -> RunConfig:
    """``config`` with every component option it leaves unset written out at its default.

    What a run records is what it ran: a plugin that later changes a default changes
    neither an old run's ``config.toml`` nor what resuming it trains. Options the user
    gave are kept as given (``tasks="seg,depth"`` stays a string), so a resume that
    repeats them matches.
    """
    regs = _registries(registries)
    resolved = {}
    for section, registry in regs.by_section.items():
        comp = getattr(config, section)
        _, cfg = _component(registry, section, config)
        resolved[section] = attrs.evolve(comp, options=_written_out(cfg, comp.options))
    built = plugin_options(config, regs)
    plugins = {name: _written_out(cfg, config.plugins.get(name, {})) for name, cfg in built.items()}
    return attrs.evolve(config, plugins=plugins, **resolved)


def _written_out(cfg: Any, given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` and every other option of the built ``cfg`` at its default (None: not written)."""
    defaults = {k: list(v) if isinstance(v, tuple) else v for k, v in attrs.asdict(cfg, recurse=False).items()
                if k not in given and v is not None}
    return {**defaults, **given}


def plugin_options(config: RunConfig, registries: Registries | None = None) -> dict[str, Any]:
    """``{section: its built options class}`` for every section the installed plugins own (``mtlx_addoption``)."""
    return {name: build_component_config(section.config, config.plugins.get(name, {}), where=section.label)
            for name, section in _registries(registries).sections.items()}


def build_dataset(config: RunConfig, registries: Registries | None = None) -> Dataset:
    regs = _registries(registries)
    cls, cfg = _component(regs.datasets, "dataset", config)
    return cls(cfg, config.train.data_root)


def build_model(
    config: RunConfig, tasks: Mapping[str, TaskSpec], input_shape: tuple[int, ...], registries: Registries | None = None
) -> MultiTaskModel:
    regs = _registries(registries)
    backbone_cls, backbone_cfg = _component(regs.backbones, "backbone", config)
    head_cls, head_cfg = _component(regs.heads, "head", config)
    arch_cls, arch_cfg = _component(regs.archs, "arch", config)

    def make_backbone() -> Any:
        return backbone_cls(backbone_cfg, input_shape)

    def make_head(task: TaskSpec, in_shape: tuple[int, ...]) -> Any:
        return head_cls(head_cfg, in_shape, task, input_shape)

    return arch_cls(arch_cfg, tasks=tasks, make_backbone=make_backbone, make_head=make_head, input_shape=input_shape)


def strategy_by_name(
    name: str, options: Mapping[str, Any], tasks: Sequence[str], registries: Registries | None = None
) -> MTOStrategy:
    """The installed strategy ``name`` with ``options`` (its ``Config`` fields), built from ``registries``."""
    regs = _registries(registries)
    entry = regs.strategies.entry(name)
    config = build_component_config(entry.obj.Config, options, where=f"strategy {name!r}")
    return entry.obj.from_registries(config, tasks=tuple(tasks), registries=regs.as_seen_by(entry))


def build_strategy(
    config: RunConfig, tasks: Sequence[str], model: MultiTaskModel, registries: Registries | None = None
) -> MTOStrategy:
    regs = _registries(registries)
    cls, cfg = _component(regs.strategies, "strategy", config)
    seen = regs.as_seen_by(regs.strategies.entry(str(config.strategy.name)))  # a base it names: the owner it depends on
    strategy = cls.from_registries(cfg, tasks=tuple(tasks), registries=seen)
    if strategy.needs is Need.REPRESENTATION and not model.has_shared_representation:
        with_z = [n for n, e in regs.archs.listing() if e.obj.has_shared_representation]
        raise ConfigError(
            f"strategy {config.strategy.name!r} needs a single shared representation, but architecture "
            f"{config.arch.name!r} has none; use one of: {', '.join(with_z) or 'none installed'}"
        )
    return strategy


@attrs.frozen
class Components:
    """What a run is made of, and the registries it was built from (the runner's labels, a compared strategy)."""

    config: RunConfig
    dataset: Dataset
    model: MultiTaskModel
    strategy: MTOStrategy
    registries: Registries
    #: the plugins' sections, built (:func:`plugin_options`): what their ``mtlx_engine_created`` reads
    options: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def tasks(self) -> dict[str, TaskSpec]:
        return dict(self.dataset.tasks)


def build(config: RunConfig, registries: Registries | None = None) -> Components:
    """Build dataset, model and strategy (on CPU; the runner moves the model)."""
    registries = _registries(registries)
    dataset = build_dataset(config, registries)
    model = build_model(config, dataset.tasks, dataset.input_shape, registries)
    strategy = build_strategy(config, list(dataset.tasks), model, registries)
    return Components(config=with_defaults(config, registries), dataset=dataset, model=model, strategy=strategy,
                      options=plugin_options(config, registries), registries=registries)
