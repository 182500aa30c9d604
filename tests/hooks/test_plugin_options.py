"""A plugin's own config section (``mtlx_addoption``): checked, recorded, listed, set with -o and TOML, and the
handler it configures resumes exactly; with a real installed distribution (tests/hooks/conftest.py)."""

from __future__ import annotations

import sys
import tomllib
import types

import pytest
import torch

import mtlx
import mtlx_testing
from mtlx.checkpoint import load_checkpoint, save_checkpoint
from mtlx.hooks import PluginManager

EMA = '''
import attrs
import mtlx
from mtlx.engine import Handler


@attrs.frozen(kw_only=True)
class EMAOptions:
    """An exponential moving average of the model's parameters, kept beside training.

    Attributes:
        enabled: keep the average (off by default).
        decay: weight of the previous average at each step, in [0, 1).
    """

    enabled: bool = False
    decay: float = attrs.field(default=0.9, validator=[attrs.validators.ge(0), attrs.validators.lt(1)])


class ParameterEMA(Handler):
    """Averages the parameters after every step; the average is checkpointed."""

    def __init__(self, decay):
        self.decay, self.average, self.updates = decay, None, 0

    def iteration_completed(self, engine):
        params = {name: p.detach().clone() for name, p in engine.model.named_parameters()}
        if self.average is None:
            self.average = params
        else:
            for name, p in params.items():
                self.average[name].mul_(self.decay).add_(p, alpha=1 - self.decay)
        self.updates += 1

    def state_dict(self):
        return None if self.average is None else {"average": self.average, "updates": self.updates}

    def load_state_dict(self, state):
        self.average = {name: t.clone() for name, t in state["average"].items()}
        self.updates = state["updates"]


@mtlx.hookimpl
def mtlx_addoption(options):
    options.add("ema", EMAOptions)


@mtlx.hookimpl
def mtlx_engine_created(engine, options):
    if options["ema"].enabled:
        engine.attach(ParameterEMA(options["ema"].decay))
'''

RUN = ("run", "-d", "toy", "-s", "toy-weighted", "--threads", "1", "-q")
KEY = "ema_pkg.plugin.ParameterEMA"


@pytest.fixture
def ema(distribution):
    distribution("ema-pkg", "ema_pkg", EMA, entry_point="ema")
    return sys.modules


def _handlers(run_dir):
    return load_checkpoint(run_dir / "last.pt")["engine"]["handlers"]


@pytest.mark.parametrize("saved_as", [KEY, "ParameterEMA"])  # the bare class name: checkpoints written before
def test_the_plugins_handler_resumes_bit_identical_to_an_uninterrupted_run(cli, ema, tmp_path, saved_as):
    full, part = tmp_path / "full", tmp_path / "part"
    on = ("--epochs", "2", "-o", "ema.enabled=true", "-o", "ema.decay=0.5")
    assert cli(*RUN, *on, "--out", full).exit_code == 0
    assert cli(*RUN, *on, "--max-steps", "6", "--out", part).exit_code == 0
    checkpoint = load_checkpoint(part / "last.pt")
    assert checkpoint["engine"]["handlers"][KEY]["updates"] == 6
    checkpoint["engine"]["handlers"][saved_as] = checkpoint["engine"]["handlers"].pop(KEY)
    save_checkpoint(part / "last.pt", {k: v for k, v in checkpoint.items() if k != "format"})
    result = cli("run", "--resume", part, "-q", "-o", "train.max_steps=1000")
    assert result.exit_code == 0, result.output
    a, b = _handlers(full)[KEY], _handlers(part)[KEY]
    assert a["updates"] == b["updates"] == 8
    assert all(torch.equal(a["average"][k], b["average"][k]) for k in a["average"])
    model_a, model_b = (load_checkpoint(d / "last.pt")["engine"]["model"] for d in (full, part))
    assert all(torch.equal(model_a[k], model_b[k]) for k in model_a)
    assert tomllib.loads((part / "config.toml").read_text())["ema"] == {"enabled": True, "decay": 0.5}


def test_the_section_is_recorded_with_its_defaults_and_the_handler_is_off_unless_switched_on(cli, ema, tmp_path):
    assert cli(*RUN, "--epochs", "1", "--out", tmp_path / "off").exit_code == 0
    assert tomllib.loads((tmp_path / "off" / "config.toml").read_text())["ema"] == {"enabled": False, "decay": 0.9}
    assert KEY not in _handlers(tmp_path / "off")
    (tmp_path / "on.toml").write_text("[ema]\nenabled = true\n")
    assert cli(*RUN, "--epochs", "1", "--config", tmp_path / "on.toml", "--out", tmp_path / "on").exit_code == 0
    assert tomllib.loads((tmp_path / "on" / "config.toml").read_text())["ema"] == {"enabled": True, "decay": 0.9}
    assert _handlers(tmp_path / "on")[KEY]["updates"] == 4


@pytest.mark.parametrize(("option", "message"), [
    ("ema.decy=0.5", ("Error: config section [ema] from ema-pkg==0.1.0 (ema) has no option 'decy'; did you mean "
                      "'decay'? (options: decay, enabled)")),
    ("ema.decay=high", ("Error: config section [ema] from ema-pkg==0.1.0 (ema): decay expects a number, got "
                        "'high' (str)")),
    ("ema.decay=1.5", ("Error: invalid option for config section [ema] from ema-pkg==0.1.0 (ema): 'decay' must "
                       "be < 1: 1.5")),
    ("emma.enabled=true", "Error: unknown config section 'emma' in 'emma.enabled'; did you mean 'ema'?"),
])
def test_a_bad_option_of_the_section_is_one_line_exit_2_and_nothing_written(cli, ema, tmp_path, option, message):
    result = cli(*RUN, "--epochs", "1", "-o", option, "--out", tmp_path / "run")
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1] == message
    assert not (tmp_path / "run").exists()


def test_list_shows_the_section_and_its_documented_options(cli, ema):
    listing = cli("list").output
    assert "config sections of plugins" in listing and "ema-pkg==0.1.0 (ema)" in listing
    details = cli("list", "--details", "ema")
    assert details.exit_code == 0, details.output
    assert "config section [ema]  ema-pkg==0.1.0 (ema)" in details.output
    assert "weight of the previous average" in details.output and "(undocumented)" not in details.output
    mtlx_testing.check_options(sys.modules["ema_pkg.plugin"].EMAOptions)


def _declaring(name: str, config: type):
    return types.SimpleNamespace(mtlx_addoption=mtlx.hookimpl(lambda options: options.add(name, config)))


@pytest.mark.parametrize(("name", "reason"), [
    ("train", "[train] is the core's; choose another name"),
    ("ema", "[ema] is already declared by <local> ({owner}); a section has one owner"),
    ("Ema", "a section name is lowercase letters, digits, '-' and '_', got 'Ema'"),
])
def test_a_section_that_cannot_be_the_plugins_breaks_that_plugin_in_one_line(name, reason):
    import attrs

    options = attrs.make_class("Options", {"enabled": attrs.field(default=False)})
    pm = PluginManager(autoload=False)
    pm.register_object(_declaring("ema", options), "first")
    pm.register_object(_declaring(name, options), "second")
    with pytest.warns(RuntimeWarning):
        sections = pm.registries.sections
    owner = sections["ema"].owner.plugin  # of two plugins declaring [ema], the one called first (pluggy's order)
    (broken,) = pm.broken
    assert list(sections) == ["ema"] and {owner, broken} == {"first", "second"}
    assert str(pm.broken[broken]) == (
        f"mtlx plugin {broken!r} (<local>, {pm.plugins[broken].target}) raised in mtlx_addoption: "
        f"PluginError: config section [{name}] from <local> ({broken}): {reason.format(owner=owner)}"
    )
