"""Agreement with the reference implementation, WeightWatcher 0.7.7 (optional: pip install weightwatcher==0.7.7).

WeightWatcher pools the kh·kw (out, in) slices of a conv weight (our ``conv="slices"``) and rescales
conv weights (which moves x_min but not alpha); for ``conv="reshape"`` it is given the reshaped
matrices as linear layers. Same eigenvalues, same KS choice of x_min: alpha agrees to rounding.
"""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from mtlx.checkpoint import load_checkpoint
from mtlx_testing import ToyModel, toy_tasks
from mtlx_tools.powerlaw import analyze_state_dict

weightwatcher = pytest.importorskip("weightwatcher", reason="optional reference: pip install weightwatcher==0.7.7")
pytestmark = pytest.mark.filterwarnings("ignore:Passing a dict to DataFrame.from_records:DeprecationWarning")


def ww_alphas(model: nn.Module) -> dict[str, float]:
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    frame = weightwatcher.WeightWatcher(model=model).analyze(randomize=False, plot=False, mp_fit=False)
    return {f"{name}.weight": alpha for name, alpha in zip(frame["longname"], frame["alpha"], strict=True)}


def our_alphas(model: nn.Module, conv: str) -> dict[str, float]:
    fits, _ = analyze_state_dict(model.state_dict(), conv=conv, min_evals=20)  # WW fits < 20 otherwise
    return {f.name: f.fit.alpha for f in fits}


def heavy_tailed_model() -> nn.Module:
    """Student-t weights: power-law spectra with alpha in the range HT-SR reads (2 to 12 here)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(300, 200), nn.Linear(200, 120), nn.Conv2d(32, 64, 3), nn.Linear(120, 60))
    with torch.no_grad():
        for layer, df in zip(model, (3.0, 4.0, 3.0, 2.5), strict=True):
            layer.weight.copy_(torch.distributions.StudentT(df).sample(layer.weight.shape))
    return model


def test_alpha_agrees_with_weightwatcher_on_heavy_tailed_layers():
    model = heavy_tailed_model()
    ours, reference = our_alphas(model, "slices"), ww_alphas(model)
    assert set(ours) == set(reference) == {"0.weight", "1.weight", "2.weight", "3.weight"}
    assert max(abs(ours[k] - reference[k]) for k in ours) < 1e-6


def test_alpha_agrees_with_weightwatcher_on_a_trained_toy_run(toy_runs):
    model = ToyModel(toy_tasks(2), channels=32)
    model.load_state_dict(load_checkpoint(toy_runs["a1"] / "last.pt")["engine"]["model"])
    ours, reference = our_alphas(model, "slices"), ww_alphas(model)
    assert set(ours) == {"encoder.0.weight", "encoder.2.weight"} <= set(reference)
    assert max(abs(ours[k] - reference[k]) for k in ours) < 1e-6

    convs = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and n.startswith("encoder")}
    reshaped = nn.ModuleDict()
    for name, conv in convs.items():
        matrix = conv.weight.detach().reshape(conv.out_channels, -1)  # (out, in*kh*kw)
        reshaped[name.replace(".", "_")] = nn.Linear(matrix.shape[1], matrix.shape[0], bias=False)
        reshaped[name.replace(".", "_")].weight.data.copy_(matrix)
    ours = our_alphas(model, "reshape")
    reference = {k.replace("_", "."): v for k, v in ww_alphas(reshaped).items()}
    assert set(ours) == set(reference) == {"encoder.0.weight", "encoder.2.weight"}
    assert max(abs(ours[k] - reference[k]) for k in ours) < 1e-6
