"""Registry: registration rules, lookups with suggestions, collisions, broken plugins."""

from __future__ import annotations

import pytest

from mtlx import LossWeighting, PluginError, UnknownComponentError
from mtlx.errors import PluginLoadError
from mtlx.registry import Registries
from mtlx.testing.plugin import ToyWeighted


def test_register_get_and_natural_sorted_listing():
    regs = Registries()
    for name in ("mgda", "rep-mtl", "gradnorm2", "gradnorm10"):
        regs.strategies.register(name, ToyWeighted, owner="dist-a")
    assert regs.strategies.get("rep-mtl") is ToyWeighted
    assert regs.strategies.list() == ["gradnorm2", "gradnorm10", "mgda", "rep-mtl"]
    assert regs.strategies.list("grad*") == ["gradnorm2", "gradnorm10"]
    assert regs.strategies.list(exclude=("grad*",)) == ["mgda", "rep-mtl"]
    assert regs.strategies.entry("mgda").summary == ToyWeighted.__doc__.splitlines()[0]


def test_unknown_name_suggests_close_matches():
    regs = Registries()
    regs.strategies.register("rep-mtl", ToyWeighted)
    with pytest.raises(UnknownComponentError, match=r"no strategy 'repmtl'; did you mean 'rep-mtl'\?"):
        regs.strategies.get("repmtl")


def test_duplicate_name_names_both_owners_and_stays_ambiguous():
    regs = Registries()
    regs.strategies.register("ew", ToyWeighted, owner="mtlx-baselines==0.1.0 (baselines)")
    with pytest.raises(PluginError, match=r"registered twice: by mtlx-baselines==0.1.0 \(baselines\) and by other==2"):
        regs.strategies.register("ew", ToyWeighted, owner="other==2")
    with pytest.raises(PluginError, match="more than one plugin: mtlx-baselines.*and other==2"):
        regs.strategies.get("ew")


@pytest.mark.parametrize(
    ("name", "obj", "match"),
    [
        ("Rep_MTL", ToyWeighted, "kebab-case"),
        ("ok", object, "expected a subclass of MTOStrategy"),
        ("ok", type("NoConfig", (LossWeighting,), {"combine": lambda s, l, st: None}), "Config must be an attrs class"),
    ],
)
def test_invalid_registrations_are_rejected_with_the_owner(name, obj, match):
    with pytest.raises(PluginError, match=match):
        Registries().strategies.register(name, obj, owner="pkg==1")


def test_lookup_of_a_broken_plugins_name_raises_its_error():
    cause = ImportError("No module named 'missing_dep'")
    regs = Registries(broken={"fancy": PluginLoadError("fancy", "fancy-pkg==1.0", "fancy.plugin", cause)})
    with pytest.raises(PluginError, match=r"strategy 'fancy' is unavailable: .*fancy-pkg==1.0.*missing_dep"):
        regs.strategies.get("fancy")
