"""The conformance checks catch what they promise to catch (each fed a component broken on purpose)."""

from __future__ import annotations

import types

import attrs
import pytest
import torch
from torch import nn

import mtlx
from mtlx.metrics import MAEMeter
from mtlx.testing import check_backbone, check_dataset, check_meter, check_strategy
from mtlx.testing.plugin import ToyDataset


class _Forgetful(mtlx.LossWeighting):
    """Weights change with a step counter it does not save: resuming changes the run."""

    @attrs.frozen
    class Config:
        pass

    def __init__(self, config, *, tasks):
        super().__init__(config, tasks=tasks)
        self.calls = 0

    def combine(self, losses, step):
        self.calls += 1
        weights = torch.full_like(losses, float(self.calls))
        return (weights * losses).sum(), weights


class _HeadsOnly(mtlx.MTOStrategy):
    """Writes gradients into the heads only."""

    @attrs.frozen
    class Config:
        pass

    def backward(self, step):
        step.backward_heads()
        return mtlx.StepResult()


def _register(**strategies):
    def mtlx_register(registry):
        for name, cls in strategies.items():
            registry.strategies.register(name, cls)

    mtlx.get_plugin_manager().register_object(types.SimpleNamespace(mtlx_register=mtlx.hookimpl(mtlx_register)), "broken")


def test_check_strategy_passes_a_conforming_strategy_and_catches_missing_state_and_gradients():
    from mtlx.testing.plugin import ToyWeighted

    _register(forgetful=_Forgetful, **{"heads-only": _HeadsOnly, "toy-weighted": ToyWeighted})
    check_strategy("toy-weighted")
    with pytest.raises(AssertionError, match=r"strategy 'forgetful': after resume .*: the gradient of step\[6\]\.encoder.* differs"):
        check_strategy("forgetful")
    with pytest.raises(AssertionError, match=r"strategy 'heads-only': step 0 left no gradient in \['encoder"):
        check_strategy("heads-only")


class _WrongKeysMeter(MAEMeter):
    higher_is_better = {"mae": False, "rmse": False}


class _BatchMeanMeter(MAEMeter):
    """Averages per-batch means: depends on the batching."""

    def reset(self):
        super().reset()
        self.batches = []

    def update(self, prediction, target):
        self.batches.append(float((prediction.squeeze(-1) - target).abs().mean()))

    def compute(self):
        return {"mae": sum(self.batches) / len(self.batches)}


def test_check_meter_catches_missing_metrics_and_batch_dependence():
    prediction, target = torch.tensor([[1.0], [2.0], [4.0]]), torch.tensor([0.0, 0.0, 0.0])
    assert check_meter(MAEMeter, prediction, target) == {"mae": pytest.approx(7 / 3)}
    with pytest.raises(AssertionError, match=r"compute\(\) gives \['mae'\] but higher_is_better names \['mae', 'rmse'\]"):
        check_meter(_WrongKeysMeter, prediction, target)
    with pytest.raises(AssertionError, match="over the whole batch .* != over its two halves"):
        check_meter(_BatchMeanMeter, prediction, target)
    check_meter(_BatchMeanMeter, prediction, target, batch_independent=False)


class _DropsATask(ToyDataset):
    def collate(self, samples):
        inputs, targets = torch.utils.data.default_collate(samples)
        targets.pop("reg1")
        return inputs, targets


class _WrongShape(ToyDataset):
    @property
    def input_shape(self):
        return (3, 8, 8)


def test_check_dataset_catches_a_collate_that_drops_a_task_and_a_wrong_input_shape():
    check_dataset(ToyDataset(ToyDataset.Config(), None))
    with pytest.raises(AssertionError, match=r"collate gives targets for \['seg0'\], expected \['reg1', 'seg0'\]"):
        check_dataset(_DropsATask(ToyDataset.Config(), None))
    with pytest.raises(AssertionError, match=r"has shape \(2, 3, 6, 6\), but input_shape is \(3, 8, 8\)"):
        check_dataset(_WrongShape(ToyDataset.Config(), None))


class _Backbone(mtlx.Backbone):
    @attrs.frozen
    class Config:
        claimed: int = 4
        dead: bool = False

    def __init__(self, config, input_shape):
        super().__init__()
        self.linear = nn.Linear(input_shape[0], 4)
        self.unused = nn.Linear(2, 2) if config.dead else None
        self.out_shape = (config.claimed,)

    def forward(self, x):
        return self.linear(x)


def test_check_backbone_catches_a_wrong_out_shape_and_parameters_without_gradient():
    check_backbone(lambda: _Backbone(_Backbone.Config(), (5,)), (5,))
    with pytest.raises(AssertionError, match=r"output \(2, 4\) but out_shape \(3,\)"):
        check_backbone(lambda: _Backbone(_Backbone.Config(claimed=3), (5,)), (5,))
    with pytest.raises(AssertionError, match=r"no gradient reaches \['unused.weight', 'unused.bias'\]"):
        check_backbone(lambda: _Backbone(_Backbone.Config(dead=True), (5,)), (5,))
