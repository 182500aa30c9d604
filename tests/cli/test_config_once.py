"""A run's config is resolved in one pass: each section's attrs ``Config`` is built once, and that built
``Config`` is what the component receives and what ``config.toml`` records (#30 item 6)."""

from __future__ import annotations

import tomllib
import types
from collections import Counter

import attrs

import mtlx
from mtlx_testing.plugin import ToyWeighted

RUN = ("run", "-d", "toy", "-s", "counted", "--threads", "1", "-q", "--max-steps", "2")


def _counting_plugin(built: Counter, received: list) -> types.SimpleNamespace:
    """A strategy and a plugin section whose ``Config`` classes count their instances."""

    @attrs.frozen(kw_only=True)
    class StrategyConfig:
        scale: float = 1.0

        def __attrs_post_init__(self) -> None:
            built["strategy"] += 1

    @attrs.frozen(kw_only=True)
    class SectionConfig:
        level: int = 3

        def __attrs_post_init__(self) -> None:
            built["section"] += 1

    class Counted(ToyWeighted):
        Config = StrategyConfig

        def __init__(self, config: StrategyConfig, *, tasks: list[str]):
            super().__init__(config, tasks=tasks)
            received.append(config)

    def mtlx_register(registry):
        registry.strategies.register("counted", Counted)

    def mtlx_addoption(options):
        options.add("counted-section", SectionConfig)

    def mtlx_engine_created(engine, options):
        received.append(options["counted-section"])

    return types.SimpleNamespace(mtlx_register=mtlx.hookimpl(mtlx_register),
                                 mtlx_addoption=mtlx.hookimpl(mtlx_addoption),
                                 mtlx_engine_created=mtlx.hookimpl(mtlx_engine_created))


def test_each_config_is_built_once_per_run_and_recorded_as_built(cli, tmp_path):
    built, received = Counter(), []
    plugin = {"counting": _counting_plugin(built, received)}
    out = tmp_path / "run"
    result = cli(*RUN, "-o", "strategy.scale=2", "-o", "counted-section.level=5", "--out", out, plugins=plugin)
    assert result.exit_code == 0, result.output
    assert built == {"strategy": 1, "section": 1}
    strategy_config, section_config = received
    recorded = tomllib.loads((out / "config.toml").read_text())
    assert recorded["strategy"] == {"name": "counted", "scale": strategy_config.scale} == {"name": "counted", "scale": 2.0}
    assert recorded["counted-section"] == attrs.asdict(section_config) == {"level": 5}

    built.clear()
    resumed = cli("run", "--resume", out, "--max-steps", "4", "-q", plugins=plugin)
    assert resumed.exit_code == 0, resumed.output
    assert built == {"strategy": 1, "section": 1}
