"""The own-loop example runs, and mtlx.MTL takes exactly the engine's step."""

from __future__ import annotations

import copy
import runpy
from pathlib import Path

import pytest
import torch

import mtlx
from mtlx.config import build_component_config
from mtlx_testing import ToyModel, make_step, toy_batch, toy_tasks

EXAMPLE = Path(__file__).parents[1] / "train.py"


@pytest.mark.parametrize("strategy", ["rep-mtl", "mgda", "ew", "dwa", "famo", "uw"])
def test_the_example_trains(strategy):
    main = runpy.run_path(str(EXAMPLE))["main"]
    first = main(strategy, steps=1)
    last = main(strategy, steps=20)
    assert all(torch.isfinite(torch.tensor(v)) for v in last.values())
    assert sum(last.values()) < sum(first.values())


@pytest.mark.parametrize(("strategy", "options"), [("ew", {}), ("mgda", {}), ("rep-mtl", {}),
                                                   ("rep-mtl", {"mode": "paper"}), ("pcgrad", {"seed": 3})])
def test_a_user_loop_takes_the_engines_step(strategy, options):
    """Same model, batch and strategy: MTL.backward and the engine's strategy.backward give equal .grad."""
    torch.manual_seed(0)
    tasks = toy_tasks(3)
    model = ToyModel(tasks).double()
    x, targets = toy_batch(tasks)
    x = x.double()
    registries = mtlx.PluginManager().registries  # both built as a run builds them (rep-mtl's base from here)
    cls = registries.strategies.get(strategy)
    config = build_component_config(cls.Config, options, "s")
    engine_strategy = cls.from_registries(config, tasks=list(tasks), registries=registries)
    twin = copy.deepcopy(model)
    mtl = mtlx.MTL(strategy, tasks=list(tasks), shared=twin.encoder, heads=dict(twin.heads), registries=registries,
                   **options)
    for it in range(3):  # includes rep-mtl's estimate step and later ones
        model.zero_grad(set_to_none=True)
        twin.zero_grad(set_to_none=True)
        engine_strategy.backward(make_step(model, x, targets, tasks, iteration=it))
        z = twin.encoder(x)
        preds = {t: twin.heads[t](z) for t in tasks}
        mtl.backward({t: spec.loss(preds[t].float(), targets[t]) for t, spec in tasks.items()}, features=z)
        mtl.step()
        for (name, p), q in zip(model.named_parameters(), twin.parameters(), strict=True):
            torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=0, msg=lambda m, n=name: f"{n}: {m}")


def test_state_round_trip_and_errors():
    tasks = toy_tasks(2)
    model = ToyModel(tasks)
    mtl = mtlx.MTL("dwa", tasks=list(tasks), shared=model.encoder, heads=dict(model.heads))
    mtl.end_epoch({t: 1.0 for t in tasks})
    again = mtlx.MTL("dwa", tasks=list(tasks), shared=model.encoder, heads=dict(model.heads))
    again.load_state_dict(mtl.state_dict())
    assert again.state_dict()["epoch"] == 1
    with pytest.raises(mtlx.ConfigError, match="has no option 'lamda'"):
        mtlx.MTL("rep-mtl", tasks=list(tasks), shared=model.encoder, heads=dict(model.heads), lamda=1)
    with pytest.raises(mtlx.ConfigError, match="one entry per task"):
        mtlx.MTL("ew", tasks=list(tasks), shared=model.encoder, heads={"seg0": model.heads["seg0"]})
    rep = mtlx.MTL("rep-mtl", tasks=list(tasks), shared=model.encoder, heads=dict(model.heads))
    x, y = toy_batch(tasks)
    z = model.encoder(x)
    with pytest.raises(mtlx.ConfigError, match="pass features=z"):
        rep.backward({t: s.loss(model.heads[t](z), y[t]) for t, s in tasks.items()})


@pytest.mark.parametrize("strategy", ["ew", "mgda", "rep-mtl"])
def test_amp_loss_scale_with_a_grad_scaler_takes_the_unscaled_step(strategy):
    """fp16 recipe: mtl.backward(losses, loss_scale=float(scaler.scale(1))), scaler.step(optimizer) == a plain step."""
    tasks = toy_tasks(3)
    weights = {}
    for scaled in (False, True):
        torch.manual_seed(0)
        model = ToyModel(tasks).double()
        mtl = mtlx.MTL(strategy, tasks=list(tasks), shared=model.encoder, heads=dict(model.heads))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, enabled=scaled)
        x, targets = toy_batch(tasks)
        for _ in range(2):
            z = model.encoder(x.double())
            losses = {t: spec.loss(model.heads[t](z), targets[t]) for t, spec in tasks.items()}
            optimizer.zero_grad()
            # scaler.scale(...) (not get_scale()) initialises the scaler, as the engine does
            mtl.backward(losses, features=z, loss_scale=float(scaler.scale(torch.ones(()))) if scaled else 1.0)
            if scaled:
                assert all(p.grad.abs().max() > 0 for p in model.parameters() if p.grad is not None)
            scaler.step(optimizer)
            scaler.update()
            mtl.step()
        weights[scaled] = copy.deepcopy(model.state_dict())
    for key, value in weights[False].items():
        torch.testing.assert_close(weights[True][key], value, rtol=1e-9, atol=1e-12)
