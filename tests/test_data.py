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


def test_a_loader_resumed_mid_epoch_leaves_the_global_rng_where_the_uninterrupted_one_does():
    """The DataLoader draws its base seed from torch's global RNG when an epoch starts; the checkpoint's RNG
    state already holds that draw, so the resumed epoch must not draw again (dropout, Gumbel noise shifted)."""
    data = torch.utils.data.TensorDataset(torch.arange(12.0))
    torch.manual_seed(0)
    loader = EpochLoader(data, batch_size=2, seed=0)
    batches = iter(loader)
    seen = [next(batches), next(batches)]
    state, rng = loader.state_dict(), torch.get_rng_state()
    rest = list(batches)
    expected = torch.rand(3)

    resumed = EpochLoader(data, batch_size=2, seed=0)
    resumed.load_state_dict(state)
    torch.set_rng_state(rng)
    assert [b[0].tolist() for b in list(resumed)] == [b[0].tolist() for b in rest] and len(seen + rest) == 6
    assert torch.equal(torch.rand(3), expected)
