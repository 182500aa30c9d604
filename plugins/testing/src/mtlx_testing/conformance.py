"""Conformance checks, one per kind of component: what the engine relies on, checked the same way everywhere.

Every first-party plugin's tests call these on its components, and the
third-party template in ``examples/`` does too, so a plugin author learns the
contract from a failing assertion instead of from the engine's source::

    from mtlx_testing import check_dataset, check_strategy

    def test_my_strategy_conforms():
        check_strategy("my-strategy")

Each check raises ``AssertionError`` in one line naming the component, its
distribution, what it did and what was expected (an exception raised by the
component's own code included: :mod:`.blame`); each runs :func:`check_options` first.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from mtlx.build import strategy_by_name
from mtlx.engine.rng import load_rng_state, rng_state
from mtlx.errors import MtlxError
from mtlx.hooks import PluginManager
from mtlx.interfaces import Backbone, Dataset, Meter, MTOStrategy, StepResult, TaskSpec
from mtlx.interfaces.strategy import take_optimizer_step
from mtlx.registry import Registries
from mtlx.runner import seed_everything

from .blame import blame, label
from .checks import assert_same, assert_strategy_state_roundtrip
from .options import check_options
from .toy import ToyModel, make_step, toy_batch, toy_tasks

__all__ = ["check_backbone", "check_dataset", "check_meter", "check_options", "check_strategy"]


# -- strategies ---------------------------------------------------------------------------------


STEPS_PER_EPOCH = 2
#: the toy batches of a step's extra batches (``batches_per_step > 1``) are drawn from seeds from here on
EXTRA_SEEDS = 10_000
#: the toy held-out batch of step ``it`` (a strategy with a ``heldout_split``) is drawn from seed ``HELDOUT_SEEDS + it``
HELDOUT_SEEDS = 20_000
_BACKWARD = "it fills .grad of every shared and task parameter (their shapes) and returns a StepResult"


def _checked_result(result: object, tasks: Mapping[str, TaskSpec], where: str) -> None:
    """What ``backward`` returned is a StepResult with one finite weight per task (or none) and float diagnostics."""
    assert isinstance(result, StepResult), f"{where} returned {result!r}; expected: a StepResult"
    if result.weights is not None:
        assert set(result.weights) == set(tasks), (
            f"{where} returned weights for {list(result.weights)}; expected: one per task, {list(tasks)}"
        )
        assert all(math.isfinite(w) for w in result.weights.values()), f"{where} returned weights {result.weights}"
    with blame(where, "float() of its diagnostics", "{name: number}"):
        [float(v) for v in result.diagnostics.values()]


def _train(strategy: MTOStrategy, model: ToyModel, optimizer: torch.optim.Optimizer, tasks: Mapping[str, TaskSpec],
           iterations: range, what: str) -> dict[int, dict[str, torch.Tensor]]:
    """The engine's loop on toy batches (2 steps per epoch); every step's gradients, checked finite and complete."""
    record, epoch_losses = {}, []
    params = dict(model.named_parameters()) | {f"<extra {i}>": p for i, p in enumerate(strategy.extra_parameters())}
    for it in iterations:
        x, targets = toy_batch(tasks, seed=it)
        extra = [toy_batch(tasks, seed=EXTRA_SEEDS + it * strategy.batches_per_step + j)
                 for j in range(1, strategy.batches_per_step)]
        heldout = toy_batch(tasks, seed=HELDOUT_SEEDS + it) if strategy.heldout_split is not None else None
        step = make_step(model, x, targets, tasks, iteration=it, epoch=it // STEPS_PER_EPOCH, extra_batches=extra,
                         heldout_batch=heldout, learning_rate=optimizer.param_groups[0]["lr"])
        optimizer.zero_grad(set_to_none=True)
        with blame(what, f"step {it}: backward(step)", _BACKWARD):
            result = strategy.backward(step)
        losses = step.loss_vector().detach()
        assert bool(torch.isfinite(losses).all()), f"{what}: step {it}: losses {losses.tolist()}"
        _checked_result(result, tasks, f"{what}: step {it}: backward(step)")
        grads = {n: p.grad.detach().clone() for n, p in params.items() if p.grad is not None}
        missing = [n for n, _ in model.named_parameters() if n not in grads]
        assert not missing, f"{what}: step {it} left no gradient in {missing[:5]}"
        bad = [n for n, g in grads.items() if not bool(torch.isfinite(g).all())]
        assert not bad, f"{what}: step {it}: non-finite gradient in {bad[:5]}"
        record[it] = grads
        with blame(what, f"step {it}: the optimiser step", "optimizer.step(), or its own optimizer_step"):
            take_optimizer_step(strategy, step, optimizer)  # the engine's: a strategy may own the step (MTAdam)
        with blame(what, f"step {it}: after_step(step)", "it updates its own state after the optimiser step"):
            strategy.after_step(step)
        epoch_losses.append(losses)
        if (it + 1) % STEPS_PER_EPOCH == 0:
            mean = torch.stack(epoch_losses).mean(0)
            with blame(what, f"epoch {step.epoch}: on_epoch_end(epoch, mean_losses)", "{task: mean loss} is read"):
                strategy.on_epoch_end(step.epoch, dict(zip(tasks, mean.tolist(), strict=True)))
            epoch_losses = []
    return record


def check_strategy(name: str, options: Mapping[str, Any] | None = None, *, num_tasks: int = 3, steps: int = 6,
                   seed: int = 0, registries: Registries | None = None) -> None:
    """The installed strategy ``name`` (with ``options``) trained as the engine trains, on a toy model.

    Builds it from the registries; trains ``steps`` steps with Adam (2 steps
    per epoch, so epoch-based warm-ups such as DWA's, GradNorm's and STCH's
    are passed with the default 6), checking every step's losses, weights and
    gradients (finite; every shared and task parameter gets one); checks that
    ``state_dict`` round-trips and that the same seed gives the same
    gradients; then that resuming from a snapshot of model, optimiser and
    strategy state takes exactly the steps the uninterrupted run takes. A strategy with extra batches
    (``batches_per_step``) or a held-out split (``heldout_split``) gets toy batches of its own seeds for them,
    and the optimiser's learning rate as ``StepContext.learning_rate``. ``name`` (and a base it names) is looked
    up in ``registries``; None: the installed plugins, loaded afresh for this check.
    """
    options = dict(options or {})
    tasks = toy_tasks(num_tasks)
    registries = registries if registries is not None else PluginManager().registries
    check_options(registries.strategies.get(name), registries)
    what = registries.strategies.describe(name) + (f" {options}" if options else "")

    def build() -> MTOStrategy:
        try:
            return strategy_by_name(name, options, tasks, registries)
        except MtlxError:
            raise  # a bad option or name: the message already says what to change
        except Exception:
            with blame(what, "building it", "Config(**options) and the task names build it"):
                raise

    def setup(run_seed: int) -> tuple[ToyModel, MTOStrategy, torch.optim.Optimizer]:
        seed_everything(run_seed)  # before building: a strategy may seed its own generator from the run's RNG
        strategy = build()
        model = ToyModel(tasks)
        optimizer = torch.optim.Adam([*model.parameters(), *strategy.extra_parameters()], lr=1e-2)
        return model, strategy, optimizer

    model, strategy, optimizer = setup(seed)
    first = _train(strategy, model, optimizer, tasks, range(steps), what)
    snapshot = copy.deepcopy(
        {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "strategy": strategy.state_dict()}
    )
    rng = rng_state()  # what the engine checkpoints
    with blame(what, "load_state_dict(state_dict())", "a fresh instance takes the state it saved"):
        assert_strategy_state_roundtrip(strategy, build())
    load_rng_state(rng)
    uninterrupted = _train(strategy, model, optimizer, tasks, range(steps, 2 * steps), what)

    model2, strategy2, optimizer2 = setup(seed)
    again = _train(strategy2, model2, optimizer2, tasks, range(steps), what)
    assert_same(first, again, f"{what}: two runs with one seed: the gradient of step")

    model3, strategy3, optimizer3 = setup(seed + 1)  # other initial state: everything must come from the snapshot
    model3.load_state_dict(snapshot["model"])
    strategy3.load_state_dict(snapshot["strategy"])
    optimizer3.load_state_dict(snapshot["optimizer"])
    load_rng_state(rng)
    resumed = _train(strategy3, model3, optimizer3, tasks, range(steps, 2 * steps), what)
    assert_same(uninterrupted, resumed, f"{what}: after resume (state_dict misses some state): the gradient of step")


# -- meters -------------------------------------------------------------------------------------


def check_meter(make_meter: Callable[[], Meter], prediction: torch.Tensor, target: torch.Tensor, *,
                batch_independent: bool = True, what: str | None = None) -> dict[str, float]:
    """A meter fed ``prediction`` and ``target`` (a batch of at least 2): returns its metrics.

    Checks that ``compute`` gives a float for exactly the metrics of
    ``higher_is_better``; that ``reset`` forgets; and, when
    ``batch_independent`` (meters that keep sufficient statistics), that two
    half batches give the same result as the whole.
    Meters that average per-batch statistics by design pass False.
    ``what`` names the meter in messages (default: its class and distribution).
    """
    meter = make_meter()
    what = what or label(meter)
    assert isinstance(meter, Meter), f"{what}: the factory returned {type(meter).__name__}, not a Meter"
    call = f"update(prediction {tuple(prediction.shape)}, target {tuple(target.shape)}) then compute()"
    with blame(what, call, "it accumulates the batch and gives {metric: float}"):
        meter.update(prediction, target)
        whole = meter.compute()
    assert set(whole) == set(meter.higher_is_better), (
        f"{what}: compute() gives {sorted(whole)} but higher_is_better names {sorted(meter.higher_is_better)}"
    )
    assert all(isinstance(v, float) for v in whole.values()), f"{what}: compute() must give floats, got {whole}"
    meter.reset()
    half = len(prediction) // 2
    meter.update(prediction[:half], target[:half])
    meter.update(prediction[half:], target[half:])
    split = meter.compute()
    if batch_independent:
        for metric, value in whole.items():
            assert math.isclose(value, split[metric], rel_tol=1e-5, abs_tol=1e-7) or (
                math.isnan(value) and math.isnan(split[metric])
            ), f"{what}: {metric} over the whole batch {value} != over its two halves {split[metric]}"
    _check_merge(make_meter, prediction[:half], target[:half], prediction[half:], target[half:], split, what)
    meter.reset()
    meter.update(prediction, target)
    assert _same_metrics(meter.compute(), whole), f"{what}: reset() did not forget the earlier batches"
    return whole


def _check_merge(make_meter: Callable[[], Meter], p1: torch.Tensor, t1: torch.Tensor, p2: torch.Tensor,
                 t2: torch.Tensor, expected: Mapping[str, float], what: str) -> None:
    """A meter fed the first half, merged with one fed the second, gives the metrics of one meter fed both
    (data-parallel evaluation merges the processes' meters: :meth:`Meter.merge`)."""
    first, second = make_meter(), make_meter()
    first.update(p1, t1)
    second.update(p2, t2)
    with blame(what, "merge(a meter fed other batches) then compute()", "it adds the other meter's statistics"):
        first.merge(second)
        merged = first.compute()
    for metric, value in expected.items():
        assert math.isclose(value, merged[metric], rel_tol=1e-9, abs_tol=1e-12) or (
            math.isnan(value) and math.isnan(merged[metric])
        ), f"{what}: {metric} after merge() {merged[metric]} != fed both halves {value}"


def _same_metrics(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    return a.keys() == b.keys() and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


# -- datasets -----------------------------------------------------------------------------------


def _prediction_for(spec: TaskSpec, target: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random raw head output of the shape the engine would give for ``target``."""
    size = (target.shape[0], spec.out_channels, *(target.shape[-2:] if spec.dense else ()))
    return torch.randn(size, generator=generator)


def check_dataset(dataset: Dataset, *, samples: int = 2, batch_independent_meters: bool = True,
                  registries: Registries | None = None) -> None:
    """A built dataset: tasks, splits, samples, ``collate``, meters and the stored baseline.

    Checks that ``tasks`` maps each name to its TaskSpec; that the splits
    include ``train`` and ``val`` or ``test`` and are not empty; that a
    sample is ``(input, {task: target})`` (one ``(input, target)`` stream per
    task when ``multi_input``); that ``collate`` batches ``samples`` of them
    with the targets of exactly the tasks and, for tensor inputs, the
    per-sample ``input_shape`` the model is built for; that reading an
    evaluation sample twice gives the same values; that each task's meter
    passes :func:`check_meter` on the batch; and that ``baseline()`` is None
    or finite numbers for metrics the meters report. Messages name it as ``registries`` know it (None: the
    installed plugins).
    """
    check_options(dataset, registries)
    name = label(dataset, registries)
    with blame(name, "tasks / splits", "{task: TaskSpec} and the split names"):
        tasks, splits = dataset.tasks, dataset.splits
    assert tasks, f"{name}: no tasks"
    for task, spec in tasks.items():
        assert isinstance(spec, TaskSpec) and spec.name == task, f"{name}: tasks[{task!r}] is not its TaskSpec"
    assert "train" in splits and ({"val", "test"} & set(splits)), f"{name}: splits {splits} lack train or val/test"
    evaluation = "test" if "test" in splits else "val"
    with blame(name, f"split({evaluation!r})", "a torch Dataset of (input, {task: target}) samples"):
        streams = dataset.split(evaluation)
    if dataset.multi_input:
        assert isinstance(streams, Mapping) and set(streams) == set(tasks), (
            f"{name}: multi_input splits must map each task to its dataset, got {type(streams).__name__}"
        )
    else:
        streams = {None: streams}
    generator = torch.Generator().manual_seed(0)
    for task, stream in streams.items():
        where = f"{name} split {evaluation!r}" + (f" task {task!r}" if task else "")
        with blame(where, f"len() and reading samples 0..{samples - 1}", "(input, {task: target}) samples"):
            assert len(stream) >= samples, f"{where}: {len(stream)} samples, need {samples} for the check"
            items = [stream[i] for i in range(samples)]
            assert_same(stream[0], items[0], f"{where}: reading sample 0 twice: sample")
        with blame(where, f"collate() of {samples} samples", "(inputs, {task: target}), batched"):
            inputs, targets = dataset.collate(items) if task is None else torch.utils.data.default_collate(items)
        batch_targets = targets if task is None else {task: targets}
        expected = set(tasks) if task is None else {task}
        assert isinstance(batch_targets, Mapping) and set(batch_targets) == expected, (
            f"{where}: collate gives targets for {sorted(batch_targets) if isinstance(batch_targets, Mapping) else type(batch_targets).__name__}, "
            f"expected {sorted(expected)}"
        )
        if isinstance(inputs, torch.Tensor):
            assert tuple(inputs.shape) == (samples, *dataset.input_shape), (
                f"{where}: a batch of {samples} inputs has shape {tuple(inputs.shape)}, "
                f"but input_shape is {dataset.input_shape}"
            )
        for t, target in batch_targets.items():
            spec = tasks[t]
            check_meter(spec.meter, _prediction_for(spec, target, generator), target,
                        batch_independent=batch_independent_meters, what=f"{name} task {t!r} meter")
    with blame(name, "baseline()", "None or {task: {metric: value}}"):
        baseline = dataset.baseline()
    if baseline is not None:
        for task, metrics in baseline.items():
            assert task in tasks, f"{name}: baseline for unknown task {task!r}"
            known = set(tasks[task].higher_is_better)
            for metric, value in metrics.items():
                assert metric in known, f"{name}: baseline {task}.{metric} is not a metric of its meter ({sorted(known)})"
                assert math.isfinite(float(value)), f"{name}: baseline {task}.{metric} = {value}"


# -- backbones ----------------------------------------------------------------------------------


def check_backbone(make: Callable[[], Backbone], input_shape: Sequence[int], *, batch: int = 2, seed: int = 0,
                   registries: Registries | None = None) -> None:
    """A backbone built by ``make()`` for per-sample ``input_shape``.

    Checks that it declares ``out_shape`` and its output on a batch has that
    per-sample shape and is finite; that every parameter receives a gradient;
    that eval-mode forwards are deterministic; and that a fresh instance
    loaded with its ``state_dict`` computes the same output. Messages name it as ``registries`` know it (None:
    the installed plugins).
    """
    seed_everything(seed)
    with blame("check_backbone", "make()", "a Backbone built from its Config and the input shape"):
        backbone = make()
    name = label(backbone, registries)
    assert isinstance(backbone, Backbone), f"{name} is not a mtlx Backbone"
    check_options(backbone, registries)
    x = torch.randn(batch, *input_shape, generator=torch.Generator().manual_seed(seed))
    with blame(name, f"forward(x of shape {tuple(x.shape)})", "one tensor Z of shape (batch, *out_shape)"):
        z = backbone(x)
    assert isinstance(z, torch.Tensor), f"{name}: forward must return one tensor Z, got {type(z).__name__}"
    assert tuple(z.shape) == (batch, *backbone.out_shape), (
        f"{name}: output {tuple(z.shape)} but out_shape {tuple(backbone.out_shape)} (batch {batch})"
    )
    assert bool(torch.isfinite(z).all()), f"{name}: non-finite output"
    z.square().mean().backward()
    missing = [n for n, p in backbone.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"{name}: no gradient reaches {missing[:5]}"
    backbone.eval()
    fresh = make()
    fresh.load_state_dict(backbone.state_dict())
    fresh.eval()
    with torch.no_grad():
        once, twice, loaded = backbone(x), backbone(x), fresh(x)
    assert torch.equal(once, twice), f"{name}: two eval-mode forwards differ"
    assert torch.allclose(once, loaded, rtol=1e-5, atol=1e-6), f"{name}: a copy loaded from state_dict differs"
