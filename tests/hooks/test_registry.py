"""Registry: registration rules, lookups with suggestions, collisions, broken plugins."""

from __future__ import annotations

import pytest

from mtlx import LossWeighting, PluginError, UnknownComponentError
from mtlx.errors import PluginLoadError
from mtlx.registry import Registries
from mtlx_testing.plugin import ToyDataset, ToyWeighted


def test_register_get_and_natural_sorted_listing():
    regs = Registries()
    for name in ("mgda", "rep-mtl", "gradnorm2", "gradnorm10"):
        regs.strategies.register(name, ToyWeighted, owner="dist-a")
    assert regs.strategies.get("rep-mtl") is ToyWeighted
    assert regs.strategies.list() == ["gradnorm2", "gradnorm10", "mgda", "rep-mtl"]
    assert regs.strategies.list("grad*") == ["gradnorm2", "gradnorm10"]
    assert regs.strategies.entry("mgda").summary == ToyWeighted.__doc__.splitlines()[0]


def test_unknown_name_suggests_close_matches():
    regs = Registries()
    regs.strategies.register("rep-mtl", ToyWeighted)
    with pytest.raises(UnknownComponentError, match=r"no strategy 'repmtl'; did you mean 'rep-mtl'\?"):
        regs.strategies.get("repmtl")


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


class _Other(ToyWeighted):
    """Another owner's weighting of the same name."""


def _two_owners() -> Registries:
    regs = Registries()
    regs.strategies.register("ew", ToyWeighted, owner="mtlx-baselines==0.1.0 (baselines)")
    regs.strategies.register("ew", _Other, owner="third_pkg==2.0 (third)")
    return regs


def test_a_name_two_plugins_register_is_refused_bare_with_both_choices_and_each_owner_stays_usable():
    regs = _two_owners()
    with pytest.raises(PluginError) as refused:
        regs.strategies.get("ew")
    assert str(refused.value) == (
        "strategy 'ew' is registered by 2 plugins, mtlx-baselines==0.1.0 (baselines) and third_pkg==2.0 (third): "
        "name one of 'mtlx-baselines:ew', 'third-pkg:ew'"
    )
    assert regs.strategies.get("mtlx-baselines:ew") is ToyWeighted
    assert regs.strategies.get("third-pkg:ew") is _Other  # the distribution, normalised as pip does
    assert regs.strategies.get("Third_Pkg:ew") is _Other
    assert regs.strategies.get("third:ew") is _Other  # or the entry point's name
    assert regs.strategies.list() == ["mtlx-baselines:ew", "third-pkg:ew"]
    assert "ew" in regs.strategies


def test_a_qualified_name_whose_owner_has_no_such_component_names_the_owners_that_do():
    regs = _two_owners()
    regs.strategies.register("mgda", ToyWeighted, owner="mtlx-baselines==0.1.0 (baselines)")
    with pytest.raises(UnknownComponentError, match=r"^no strategy 'nope:ew': 'ew' comes from "
                       r"'mtlx-baselines:ew' or 'third-pkg:ew'$"):
        regs.strategies.get("nope:ew")
    with pytest.raises(UnknownComponentError, match=r"^no strategy 'third:mgda': 'mgda' comes from 'mtlx-baselines:mgda'$"):
        regs.strategies.get("third:mgda")
    assert regs.strategies.get("mtlx-baselines:mgda") is ToyWeighted  # a qualified unique name works too


def test_a_lookup_that_prefers_some_distributions_resolves_a_shared_name_to_theirs():
    regs = _two_owners()
    assert regs.preferring(["mtlx_baselines"]).strategies.get("ew") is ToyWeighted
    assert regs.preferring(["third-pkg"]).strategies.get("ew") is _Other
    with pytest.raises(PluginError, match="registered by 2 plugins"):
        regs.preferring(["torch"]).strategies.get("ew")
    with pytest.raises(PluginError, match="registered by 2 plugins"):
        regs.strategies.get("ew")  # the view left the registries as they were


def test_the_same_plugin_registering_a_name_twice_is_still_an_error():
    regs = Registries()
    regs.strategies.register("ew", ToyWeighted, owner="pkg==1 (p)")
    with pytest.raises(PluginError, match=r"strategy 'ew' is registered twice by pkg==1 \(p\)"):
        regs.strategies.register("ew", _Other, owner="pkg==1 (p)")


@pytest.mark.parametrize("typed", ["RepMTL", "Rep_MTL", "REP-MTL", "rep_mtl"])
def test_case_and_separator_variants_get_a_did_you_mean(typed):
    regs = Registries()
    regs.strategies.register("rep-mtl", ToyWeighted)
    regs.strategies.register("ew", ToyWeighted)
    with pytest.raises(UnknownComponentError, match=rf"no strategy '{typed}'; did you mean 'rep-mtl'\?"):
        regs.strategies.get(typed)


def test_an_unknown_name_lists_the_broken_plugins_that_may_provide_it():
    cause = ModuleNotFoundError("No module named 'wine_mt.plugn'")
    broken = {"wine": PluginLoadError("wine", "wine-mt==0.1.0", "wine_mt.plugn", cause),
              "fancy": PluginLoadError("fancy", "mtlx-fancy==1.0", "fancy.plugin", ImportError("libfancy"))}
    regs = Registries(broken=broken, catalogued={"fancy"})  # the catalogue says what fancy provides: not this
    regs.datasets.register("digits", ToyDataset)
    with pytest.raises(UnknownComponentError) as unknown:
        regs.datasets.get("wine-mt")
    assert str(unknown.value) == (
        "no dataset 'wine-mt' (available: digits); a plugin that failed to load may provide it: "
        "Error loading mtlx plugin 'wine' (wine-mt==0.1.0, wine_mt.plugn): "
        "ModuleNotFoundError: No module named 'wine_mt.plugn'"
    )


def test_an_unknown_name_points_at_entry_points_in_a_group_mtlx_does_not_read():
    regs = Registries(misplaced=["'wine' = wine_mt.plugin of wine-mt==0.1.0 is in group 'mtlx.plugins'"])
    with pytest.raises(UnknownComponentError, match=r"\(available: none installed\); an entry point mtlx does not "
                       r"read may provide it: 'wine' = wine_mt.plugin of wine-mt==0.1.0 is in group 'mtlx.plugins' "
                       r"\(the group must be 'mtlx'\)$"):
        regs.datasets.get("wine-mt")


def test_describe_names_a_component_and_its_distribution():
    regs = _two_owners()
    assert regs.strategies.describe("mtlx-baselines:ew") == "strategy 'ew' from mtlx-baselines==0.1.0 (baselines)"
