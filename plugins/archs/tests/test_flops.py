"""Every architecture's FLOPs are counted completely by mtlx-tools' counter (fvcore plus its extra handles)."""

from __future__ import annotations

import pytest
import torch

from mtlx_archs.plugin import ARCHS
from mtlx_tools import count_flops


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_every_architecture_is_counted_completely(make_model, benchmarks, arch):
    input_shape, tasks = (1, 32, 32), benchmarks["cityscapes"][1]
    model = make_model(arch, "digits-cnn", "conv", input_shape, tasks)
    report = count_flops(model, torch.randn(1, *input_shape))
    assert report.complete, report.uncounted
    assert report.uncalled_modules == ()
    assert sum(report.by_module.values()) == report.total
    hps = count_flops(make_model("hps", "digits-cnn", "conv", input_shape, tasks), torch.randn(1, *input_shape))
    if arch == "hps":
        assert report.total == hps.total
    else:  # every other architecture adds computation on top of the same backbone and heads
        assert report.total > hps.total


def test_multi_input_counts_one_encoder_pass_per_task(make_model, benchmarks):
    tasks = benchmarks["office"][1]
    model = make_model("hps", "digits-cnn", "linear", (3, 32, 32), tasks)
    single = count_flops(model.backbone, torch.randn(1, 3, 32, 32)).total
    report = count_flops(model, {t: torch.randn(1, 3, 32, 32) for t in tasks})
    heads = sum(count_flops(model.heads[t], torch.randn(1, *model.backbone.out_shape)).total for t in tasks)
    assert report.total == 3 * single + heads
