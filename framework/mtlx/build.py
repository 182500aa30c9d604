"""Turn a resolved :class:`~mtlx.config.RunConfig` into components: dataset, model, strategy.

Each component is looked up in the plugin registries and given its section's ``Config``, built once when the
config was resolved (:func:`mtlx.config.resolve_run_config`: a typo failed there, before anything was built).

The registries are passed in: ``mtlx run`` and plugin commands pass their command
line's (:func:`mtlx.cli.plugin_manager`, ``--no-plugin`` applied), and the runner the
ones it built with. For the Python API (notebooks, benchmarks) ``registries=None``
loads the installed plugins afresh (:func:`mtlx.config.installed_registries`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from .config import RunConfig, build_component_config, installed_registries
from .errors import ConfigError
from .interfaces import Dataset, MTOStrategy, MultiTaskModel, Need, TaskSpec
from .registry import Registries

__all__ = [
    "Components",
    "build",
    "build_dataset",
    "build_model",
    "build_strategy",
    "strategy_by_name",
]


def _component(registry: Any, section: str, config: RunConfig) -> tuple[type, Any]:
    """The class of ``config``'s ``section`` and its ``Config``, built when ``config`` was resolved."""
    comp = getattr(config, section)
    if comp.config is None:
        raise ValueError(f"[{section}] is not resolved: build from what mtlx.config.resolve_run_config returns")
    return registry.get(comp.name), comp.config


def build_dataset(config: RunConfig, registries: Registries | None = None) -> Dataset:
    regs = installed_registries(registries)
    cls, cfg = _component(regs.datasets, "dataset", config)
    return cls(cfg, config.train.data_root)


def build_model(
    config: RunConfig, tasks: Mapping[str, TaskSpec], input_shape: tuple[int, ...], registries: Registries | None = None
) -> MultiTaskModel:
    regs = installed_registries(registries)
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
    regs = installed_registries(registries)
    entry = regs.strategies.entry(name)
    config = build_component_config(entry.obj.Config, options, where=f"strategy {name!r}")
    return entry.obj.from_registries(config, tasks=tuple(tasks), registries=regs.as_seen_by(entry))


def build_strategy(
    config: RunConfig, tasks: Sequence[str], model: MultiTaskModel, registries: Registries | None = None
) -> MTOStrategy:
    regs = installed_registries(registries)
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

    @property
    def tasks(self) -> dict[str, TaskSpec]:
        return dict(self.dataset.tasks)


def build(config: RunConfig, registries: Registries | None = None) -> Components:
    """Build dataset, model and strategy (on CPU; the runner moves the model) from the resolved ``config``."""
    registries = installed_registries(registries)
    dataset = build_dataset(config, registries)
    model = build_model(config, dataset.tasks, dataset.input_shape, registries)
    strategy = build_strategy(config, list(dataset.tasks), model, registries)
    return Components(config=config, dataset=dataset, model=model, strategy=strategy, registries=registries)
