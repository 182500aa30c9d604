"""Registry: registration rules, lookups with suggestions, collisions, broken plugins."""

from __future__ import annotations

import attrs
import pytest

from mtlx import LossWeighting, PluginError, UnknownComponentError
from mtlx.errors import PluginLoadError
from mtlx.registry import Registries


class _S(LossWeighting):
    """A strategy."""

    @attrs.frozen
    class Config:
        pass

    def combine(self, losses, step):
        return losses.sum(), losses


def test_register_get_and_natural_sorted_listing():
    regs = Registries()
    for name in ("mgda", "rep-mtl", "gradnorm2", "gradnorm10"):
        regs.strategies.register(name, _S, owner="dist-a")
    assert regs.strategies.get("rep-mtl") is _S
    assert regs.strategies.list() == ["gradnorm2", "gradnorm10", "mgda", "rep-mtl"]
    assert regs.strategies.list("grad*") == ["gradnorm2", "gradnorm10"]
    assert regs.strategies.list(exclude=("grad*",)) == ["mgda", "rep-mtl"]
    assert regs.strategies.entry("mgda").summary == "A strategy."


def test_unknown_name_suggests_close_matches():
    regs = Registries()
    regs.strategies.register("rep-mtl", _S)
    with pytest.raises(UnknownComponentError, match=r"no strategy 'repmtl'; did you mean 'rep-mtl'\?"):
        regs.strategies.get("repmtl")


def test_duplicate_name_names_both_owners_and_stays_ambiguous():
    regs = Registries()
    regs.strategies.register("ew", _S, owner="mtlx-baselines==0.1.0 (baselines)")
    with pytest.raises(PluginError, match=r"registered twice: by mtlx-baselines==0.1.0 \(baselines\) and by other==2"):
        regs.strategies.register("ew", _S, owner="other==2")
    with pytest.raises(PluginError, match="more than one plugin: mtlx-baselines.*and other==2"):
        regs.strategies.get("ew")


@pytest.mark.parametrize(
    ("name", "obj", "match"),
    [
        ("Rep_MTL", _S, "kebab-case"),
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
