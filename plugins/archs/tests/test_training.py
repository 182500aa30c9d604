"""Every architecture trains on ``digits`` (and its vector variant) through mtlx.build, with ew and mgda.

mgda runs in representation mode (MGDA-UB, ``grad_mode=rep``) where the
architecture has a single shared Z, and is refused with a clear message
where it has none; there it runs on the shared parameters instead.
"""

from __future__ import annotations

import pytest
import torch

from mtlx import ConfigError
from mtlx.build import build_dataset, build_model, build_strategy
from mtlx.config import resolve_run_config
from mtlx.engine import to_device
from mtlx_archs.plugin import ARCHS
from mtlx_testing import make_step

WITH_Z = sorted(a for a, cls in ARCHS.items() if cls.has_shared_representation)
WITHOUT_Z = sorted(a for a, cls in ARCHS.items() if not cls.has_shared_representation)
_DIGITS = {"dataset.name": "digits", "dataset.train_size": 8, "dataset.val_size": 1, "dataset.test_size": 1}
_SMALL = {"backbone.channels": 16, "head.hidden_channels": 8}
#: fewer experts keep the mixtures cheap; LTB samples its branches (a fixed temperature, no warm-up)
ARCH_OPTIONS = {
    "mmoe": {"arch.num_experts": 2},
    "cgc": {"arch.num_shared_experts": 1},
    "ple": {"arch.num_shared_experts": 1},
    "dselect-k": {"arch.num_experts": 2},
    "ltb": {"arch.tau": 1.0},
}


def _config(arch, strategy, extra=()):
    layer = {**_DIGITS, "arch.name": arch, "strategy.name": strategy, **ARCH_OPTIONS.get(arch, {}), **dict(extra)}
    return resolve_run_config([layer])


@pytest.fixture(scope="module")
def digits():
    dataset = build_dataset(_config("hps", "ew"))
    data = dataset.split("train")
    return dataset, dataset.collate([data[i] for i in range(8)])


def _train(config, dataset, batch, steps=8, tasks=None):
    """Overfit one batch; return the summed loss of the first and the last step."""
    torch.manual_seed(0)
    tasks = tasks or dataset.tasks
    model = build_model(config, tasks, dataset.input_shape)
    strategy = build_strategy(config, list(tasks), model)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    inputs, targets = to_device(batch, torch.device("cpu"))
    totals = []
    for i in range(steps):
        optimizer.zero_grad(set_to_none=True)
        step = make_step(model, inputs, targets, tasks, iteration=i)
        strategy.backward(step)
        if i == 0:
            missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.isfinite().all()]
            assert not missing, f"no finite gradient for {missing[:5]}"
        optimizer.step()
        totals.append(float(step.loss_vector().detach().sum()))
    return totals[0], totals[-1]


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_trains_with_ew(digits, arch):
    first, last = _train(_config(arch, "ew", _SMALL), *digits)
    assert last < 0.95 * first


@pytest.mark.parametrize("arch", WITH_Z)
def test_trains_with_mgda_on_the_representation(digits, arch):
    first, last = _train(_config(arch, "mgda", {**_SMALL, "strategy.grad_mode": "rep"}), *digits)
    assert last < first


@pytest.mark.parametrize("arch", WITHOUT_Z)
def test_representation_strategies_are_refused_without_z(digits, arch):
    dataset, _ = digits
    config = _config(arch, "mgda", {**_SMALL, "strategy.grad_mode": "rep"})
    model = build_model(config, dataset.tasks, dataset.input_shape)
    with pytest.raises(ConfigError, match=rf"needs a single shared representation, but architecture '{arch}' has none"):
        build_strategy(config, list(dataset.tasks), model)


@pytest.mark.parametrize("arch", WITHOUT_Z)
def test_trains_with_mgda_on_shared_parameters(digits, arch):
    first, last = _train(_config(arch, "mgda", _SMALL), *digits, steps=4)
    assert last < first


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_vector_variant_trains(digits, arch):
    """digits flattened through the mlp backbone (image-level task only: a vector Z has no pixels)."""
    dataset, (inputs, targets) = digits
    config = _config(
        arch,
        "ew",
        {
            "backbone.name": "mlp",
            "backbone.hidden_sizes": [32, 16],
            "head.name": "linear",
        },
    )
    first, last = _train(config, dataset, (inputs, {"cls": targets["cls"]}), tasks={"cls": dataset.tasks["cls"]})
    assert last < 0.95 * first


def test_saliency_masks_filter_z_and_z_stays_shared(digits):
    dataset, (inputs, _) = digits
    model = build_model(_config("saliency-decoder", "ew", _SMALL), dataset.tasks, dataset.input_shape).eval()
    z = model.encode(inputs)
    masks = model.masks(z)
    assert set(masks) == set(dataset.tasks)
    for name, mask in masks.items():
        assert mask.shape == z.shape and bool(((mask > 0) & (mask < 1)).all())
        torch.testing.assert_close(model.decode(z, [name])[name], model.heads[name](z * mask))
    shared = {id(p) for p in model.shared_parameters()}
    assert shared == {id(p) for p in model.backbone.parameters()}
    assert all(id(p) not in shared for t in dataset.tasks for p in model.task_parameters(t))
