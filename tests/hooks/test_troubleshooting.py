"""docs/plugin-guide.md's "Troubleshooting": each documented message is what mtlx prints in that situation.

Every entry of the section (``<!-- error: ID -->`` then a ``text`` block) has a reproducer here that builds the
situation with a real distribution on sys.path (tests/hooks/conftest.py) and returns the line mtlx printed;
``<...>`` in the guide stands for text that varies (paths, the other installed components).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mtlx_testing import check_strategy, invoke_cli

GUIDE = Path(__file__).parents[2] / "docs" / "plugin-guide.md"

PLUGIN = '''
import attrs, torch
import mtlx
from mtlx_testing.plugin import ToyDataset


class Sums(ToyDataset):
    """The guide's dataset (toy data here)."""


class WarmupWeights(mtlx.LossWeighting):
    """Weights rise from ``start`` to 1."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options.

        Attributes:
            start: the weight on the first step.
            steps: steps to reach weight 1.
        """

        start: float = 0.5
        steps: int = 10

    def combine(self, losses, step):
        weights = torch.full_like(losses, self.config.start)
        return (weights * losses).sum(), weights


@mtlx.hookimpl
def mtlx_register(registry):
    registry.datasets.register("sums", Sums)
    registry.strategies.register("warmup-weights", WarmupWeights)
'''


def _documented() -> dict[str, str]:
    """``{id: message}`` of the guide's Troubleshooting section."""
    section = GUIDE.read_text().partition("## 10. Troubleshooting")[2]
    return dict(re.findall(r"<!-- error: (\S+) -->.*?^```text\n(.*?)\n```", section, flags=re.DOTALL | re.MULTILINE))


def _matches(documented: str, printed: str) -> bool:
    pattern = ".+?".join(re.escape(part) for part in documented.split("<...>"))
    return re.fullmatch(pattern, printed) is not None


def _install(distribution: Callable[..., None], source: str = PLUGIN, **declared: str) -> None:
    distribution("mtlx-sums", "mtlx_sums", source, entry_point="sums", **declared)


def _last_line(*args: object) -> str:
    result = invoke_cli("--plugin", "mtlx_testing.plugin", *args)  # the toy architecture the toy data asks for
    assert result.exit_code != 0, result.output
    return result.output.splitlines()[-1]


def _listed_broken(name: str) -> str:
    result = invoke_cli("list")
    assert result.exit_code == 0, result.output
    return next(line.strip() for line in result.output.splitlines() if line.startswith(f"  {name}: "))


def _failed_check(check: Callable[[], None]) -> str:
    with pytest.raises(AssertionError) as failed:
        check()
    return f"AssertionError: {failed.value}"


def module_typo(distribution, tmp_path):
    _install(distribution, target="mtlx_sums.plugn")
    return _last_line("run", "-d", "sums", "--out", tmp_path / "run")


def hook_typo(distribution, tmp_path):
    _install(distribution, PLUGIN.replace("def mtlx_register", "def mtlx_regster"))
    return _listed_broken("sums")


def wrong_group(distribution, tmp_path):
    _install(distribution, group="mtlx.plugins")
    return _last_line("run", "-d", "sums", "--out", tmp_path / "run")


def bad_name(distribution, tmp_path):
    _install(distribution, PLUGIN.replace('register("warmup-weights"', 'register("Warmup_Weights"'))
    return _listed_broken("sums")


def not_a_component(distribution, tmp_path):
    _install(distribution, PLUGIN.replace("class WarmupWeights(mtlx.LossWeighting)", "class WarmupWeights"))
    return _listed_broken("sums")


def no_config(distribution, tmp_path):
    _install(distribution, PLUGIN.replace("    @attrs.frozen(kw_only=True)\n    class Config:", "    class Options:"))
    return _listed_broken("sums")


def shared_name(distribution, tmp_path):
    _install(distribution)
    distribution("other-weights", "other_weights", PLUGIN.replace('registry.datasets.register("sums", Sums)', ""),
                 entry_point="other")
    return _last_line("run", "-d", "sums", "-s", "warmup-weights", "--out", tmp_path / "run")


def unknown_name(distribution, tmp_path):
    _install(distribution)
    return _last_line("run", "-d", "sums", "-s", "warmup-weight", "--out", tmp_path / "run")


def missing_data(distribution, tmp_path):
    source = PLUGIN.replace('''class Sums(ToyDataset):
    """The guide's dataset (toy data here)."""''', '''class Sums(ToyDataset):
    """The guide's dataset: its files are not there."""

    def __init__(self, config, root):
        from mtlx.data import resolve_root
        super().__init__(config, root)
        self.root = resolve_root(root, "sums", expected="train.npz, val.npz, test.npz", source="the guide")''')
    _install(distribution, source)
    return _last_line("run", "-d", "sums", "-s", "warmup-weights", "--data-root", tmp_path / "nowhere",
                      "--out", tmp_path / "run")


def undocumented_option(distribution, tmp_path):
    _install(distribution, PLUGIN.replace("            steps: steps to reach weight 1.\n", ""))
    return _failed_check(lambda: check_strategy("warmup-weights"))  # which runs check_options first


def strategy_raises(distribution, tmp_path):
    _install(distribution, PLUGIN.replace("        weights = torch.full_like(losses, self.config.start)\n",
                                          "        raise KeyError('total')\n"))
    return _failed_check(lambda: check_strategy("warmup-weights"))


def wrong_gradient_size(distribution, tmp_path):
    source = PLUGIN.replace('''    def combine(self, losses, step):''', '''    def backward(self, step):
        step.backward_heads(retain_graph=True)
        step.set_shared_grad(step.shared_grads().sum(0)[1:])  # one parameter short
        return mtlx.StepResult()

    def combine(self, losses, step):''')
    _install(distribution, source)
    return _failed_check(lambda: check_strategy("warmup-weights"))


def wrong_weights(distribution, tmp_path):
    source = PLUGIN.replace('''    def combine(self, losses, step):''', '''    def backward(self, step):
        step.backward(step.loss_vector().sum())
        return mtlx.StepResult(weights={"total": 1.0})

    def combine(self, losses, step):''')
    _install(distribution, source)
    return _failed_check(lambda: check_strategy("warmup-weights"))


def hook_raises(distribution, tmp_path):
    _install(distribution, PLUGIN + """

@mtlx.hookimpl
def mtlx_engine_created(engine):
    raise KeyError("total")
""")
    return _last_line("run", "-d", "sums", "-s", "warmup-weights", "--epochs", "1", "--threads", "1", "-q",
                      "--out", tmp_path / "run")


def fixtures_without_pytest(distribution, tmp_path):
    code = "import sys; sys.modules['pytest'] = None; import mtlx_testing.fixtures"
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    return out.stderr.splitlines()[-1]


REPRODUCERS = {f.__name__.replace("_", "-"): f for f in (
    module_typo, hook_typo, wrong_group, bad_name, not_a_component, no_config, shared_name, unknown_name,
    missing_data, undocumented_option, strategy_raises, hook_raises, wrong_gradient_size, wrong_weights, fixtures_without_pytest,
)}


def test_every_documented_error_has_a_reproducer_and_every_reproducer_is_documented():
    assert sorted(_documented()) == sorted(REPRODUCERS)


@pytest.mark.parametrize("error", sorted(REPRODUCERS))
def test_the_guide_shows_what_mtlx_prints(error, distribution, tmp_path):
    printed = REPRODUCERS[error](distribution, tmp_path)
    documented = _documented().get(error, "(not documented)")
    assert _matches(documented, printed), f"\nguide:   {documented}\nprinted: {printed}"
