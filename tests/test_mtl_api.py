"""``mtlx.MTL.backward`` refuses misuse before it touches ``.grad``, with one line naming what and where.

A model of its own, used by no other test: a shop's two-layer MLP (a shared ``Linear + Tanh``, one
``Linear`` head per task) with two regression tasks (``price``, ``rating``) and a 3-class one (``kind``).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import attrs
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import mtlx
from mtlx.errors import CheckpointError, ConfigError, NonFiniteLossError
from mtlx.loop import EPOCH_WARNING_STEPS, SkippedStep

pytest.importorskip("mtlx_baselines", reason="the strategies under test (ew, mgda, famo, dwa, ...) are mtlx-baselines'")
pytest.importorskip("mtlx_repmtl", reason="rep-mtl, whose features check is the first under test, is mtlx-repmtl's")

TASKS = ("price", "rating", "kind")
FIXTURES = Path(__file__).parent / "fixtures"


@attrs.define
class Shop:
    shared: nn.Module
    heads: nn.ModuleDict
    x: torch.Tensor
    y: dict[str, torch.Tensor]

    def mtl(self, strategy: str = "ew", **kwargs) -> mtlx.MTL:
        return mtlx.MTL(strategy, tasks=list(TASKS), shared=self.shared, heads=self.heads, **kwargs)

    def losses(self, z: torch.Tensor, reduction: str = "mean") -> dict[str, torch.Tensor]:
        return {"price": F.mse_loss(self.heads["price"](z), self.y["price"], reduction=reduction),
                "rating": F.l1_loss(self.heads["rating"](z), self.y["rating"], reduction=reduction),
                "kind": F.cross_entropy(self.heads["kind"](z), self.y["kind"], reduction=reduction)}

    def forward(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        z = self.shared(self.x)
        return z, self.losses(z)

    def grads(self) -> list[torch.Tensor | None]:
        return [p.grad for p in [*self.shared.parameters(), *self.heads.parameters()]]

    def untouched(self) -> bool:
        return all(g is None for g in self.grads())

    def train(self, mtl: mtlx.MTL, steps: int, *, epoch_every: int | None = None) -> None:
        optimizer = torch.optim.SGD([*self.shared.parameters(), *self.heads.parameters()], lr=0.01)
        for i in range(steps):
            z, losses = self.forward()
            optimizer.zero_grad()
            mtl.backward(losses, features=z)
            optimizer.step()
            mtl.step()
            if epoch_every is not None and (i + 1) % epoch_every == 0:
                mtl.end_epoch()


@pytest.fixture
def shop() -> Shop:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    return Shop(shared=nn.Sequential(nn.Linear(6, 16), nn.Tanh()),
                heads=nn.ModuleDict({"price": nn.Linear(16, 1), "rating": nn.Linear(16, 1), "kind": nn.Linear(16, 3)}),
                x=torch.randn(32, 6, generator=g),
                y={"price": torch.randn(32, 1, generator=g), "rating": torch.rand(32, 1, generator=g),
                   "kind": torch.randint(0, 3, (32,), generator=g)})


# -- features ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["rep-mtl", "graddrop"])
@pytest.mark.parametrize(("wrong", "says"), [("detached", "does not require grad"), ("the input x", "does not require grad"),
                                             ("a second forward", "the loss of task 'price' does not depend on features")])
def test_features_the_losses_do_not_read_are_refused(shop, strategy, wrong, says):
    """Rep-MTL and GradDrop read the losses through features: anything else used to make them EW silently."""
    mtl = shop.mtl(strategy)
    z, losses = shop.forward()
    features = {"detached": z.detach(), "the input x": shop.x, "a second forward": shop.shared(shop.x)}[wrong]
    with pytest.raises(ConfigError, match=says) as error:
        mtl.backward(losses, features=features)
    assert "pass features=z" in str(error.value) and "\n" not in str(error.value)
    assert shop.untouched()


def test_a_leaf_the_heads_read_is_features_too(shop):
    """``z = shared(x).detach().requires_grad_()`` read by the heads passes (its gradient edge is the leaf's)."""
    z = shop.shared(shop.x).detach().requires_grad_()
    shop.mtl("rep-mtl").backward(shop.losses(z), features=z)
    assert z.grad is not None and all(p.grad is not None for p in shop.heads.parameters())


def test_the_two_stage_gradients_need_the_features_too(shop):
    """mgda with two-stage per-task gradients reads every loss through features: one head off it is named."""
    mtl = shop.mtl("mgda", per_task_grads="two-stage")
    z, losses = shop.forward()
    losses["kind"] = F.cross_entropy(shop.heads["kind"](shop.shared(shop.x)), shop.y["kind"])
    with pytest.raises(ConfigError, match="the loss of task 'kind' does not depend on features"):
        mtl.backward(losses, features=z)
    assert shop.untouched()


def test_the_features_the_heads_read_pass_and_rep_mtl_sees_them(shop):
    mtl = shop.mtl("rep-mtl")
    z, losses = shop.forward()
    result = mtl.backward(losses, features=z)
    saliency = [v for k, v in result.diagnostics.items() if k.startswith("saliency_norm")]
    assert saliency and all(v > 0 for v in saliency)
    assert all(g is not None for g in shop.grads())


def test_features_per_task_are_checked_per_task(shop):
    """``{task: Z_t}`` (each task its own input): each loss must read its own task's Z."""
    mtl = shop.mtl("mgda")
    zs = {t: shop.shared(shop.x + i) for i, t in enumerate(TASKS)}
    losses = {t: shop.losses(zs[t])[t] for t in TASKS}
    with pytest.raises(ConfigError, match="the loss of task 'rating' does not depend on features"):
        mtl.backward(losses, features={**zs, "rating": zs["price"]})
    assert shop.untouched()
    mtl.backward(losses, features=zs)
    assert all(g is not None for g in shop.grads())


# -- losses -----------------------------------------------------------------------------------------------------
def test_losses_are_taken_by_name_in_any_order(shop):
    """The same losses in reversed dict order give the same step (mgda's weights, every .grad)."""
    steps = []
    for order in (TASKS, TASKS[::-1]):
        shop.shared.zero_grad(set_to_none=True)
        shop.heads.zero_grad(set_to_none=True)
        z, losses = shop.forward()
        result = shop.mtl("mgda").backward({t: losses[t] for t in order}, features=z)
        steps.append((dict(result.weights), [g.clone() for g in shop.grads()]))
    assert steps[0][0] == steps[1][0]
    for a, b in zip(steps[0][1], steps[1][1], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_wrong_loss_names_are_named(shop):
    z, losses = shop.forward()
    losses["colour"] = losses.pop("kind")
    with pytest.raises(ConfigError, match=r"missing: 'kind'.*unknown: 'colour'"):
        shop.mtl().backward(losses, features=z)
    assert shop.untouched()


def test_a_short_list_of_losses_says_how_many(shop):
    z, losses = shop.forward()
    with pytest.raises(ConfigError, match="2 losses for 3 tasks"):
        shop.mtl().backward([losses["price"], losses["rating"]], features=z)


@pytest.mark.parametrize("strategy", ["ew", "mgda", "famo", "dwa"])
def test_a_non_scalar_loss_names_its_task_and_shape(shop, strategy):
    z, losses = shop.forward()
    losses["rating"] = F.l1_loss(shop.heads["rating"](z), shop.y["rating"], reduction="none")
    with pytest.raises(ConfigError, match=r"the loss of task 'rating' has shape \(32, 1\), expected a scalar"):
        shop.mtl(strategy).backward(losses, features=z)
    z = shop.shared(shop.x)
    with pytest.raises(ConfigError, match=r"the loss of task 'price' has shape \(32, 1\)"):
        shop.mtl(strategy).backward(shop.losses(z, reduction="none"), features=z)
    assert shop.untouched()


def test_a_loss_that_is_not_a_tensor_names_its_task(shop):
    z, losses = shop.forward()
    losses["kind"] = 0.5
    with pytest.raises(ConfigError, match="the loss of task 'kind' is a float, expected a scalar tensor"):
        shop.mtl("mgda").backward(losses, features=z)
    with pytest.raises(ConfigError, match="one tensor"):
        shop.mtl("mgda").backward(torch.stack([losses["price"], losses["rating"]]), features=z)
    assert shop.untouched()


# -- tasks, heads, shared ---------------------------------------------------------------------------------------
def test_heads_must_be_a_mapping(shop):
    with pytest.raises(ConfigError, match=r"heads must be a mapping \{task: module or parameters\}, got list"):
        mtlx.MTL("mgda", tasks=list(TASKS), shared=shop.shared, heads=list(shop.heads.values()))


def test_tasks_must_be_a_sequence_of_names(shop):
    with pytest.raises(ConfigError, match=r"tasks must be a sequence of task names \(\['price'\]\), not the string"):
        mtlx.MTL("ew", tasks="price", shared=shop.shared, heads={"price": shop.heads["price"]})
    with pytest.raises(ConfigError, match="'price' twice"):
        mtlx.MTL("ew", tasks=["price", "price"], shared=shop.shared, heads={"price": shop.heads["price"]})


def test_shared_and_head_parameters_must_not_overlap(shop):
    both = nn.ModuleList([shop.shared, shop.heads["rating"]])
    with pytest.raises(ConfigError, match=r"parameter '1\.weight' of shared is also in heads\['rating'\]"):
        mtlx.MTL("mgda", tasks=list(TASKS), shared=both, heads=shop.heads)
    heads = {"price": shop.heads["price"], "rating": shop.heads["price"], "kind": shop.heads["kind"]}
    with pytest.raises(ConfigError, match=r"parameter 'weight' of heads\['price'\] is also in heads\['rating'\]"):
        mtlx.MTL("mgda", tasks=list(TASKS), shared=shop.shared, heads=heads)


# -- non-finite losses ------------------------------------------------------------------------------------------
def test_a_nonfinite_loss_stops_naming_task_and_step(shop):
    """The engine's guard: the step and epoch, the task, every loss; before mgda's solver sees the NaN."""
    mtl = shop.mtl("mgda")
    shop.train(mtl, 1)
    shop.shared.zero_grad(set_to_none=True)
    shop.heads.zero_grad(set_to_none=True)
    z, losses = shop.forward()
    losses["rating"] = losses["rating"] * math.nan
    with pytest.raises(NonFiniteLossError, match=r"^step 2 \(epoch 0\): the loss of task 'rating' is nan; losses: "
                                                 r"price=.*, rating=nan, kind=.*nonfinite='skip'"):
        mtl.backward(losses, features=z)
    assert shop.untouched()


def test_nonfinite_skip_leaves_grad_untouched_and_says_so(shop):
    mtl = shop.mtl("ew", nonfinite="skip")
    z, losses = shop.forward()
    losses["price"] = losses["price"] + math.inf
    with pytest.warns(RuntimeWarning, match=r"skipping step 1 \(epoch 0\): the loss of task 'price' is inf"):
        result = mtl.backward(losses, features=z)
    assert isinstance(result, SkippedStep) and result.weights is None and "'price'" in result.reason
    assert shop.untouched()
    mtl.step()
    shop.train(mtl, 1)  # the next finite step is taken
    assert all(g is not None for g in shop.grads())
    assert mtl.iteration == 2


def test_nonfinite_takes_raise_or_skip(shop):
    with pytest.raises(ConfigError, match="nonfinite must be 'raise' or 'skip', got 'ignore'"):
        shop.mtl(nonfinite="ignore")


# -- state ------------------------------------------------------------------------------------------------------
def test_another_strategys_state_is_refused_naming_both(shop):
    famo, dwa = shop.mtl("famo"), shop.mtl("dwa")
    before = dwa.state_dict()
    with pytest.raises(CheckpointError, match="state of strategy 'famo' .*this MTL runs 'dwa'"):
        dwa.load_state_dict(famo.state_dict())
    assert dwa.state_dict() == before


def test_a_state_saved_before_the_name_was_stored_still_loads(shop):
    dwa = shop.mtl("dwa")
    dwa.end_epoch({t: 1.0 for t in TASKS})
    old = {k: v for k, v in dwa.state_dict().items() if not k.startswith("strategy_")}  # the state before
    again = shop.mtl("dwa")
    again.load_state_dict(old)
    assert again.epoch == 1
    famo = {k: v for k, v in shop.mtl("famo").state_dict().items() if not k.startswith("strategy_")}
    with pytest.raises(CheckpointError, match="does not fit strategy 'dwa'.*'history'"):
        shop.mtl("dwa").load_state_dict(famo)


# -- per-step and per-epoch hooks -------------------------------------------------------------------------------
def test_famo_without_recompute_losses_says_what_to_pass_to_backward(shop):
    mtl = shop.mtl("famo")
    z, losses = shop.forward()
    mtl.backward(losses, features=z)
    with pytest.raises(ConfigError, match=r"pass recompute_losses=.* to MTL\.backward") as error:
        mtl.step()
    assert "engine" not in str(error.value)


@pytest.mark.parametrize("strategy", ["dwa", "gradnorm"])
def test_a_per_epoch_strategy_without_end_epoch_warns_once(shop, strategy):
    mtl = shop.mtl(strategy, steps_per_epoch=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shop.train(mtl, 3)
    with pytest.warns(UserWarning, match=r"no mtl\.end_epoch\(\) in 4 steps \(steps_per_epoch=3\)") as caught:
        shop.train(mtl, 5)
    assert len([w for w in caught if "end_epoch" in str(w.message)]) == 1


def test_end_epoch_or_no_epoch_hook_does_not_warn(shop):
    mtl, ew = shop.mtl("dwa", steps_per_epoch=3), shop.mtl("ew", steps_per_epoch=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shop.train(mtl, 9, epoch_every=3)
        shop.train(ew, 9)  # no epoch hook: nothing to forget
    assert mtl.epoch == 3


def test_rep_mtl_needs_end_epoch_exactly_when_its_base_does(shop):
    quiet, base_dwa = shop.mtl("rep-mtl", steps_per_epoch=2), shop.mtl("rep-mtl", steps_per_epoch=2, base="dwa")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shop.train(quiet, 4)  # base ew: no epoch hook to forget
    with pytest.warns(UserWarning, match=r"no mtl\.end_epoch\(\) in 3 steps"):
        shop.train(base_dwa, 3)


def test_without_steps_per_epoch_the_warning_comes_after_the_threshold(shop):
    mtl = shop.mtl("dwa")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shop.train(mtl, EPOCH_WARNING_STEPS)
    with pytest.warns(UserWarning, match=rf"no mtl\.end_epoch\(\) in {EPOCH_WARNING_STEPS + 1} steps.*steps_per_epoch="):
        shop.train(mtl, 1)


def test_steps_per_epoch_must_be_positive(shop):
    with pytest.raises(ConfigError, match="steps_per_epoch must be a positive int, got 0"):
        shop.mtl("dwa", steps_per_epoch=0)



@pytest.mark.slow
@pytest.mark.parametrize("nonfinite", ["skip", "raise"])
def test_a_nonfinite_loss_on_one_process_stops_or_skips_every_process(tmp_path, nonfinite):
    """torchrun, gloo: rank 1's NaN makes rank 0 skip (or raise) too, rather than hang in the gradient sync."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
               str(FIXTURES / "mtl_nonfinite_worker.py"), nonfinite, str(tmp_path)]
    done = subprocess.run(command, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    logs = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    verb = "skipped" if nonfinite == "skip" else "raised"
    assert logs[0][0].startswith(f"{verb}: step 1 (epoch 0): the loss of task 'b' is NaN/Inf on another process; ")
    assert logs[1][0].startswith(f"{verb}: step 1 (epoch 0): the loss of task 'b' is nan")
    assert all(log[1] == "grad written: False" for log in logs)
    if nonfinite == "skip":
        assert all(log[2:] == ["took", "grad written: True"] for log in logs)
