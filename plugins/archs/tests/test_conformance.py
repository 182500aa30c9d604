"""Every backbone passes the core's backbone conformance check (shape, gradients, determinism, state_dict)."""

from __future__ import annotations

import pytest
import torch

from mtlx_archs.plugin import ARCHS, BACKBONES
from mtlx_testing import check_backbone, check_options

#: small inputs each backbone accepts (the ResNets at 32x32 keep the check fast)
INPUTS = {"mlp": (11,), "digits-cnn": (1, 32, 32)}


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_backbone_conforms(name):
    cls = BACKBONES[name]
    input_shape = INPUTS.get(name, (3, 32, 32))
    check_backbone(lambda: cls(cls.Config(), input_shape), input_shape)


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_every_architecture_documents_its_options(name):
    check_options(ARCHS[name])


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_shared_and_task_parameters_are_what_each_loss_reaches(make_model, benchmarks, arch):
    """A task's parameters reach no other task's loss; every shared parameter reaches every task's loss.

    Per-task gradient strategies take their gradients w.r.t. ``shared_parameters`` and write the task
    parameters from the weighted sum, so a parameter in the wrong group gets the wrong update. Reachability is
    read from autograd (an unreached parameter has no gradient), in training mode; LTB samples its branches
    (a fixed temperature: in warm-up its logits are not used at all).
    """
    _, tasks = benchmarks["nyuv2"]
    options = {
        "backbone": {"channels": 4},
        "head": {"hidden_channels": 2},
        "arch": {"tau": 1.0} if arch == "ltb" else {},
    }
    model = make_model(arch, "digits-cnn", "conv", (3, 8, 8), tasks, options).train()
    params = dict(model.named_parameters())
    name_of = {id(p): n for n, p in params.items()}
    shared = {name_of[id(p)] for p in model.shared_parameters()}
    owned = {t: {name_of[id(p)] for p in model.task_parameters(t)} for t in tasks}
    assert all(not (shared & own) for own in owned.values()) and sum(map(len, owned.values())) == len(
        set().union(*owned.values())
    )
    assert shared | set().union(*owned.values()) == set(params), "every parameter is shared or one task's"
    out = model(torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)))
    for t in tasks:
        grads = torch.autograd.grad(out[t].sum(), list(params.values()), retain_graph=True, allow_unused=True)
        reached = {n for n, g in zip(params, grads, strict=True) if g is not None}
        assert shared <= reached, f"shared parameters task {t!r} does not reach: {sorted(shared - reached)[:4]}"
        others = set().union(*(owned[u] for u in tasks if u != t))
        assert not (others & reached), f"task {t!r} reaches other tasks' parameters: {sorted(others & reached)[:4]}"
