"""Config layering, TOML files and -o overrides."""

from __future__ import annotations

import tomllib

import attrs
import pytest

import mtlx
from mtlx import ConfigError
from mtlx.config import (
    RunConfig,
    build_component_config,
    flatten,
    load_toml,
    parse_override,
    resolve,
    resolve_run_config,
    resume_config,
)


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        ("strategy.lambda_tsr=0.9", "strategy.lambda_tsr", 0.9),
        ("train.epochs=3", "train.epochs", 3),
        ("dataset.tasks=seg,depth", "dataset.tasks", "seg,depth"),
        ("dataset.tasks=['seg', 'depth']", "dataset.tasks", ["seg", "depth"]),
        ("train.device = cuda:1", "train.device", "cuda:1"),
        ("strategy.use_csa=false", "strategy.use_csa", False),
    ],
)
def test_parse_override_reads_toml_literals(text, key, value):
    assert parse_override(text) == (key, value)


@pytest.mark.parametrize("text", ["epochs=3", "train.epochs", ".x=1", "train.=1"])
def test_parse_override_rejects_malformed(text):
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override(text)


def test_layers_later_wins_and_roundtrip_through_toml(tmp_path):
    cfg = resolve([{"train.epochs": 5, "strategy.name": "rep-mtl"}, {"train.epochs": 7, "strategy.lambda_tsr": 1.1}])
    assert cfg.train.epochs == 7 and cfg.strategy.name == "rep-mtl"
    assert cfg.strategy.options == {"lambda_tsr": 1.1}
    assert cfg.dataset.name == "digits"  # the default layer
    path = tmp_path / "c.toml"
    path.write_text(cfg.to_toml())
    assert resolve([load_toml(path)]) == cfg


def test_unknown_keys_and_sections_suggest(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key train.epoch; did you mean 'epochs'\?"):
        resolve([{"train.epoch": 3}])
    with pytest.raises(ConfigError, match=r"unknown config section 'strategi'.*did you mean 'strategy'"):
        resolve([{"strategi.name": "ew"}])
    with pytest.raises(ConfigError, match="invalid \\[train\\] setting"):
        resolve([{"train.optimizer": "lion"}])


def test_toml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nepochs = 3")
    with pytest.raises(ConfigError, match=f"{bad} is not valid TOML"):
        load_toml(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_toml(tmp_path / "missing.toml")
    flat = tmp_path / "flat.toml"
    flat.write_text("epochs = 3")
    with pytest.raises(ConfigError, match="must be a \\[section\\] table"):
        load_toml(flat)


def test_component_options_are_validated_against_its_config():
    @attrs.frozen(kw_only=True)
    class Cfg:
        lambda_tsr: float = attrs.field(default=0.9, validator=attrs.validators.ge(0))

    assert build_component_config(Cfg, {"lambda_tsr": 1.3}, "strategy 'x'").lambda_tsr == 1.3
    with pytest.raises(ConfigError, match=r"strategy 'x' has no option 'lambda_tcr'; did you mean 'lambda_tsr'"):
        build_component_config(Cfg, {"lambda_tcr": 1}, "strategy 'x'")
    with pytest.raises(ConfigError, match="invalid option for strategy 'x'"):
        build_component_config(Cfg, {"lambda_tsr": -1.0}, "strategy 'x'")


def test_default_run_config_is_ew_on_digits():
    cfg = RunConfig()
    assert (cfg.strategy.name, cfg.dataset.name) == ("ew", "digits")


def test_recommended_options_follow_their_component():
    """The toy dataset recommends arch 'toy'; its options must not leak onto another arch."""
    regs = mtlx.PluginManager(modules=["mtlx_testing.plugin"]).registries
    toy = regs.datasets.get("toy")
    original = toy.recommended
    toy.recommended = {**original, "arch.channels": 4}
    try:
        kept = resolve_run_config([{"dataset.name": "toy", "strategy.name": "toy-weighted"}], registries=regs)
        assert kept.arch.options == {"channels": 4}
        pytest.importorskip("mtlx_archs", reason="the other architecture, hps, is mtlx-archs'")
        dropped = resolve_run_config([{"dataset.name": "toy", "strategy.name": "toy-weighted", "arch.name": "hps"}],
                                     registries=regs)
        assert dropped.arch.name == "hps" and dropped.arch.options == {}
        assert dropped.train.epochs == 2  # other recommendations stay
    finally:
        toy.recommended = original


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epochs=abc", "train: epochs expects an integer, got 'abc' (str)"),
        ("train.epochs=2.5", "train: epochs expects an integer, got 2.5 (float)"),
        ("train.lr=fast", "train: lr expects a number, got 'fast' (str)"),
        ("train.drop_last=1", "train: drop_last expects a boolean (true/false), got 1 (int)"),
        ("train.threads=two", "train: threads expects an integer or nothing, got 'two' (str)"),
        ("train.optimizer=adm", "invalid [train] setting: 'optimizer' must be in ('adam', 'adamw', 'sgd') (got 'adm')"),
    ],
)
def test_options_are_type_checked_with_one_line_naming_the_key(override, message):
    with pytest.raises(ConfigError) as caught:
        resolve([dict([parse_override(override)])])
    assert str(caught.value) == message
    assert "Attribute(" not in str(caught.value)


def test_an_integer_is_a_number_and_stays_checked_in_components():
    assert resolve([{"train.lr": 1}]).train.lr == 1.0 and isinstance(resolve([{"train.lr": 1}]).train.lr, float)

    @attrs.frozen(kw_only=True)
    class Cfg:
        size: int = 3
        scale: float | None = None

    assert build_component_config(Cfg, {"scale": 2}, "backbone 'x'").scale == 2.0
    with pytest.raises(ConfigError, match=r"^backbone 'x': size expects an integer, got 2.5 \(float\)$"):
        build_component_config(Cfg, {"size": 2.5}, "backbone 'x'")


def test_a_saved_config_with_a_retired_key_still_loads(tmp_path):
    """Runs saved before train.select_metric was removed wrote it into config.toml: it is dropped on reading."""
    for needed in ("mtlx_digits", "mtlx_baselines"):  # the saved run is a digits ew run
        pytest.importorskip(needed, reason="the saved run is a digits run of ew (mtlx-digits, mtlx-baselines)")
    saved = tmp_path / "config.toml"
    recorded = resolve_run_config([], registries=INSTALLED).to_toml()
    saved.write_text(recorded + 'select_metric = "delta_m"\n')  # [train] is the last table
    assert load_toml(saved)["train.select_metric"] == "delta_m"
    config, changed = resume_config(load_toml(saved), {}, where=str(tmp_path), registries=INSTALLED)
    assert config.to_toml() == recorded and changed == {}
    assert "select_metric" not in config.to_toml()


#: the installed plugins' registries
INSTALLED = mtlx.PluginManager().registries


def _every_component() -> list[tuple[str, str]]:
    by_section = INSTALLED.by_section
    return [(section, name) for section, registry in by_section.items() for name in registry.list()]


@pytest.mark.parametrize(("section", "name"), _every_component())
def test_the_recorded_defaults_of_every_installed_component_read_back_as_its_defaults(section, name):
    """``config.toml`` writes out every default of the built ``Config`` (:meth:`ComponentConfig.written_out`): TOML
    must carry them back."""
    cls = INSTALLED.by_section[section].get(name)
    chosen = {"arch.name": "hps", "backbone.name": "digits-cnn", "head.name": "conv", f"{section}.name": name}
    recorded = resolve([flatten(tomllib.loads(resolve([chosen], INSTALLED).to_toml()))])
    options = getattr(recorded, section).options
    assert build_component_config(cls.Config, options, where=name) == cls.Config()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("max_grad_norm", -1.0, "'max_grad_norm' must be > 0: -1.0"),
        ("max_grad_norm", 0.0, "'max_grad_norm' must be > 0: 0.0"),
        ("max_steps", 0, "'max_steps' must be >= 1: 0"),
        ("checkpoint_every", 0, "'checkpoint_every' must be >= 1: 0"),
        ("eval_batch_size", 0, "'eval_batch_size' must be >= 1: 0"),
        ("momentum", -1.0, "'momentum' must be >= 0: -1.0"),
        ("momentum", 1.0, "'momentum' must be < 1: 1.0"),
        ("gamma", 0.0, "'gamma' must be > 0: 0.0"),
        ("lr", float("inf"), "'lr' must be finite: inf"),
        ("max_consecutive_skips", 0, "'max_consecutive_skips' must be >= 1: 0"),
        ("device", "meta", "--device meta cannot train"),
        ("device", "gpu", "invalid --device 'gpu'"),
    ],
)
def test_every_train_option_is_checked_against_its_range(key, value, message):
    with pytest.raises(ConfigError, match="invalid \\[train\\] setting") as error:
        resolve([{f"train.{key}": value}])
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_config_file_that_is_not_utf8_is_one_line_naming_it(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes("[train]\n# réglages\nepochs = 3\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=f"config file {path} is not UTF-8 text"):
        load_toml(path)


def test_the_run_table_of_a_config_toml_is_a_record_not_a_layer(tmp_path):
    """A run's config.toml passed as --config starts a new experiment: its run id is not carried over."""
    from mtlx.config import read_run_id

    path = tmp_path / "config.toml"
    path.write_text(RunConfig().to_toml(run_id="abc123"))
    assert load_toml(path) == flatten(RunConfig().to_dict())
    assert read_run_id(path) == "abc123"


def test_a_resolved_section_holds_its_built_config_and_records_its_defaults():
    """Resolved against the registries, each section carries the ``Config`` built from its options: what the
    component receives and what config.toml records (given options as given, every other at its default)."""
    regs = mtlx.PluginManager(modules=["mtlx_testing.plugin"]).registries
    config = resolve_run_config([{"dataset.name": "toy", "dataset.num_tasks": 3, "strategy.name": "toy-weighted"}],
                                registries=regs)
    dataset_config = regs.datasets.get("toy").Config(num_tasks=3)
    assert config.dataset.config == dataset_config and config.dataset.options == {"num_tasks": 3}
    assert config.to_dict()["dataset"] == {"name": "toy", **attrs.asdict(dataset_config)}
    assert resolve([flatten(config.to_dict())], regs).to_toml() == config.to_toml()  # what a resume reads back
