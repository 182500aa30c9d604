"""The conformance checks catch what they promise to catch (each fed a component broken on purpose)."""

from __future__ import annotations

import types

import attrs
import pytest
import torch
from torch import nn

import mtlx
from mtlx.metrics import MAEMeter
from mtlx_testing import check_backbone, check_dataset, check_meter, check_options, check_strategy
from mtlx_testing.plugin import ToyDataset


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
    """The installed plugins' registries and, from a plugin named ``broken``, ``strategies``."""
    def mtlx_register(registry):
        for name, cls in strategies.items():
            registry.strategies.register(name, cls)

    manager = mtlx.PluginManager()
    manager.register_object(types.SimpleNamespace(mtlx_register=mtlx.hookimpl(mtlx_register)), "broken")
    return manager.registries


def test_check_strategy_passes_a_conforming_strategy_and_catches_missing_state_and_gradients():
    from mtlx_testing.plugin import ToyWeighted

    registries = _register(forgetful=_Forgetful, **{"heads-only": _HeadsOnly, "toy-weighted": ToyWeighted})
    check_strategy("toy-weighted", registries=registries)
    with pytest.raises(AssertionError, match=r"strategy 'forgetful' from <local> \(broken\): after resume .*: "
                       r"the gradient of step\[6\]\.encoder.* differs"):
        check_strategy("forgetful", registries=registries)
    with pytest.raises(AssertionError, match=r"strategy 'heads-only' from <local> \(broken\): step 0 left no gradient in \['encoder"):
        check_strategy("heads-only", registries=registries)


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

    def merge(self, other):
        self.batches += other.batches


class _SumsMergedMeter(_BatchMeanMeter):
    merge = MAEMeter.merge  # adds sums that its update never fills


class _NoMergeMeter(mtlx.Meter):
    higher_is_better = MAEMeter.higher_is_better

    def __init__(self):
        self.inner = MAEMeter()

    def reset(self):
        self.inner.reset()

    def update(self, prediction, target):
        self.inner.update(prediction, target)

    def compute(self):
        return self.inner.compute()


def test_check_meter_catches_missing_metrics_and_batch_dependence():
    prediction, target = torch.tensor([[1.0], [2.0], [4.0]]), torch.tensor([0.0, 0.0, 0.0])
    assert check_meter(MAEMeter, prediction, target) == {"mae": pytest.approx(7 / 3)}
    with pytest.raises(AssertionError, match=r"compute\(\) gives \['mae'\] but higher_is_better names \['mae', 'rmse'\]"):
        check_meter(_WrongKeysMeter, prediction, target)
    with pytest.raises(AssertionError, match="over the whole batch .* != over its two halves"):
        check_meter(_BatchMeanMeter, prediction, target)
    check_meter(_BatchMeanMeter, prediction, target, batch_independent=False)


def test_check_meter_catches_a_merge_that_loses_statistics():
    """Data-parallel evaluation merges the processes' meters: merged must equal one meter fed both halves."""
    prediction, target = torch.tensor([[1.0], [2.0], [4.0]]), torch.tensor([0.0, 0.0, 0.0])
    with pytest.raises(AssertionError, match=r"mae after merge\(\) 1.0 != fed both halves 2.0"):
        check_meter(_SumsMergedMeter, prediction, target, batch_independent=False)
    with pytest.raises(AssertionError, match=r"merge\(a meter fed other batches\).*does not implement Meter.merge"):
        check_meter(_NoMergeMeter, prediction, target)


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
        """Options.

        Attributes:
            claimed: the out_shape it declares.
            dead: add a layer that forward never uses.
        """

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


class _ShortGradient(mtlx.MTOStrategy):
    """Writes a shared gradient one element short (the bug of a strategy that drops a parameter)."""

    @attrs.frozen
    class Config:
        pass

    def backward(self, step):
        step.backward_heads(retain_graph=True)
        step.set_shared_grad(step.shared_grads().sum(0)[:-1])
        return mtlx.StepResult()


class _Raises(mtlx.LossWeighting):
    """Fails on its first step."""

    @attrs.frozen
    class Config:
        pass

    def combine(self, losses, step):
        raise RuntimeError("weights not ready\n(a second line)")


class _WrongWeights(mtlx.LossWeighting):
    """Returns one weight too few."""

    @attrs.frozen
    class Config:
        pass

    def backward(self, step):
        step.backward(step.loss_vector().sum())
        return mtlx.StepResult(weights={"seg0": 1.0})

    def combine(self, losses, step):
        return losses.sum(), torch.ones_like(losses)


class _Undocumented(mtlx.LossWeighting):
    """An option nobody documented."""

    @attrs.frozen
    class Config:
        """Options.

        Attributes:
            low: documented.
        """

        low: float = 0.0
        scale: float = 1.0

    def combine(self, losses, step):
        return (self.config.scale * losses).sum(), losses


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        (_ShortGradient, (r"^strategy 'short' from <local> \(broken\): step 0: backward\(step\) raised ValueError: "
                          r"gradient vector has \d+ elements, parameters need \d+; expected: it fills \.grad of every "
                          r"shared and task parameter \(their shapes\) and returns a StepResult$")),
        (_Raises, (r"^strategy 'short' from <local> \(broken\): step 0: backward\(step\) raised RuntimeError: "
                   r"weights not ready; expected: .*$")),
        (_WrongWeights, (r"^strategy 'short' from <local> \(broken\): step 0: backward\(step\) returned weights "
                         r"for \['seg0'\]; expected: one per task, \['seg0', 'reg1', 'seg2'\]$")),
    ],
    ids=["short-gradient", "raises", "wrong-weights"],
)
def test_check_strategy_names_the_component_its_distribution_and_what_was_expected_in_one_line(strategy, message):
    registries = _register(short=strategy)
    with pytest.raises(AssertionError, match=message) as failed:
        check_strategy("short", registries=registries)
    assert len(str(failed.value).splitlines()) == 1


def test_check_options_fails_on_an_undocumented_option_and_every_check_runs_it():
    with pytest.raises(AssertionError, match=r"^_Undocumented from module .*test_conformance: option 'scale' has no "
                       r"doc; expected: an entry 'scale: \.\.\.' in the Attributes: section of the Config docstring "
                       r"\(mtlx list --details shows it\)$"):
        check_options(_Undocumented)
    check_options(_Forgetful)  # no options: nothing to document
    registries = _register(undocumented=_Undocumented)
    with pytest.raises(AssertionError, match=r"^strategy 'undocumented' from <local> \(broken\): option 'scale' has no doc"):
        check_strategy("undocumented", registries=registries)

    class Quiet(_Backbone):
        @attrs.frozen
        class Config:
            claimed: int = 4
            dead: bool = False

    with pytest.raises(AssertionError, match=r"^Quiet from module .*: option 'claimed' has no doc"):
        check_backbone(lambda: Quiet(Quiet.Config(), (5,)), (5,))

    class QuietData(ToyDataset):
        @attrs.frozen(kw_only=True)
        class Config(ToyDataset.Config):
            """Options.

            Attributes:
                num_tasks: documented here too.
            """

            extra: int = 0

    with pytest.raises(AssertionError, match=r"^QuietData from module .*: option 'extra' has no doc"):
        check_dataset(QuietData(QuietData.Config(), None))


class _SplitFails(ToyDataset):
    def split(self, name):
        raise OSError(f"cannot open {name}.npz")


def test_check_dataset_names_a_dataset_that_raises_and_what_was_expected():
    with pytest.raises(AssertionError, match=r"^_SplitFails from module .*test_conformance: split\('test'\) raised "
                       r"OSError: cannot open test.npz; expected: a torch Dataset of \(input, \{task: target\}\) samples$"):
        check_dataset(_SplitFails(ToyDataset.Config(), None))
    registered = mtlx.PluginManager()
    registered.register_object(types.SimpleNamespace(mtlx_register=mtlx.hookimpl(
        lambda registry: registry.datasets.register("split-fails", _SplitFails))), "data-plugin")
    with pytest.raises(AssertionError, match=r"^dataset 'split-fails' from <local> \(data-plugin\): split\('test'\) raised"):
        check_dataset(_SplitFails(ToyDataset.Config(), None), registries=registered.registries)
