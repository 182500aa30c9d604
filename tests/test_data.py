"""mtlx.data: loaders, and no process-wide side effects of importing it."""

from __future__ import annotations

import subprocess
import sys
import warnings

import torch

from mtlx.data import EpochLoader, make_loader


def test_importing_mtlx_leaves_the_warning_filters_alone():
    code = (
        "import warnings, numpy, torch, torchdata.stateful_dataloader, pluggy, attrs, click, rich; "
        "before = list(warnings.filters); import mtlx, mtlx.data, mtlx.runner, mtlx.cli; "
        "added = [f for f in warnings.filters if f not in before]; print(added); assert not added"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_building_loaders_warns_nothing():
    data = torch.utils.data.TensorDataset(torch.arange(10.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_loader(data, batch_size=4, shuffle=True, seed=0)
        loader = EpochLoader(data, batch_size=4, seed=0)
        assert [batch[0].tolist() for batch in loader] == [batch[0].tolist() for batch in EpochLoader(data, batch_size=4, seed=0)]
