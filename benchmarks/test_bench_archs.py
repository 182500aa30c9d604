"""Training-step time of every mtlx-archs architecture on the default digits model (CPU, one thread).

One step = the engine's forward (:func:`mtlx_testing.make_step`) plus ``ew``'s
backward on a real digits batch of 64 (digits-cnn backbone, conv heads). Torch
runs single-threaded so the ratios between architectures are comparable on a
shared machine; ``extra_info`` holds parameters and forward GFLOPs per sample
(``mtlx_tools.count_flops``, from mtlx-tools), and ``-s`` prints them.

    pytest benchmarks/test_bench_archs.py --benchmark-enable --benchmark-columns=min,median,rounds -s
"""

from __future__ import annotations

import pytest

from mtlx.build import build
from mtlx.config import resolve_run_config
from mtlx_archs.plugin import ARCHS
from mtlx_testing import make_step
from mtlx_tools import count_flops

_DIGITS = {
    "dataset.name": "digits",
    "dataset.train_size": 64,
    "dataset.val_size": 1,
    "dataset.test_size": 1,
    "strategy.name": "ew",
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_step_time(benchmark, arch):
    components = build(resolve_run_config([{**_DIGITS, "arch.name": arch}]))
    data = components.dataset.split("train")
    x, targets = components.dataset.collate([data[i] for i in range(64)])
    model, tasks = components.model, components.tasks

    def step() -> None:
        model.zero_grad(set_to_none=True)
        components.strategy.backward(make_step(model, x, targets, tasks))

    benchmark.pedantic(step, rounds=5, warmup_rounds=1)
    report = count_flops(model, x[:1])
    benchmark.extra_info.update(
        params=sum(p.numel() for p in model.parameters()), gflops_per_sample=report.gflops, complete=report.complete
    )
    print(f"\n{arch}: {benchmark.extra_info}")
    assert report.complete
