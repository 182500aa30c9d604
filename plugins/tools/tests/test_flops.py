"""FLOP counts: published ResNet figures and hand-counted extra handles."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from mtlx_tools import count_flops
from mtlx_archs.plugin import BACKBONES


@pytest.mark.parametrize("backbone, published", [("resnet50", 4.1e9), ("resnet18", 1.8e9)])
def test_resnet_gflops_match_published_gmacs(backbone, published):
    """He et al. report 4.1 / 1.8 GMACs at 224x224 (fvcore counts a multiply-add as one flop)."""
    net = BACKBONES[backbone](BACKBONES[backbone].Config(), (3, 224, 224))
    report = count_flops(net, torch.zeros(1, 3, 224, 224))
    assert report.total == pytest.approx(published, rel=0.02)
    assert report.complete, report.uncounted
    # the convolutions alone are torchvision's figures (4.09 / 1.81 G without the fc layer)
    assert report.by_operator["conv"] == pytest.approx({"resnet50": 4.087e9, "resnet18": 1.814e9}[backbone], rel=1e-3)


class _Elementwise(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * torch.sigmoid(x) + x  # mul, sigmoid, add: one flop per output element each
        y = torch.softmax(y, dim=1)  # three per element
        return nn.functional.max_pool2d(y, 2) + y.mean()  # 4 per pooled element; mean: one per input element


def test_extra_handles_count_by_hand():
    x = torch.randn(1, 2, 4, 4)  # 32 elements; max-pooled: 8
    report = count_flops(_Elementwise(), x)
    assert report.by_operator == {"mul": 32, "sigmoid": 32, "add": 32 + 8, "softmax": 96, "max_pool2d": 32, "mean": 32}
    assert report.total == 32 * 3 + 8 + 96 + 32 + 32
    assert report.complete


class _Cumsum(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cumsum(x, dim=1) + x


def test_ops_without_handle_are_reported_not_counted():
    report = count_flops(_Cumsum(), torch.randn(2, 5))
    assert report.uncounted == {"aten::cumsum": 1}
    assert not report.complete
    assert report.total == 10  # only the add


def test_count_restores_training_mode_and_counts_eval_forward():
    net = BACKBONES["digits-cnn"](BACKBONES["digits-cnn"].Config(), (1, 32, 32)).train()
    before = net.blocks[0][1].running_mean.clone()
    count_flops(net, torch.randn(2, 1, 32, 32))
    assert net.training
    assert torch.equal(net.blocks[0][1].running_mean, before)  # eval mode: BN statistics untouched


def test_fvcore_import_warning_is_filtered_locally_only():
    code = (
        "import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
        "import torch; from mtlx_tools import count_flops\n"
        "assert count_flops(torch.nn.Linear(3, 2), torch.zeros(1, 3)).total == 6\n"
        "assert not any(f[1] is not None and 'script' in f[1].pattern for f in warnings.filters)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
