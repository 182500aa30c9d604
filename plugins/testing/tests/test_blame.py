"""label: how a conformance failure names the component, registered or not."""

from __future__ import annotations

from mtlx import PluginError
from mtlx.registry import Registries
from mtlx_testing.blame import label
from mtlx_testing.plugin import ToyDataset, ToyWeighted


class _Other(ToyWeighted):
    """Another owner's weighting of the same name."""


def test_label_names_a_registered_component_by_class_or_instance_and_an_unregistered_one_by_distribution():
    regs = Registries()
    regs.strategies.register("ew", ToyWeighted, owner="mtlx-baselines==0.1.0 (baselines)")
    regs.strategies.register("ew", _Other, owner="third_pkg==2.0 (third)")
    regs.datasets.register("toy", ToyDataset, owner="mtlx-toys==3 (toys)")
    assert label(ToyDataset(ToyDataset.Config(), None), regs) == "dataset 'toy' from mtlx-toys==3 (toys)"
    assert label(_Other, regs) == "strategy 'ew' from third_pkg==2.0 (third)"
    assert label(PluginError, regs) == "PluginError from mtlx==0.1.0"  # unregistered: its module's distribution
