"""Problems shared by the benchmark suites that compare two ways of doing the same step.

A comparison is only fair on the identical model, batch and data, so both
sides get a copy of one :class:`Problem`:

- ``digits``: the ``digits`` defaults built through :mod:`mtlx.build`
  (``digits-cnn`` + ``conv`` heads + ``hps``; seg, depth, cls), batch 64;
- ``resnet18-64``: a ResNet-18 trunk (``mtlx-archs``) at 3x64x64 with T=3
  dense ``conv`` heads (``mtlx_testing.toy_tasks``: two per-pixel classifications, one
  regression), batch 16.

Torch runs on one thread in these suites (``one_thread``): the machine is a
shared 2-core CPU and ratios measured on one thread are the stable ones.
``peak_mb`` measures the peak CPU memory of a call the same way for every suite.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import attrs
import pytest
import torch
from torch._C._profiler import _EventType
from torch.profiler import ProfilerActivity, profile, record_function

from mtlx.build import build_dataset, build_model
from mtlx.config import resolve_run_config
from mtlx.interfaces import MultiTaskModel, TaskSpec
from mtlx_testing import torch_threads, toy_batch, toy_tasks

DIGITS_BATCH = 64
RESNET_BATCH = 16
RESNET_SIZE = 64
_MEASURED = "peak_mb/measured-call"


@attrs.frozen
class Problem:
    """One model and one batch; ``model`` is the pristine copy (deep-copy it before training)."""

    name: str
    model: MultiTaskModel
    tasks: dict[str, TaskSpec]
    x: torch.Tensor
    targets: dict[str, torch.Tensor]

    @property
    def shared_size(self) -> int:
        return sum(p.numel() for p in self.model.shared_parameters() if p.requires_grad)


def digits_problem() -> Problem:
    config = resolve_run_config(
        [{"dataset.name": "digits", "dataset.train_size": DIGITS_BATCH, "dataset.val_size": 1, "dataset.test_size": 1}]
    )
    dataset = build_dataset(config)
    torch.manual_seed(0)
    model = build_model(config, dataset.tasks, dataset.input_shape)
    split = dataset.split("train")
    x, targets = dataset.collate([split[i] for i in range(DIGITS_BATCH)])
    return Problem(name="digits", model=model, tasks=dict(dataset.tasks), x=x, targets=targets)


def resnet18_problem() -> Problem:
    # the dataset section only seeds the defaults; the model is built for our own tasks and input shape
    config = resolve_run_config(
        [{"dataset.name": "digits", "backbone.name": "resnet18", "head.name": "conv", "arch.name": "hps"}]
    )
    tasks = toy_tasks(3)
    torch.manual_seed(0)
    model = build_model(config, tasks, (3, RESNET_SIZE, RESNET_SIZE))
    x, targets = toy_batch(tasks, batch_size=RESNET_BATCH, size=RESNET_SIZE)
    return Problem(name="resnet18-64", model=model, tasks=tasks, x=x, targets=targets)


PROBLEMS = {"digits": digits_problem, "resnet18-64": resnet18_problem}


@pytest.fixture(scope="module")
def bench_problem(request: pytest.FixtureRequest) -> Problem:
    """Parametrise with ``@pytest.mark.parametrize("bench_problem", [...], indirect=True)``."""
    return PROBLEMS[request.param]()


@pytest.fixture
def one_thread() -> Iterator[None]:
    with torch_threads(1):
        yield


def _peak_mb(fn: Callable[[], None]) -> float:
    """Peak CPU memory (MB) a call of ``fn`` allocates above what is live when it starts, in the steady state.

    ``fn`` runs twice under the torch profiler with ``profile_memory``; the
    allocation events of the second call, in time order, against the running
    total at its start give the peak. The first call makes the memory a step
    inherits from the previous one (last step's gradients, freed by
    ``zero_grad``) known to the profiler, so its release counts. The
    allocation timeline comes from the profiler's event tree (exact times; the
    aggregated ``prof.events()`` book an op's frees at its start, before its
    children allocate, and under-count the peak). Tensors only: no Python
    objects, no allocator caching.
    """
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
        with record_function(_MEASURED):
            fn()
    nodes = list(prof.profiler.kineto_results.experimental_event_tree())
    events, window = [], None
    while nodes:
        node = nodes.pop()
        nodes.extend(node.children)
        if node.tag == _EventType.Allocation:
            events.append((node.start_time_ns, node.extra_fields.alloc_size))
        elif node.name == _MEASURED:
            window = (node.start_time_ns, node.end_time_ns)
    assert window is not None, f"the profiler recorded no {_MEASURED!r} region"
    events.sort()
    start_level = live = sum(size for time_ns, size in events if time_ns < window[0])
    peak = 0
    for time_ns, size in events:
        if window[0] <= time_ns <= window[1]:
            live += size
            peak = max(peak, live - start_level)
    return peak / 2**20


@pytest.fixture(scope="session")
def peak_mb() -> Callable[[Callable[[], None]], float]:
    """``peak_mb(fn)``: the peak CPU memory (MB) a call of ``fn`` adds to what is live when it starts."""
    return _peak_mb


def _timed(step: Callable[[], None]) -> tuple[Callable[[], None], list[float]]:
    times: list[float] = []

    def run() -> None:
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)

    return run, times


@pytest.fixture(scope="session")
def timed() -> Callable[[Callable[[], None]], tuple[Callable[[], None], list[float]]]:
    """``timed(step) -> (run, seconds)``: ``run`` calls ``step`` and appends its wall time to ``seconds``.

    Passed as ``benchmark.pedantic(setup=run)`` it times a reference step before every round, so each
    round of the benchmarked step has a twin measured under the same machine load.
    """
    return _timed
