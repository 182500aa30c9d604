"""mtlx's step against the straightforward implementation of the same exact maths (the floor), interleaved.

"Straightforward" is what a researcher writes in a few lines: each task's
gradient from its own scalar loss (``torch.autograd.grad(losses[t], ...)``),
the same aggregator or regularisers, one backward. It is the fair floor for an
exact per-task gradient; a step above it pays for plumbing, not maths.

Problems: ``digits`` and ``resnet18-64`` (``conftest.py``) and ``paper``: the
Rep-MTL paper's dense architecture (hps + dilated ResNet-50 + DeepLab ASPP
heads, ``mtlx-archs``) on a synthetic batch of 2 at 336x336 (NYUv2's pixel
count, 288x384) with 3 dense tasks (``toy_tasks(3, 13)``: two 13-class
per-pixel classifications and one regression, in place of NYUv2's seg/depth/normal).

One round times one step (forward + backward, no optimiser; CPU time,
``time.process_time``, one thread) of every variant in turn (the order rotates
by one each round), on the same model and batch, so the ratios compare them under the same machine load. The table
(medians over rounds; ratios to ew and to the straightforward step) is printed
at the end::

    pytest benchmarks/test_bench_floor.py --benchmark-enable -s
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator

import pytest
import torch

import mtlx
from mtlx.build import build_model
from mtlx.config import resolve_run_config
from mtlx.gradients import flatten_grads, write_flat_grad
from mtlx_baselines.strategies import mgda, mtadam
from mtlx_repmtl import RepMTL, RepMTLConfig
from mtlx_repmtl.losses import csa_terms, stack_saliencies, tsr_loss
from mtlx_testing import make_step, toy_batch, toy_tasks

from .conftest import PROBLEMS, Problem

PAPER_SIZE = (336, 336)
PAPER_BATCH = 2
ROUNDS = {"digits": 7, "resnet18-64": 5, "paper": 2}
#: the twins' steps differ by ~10 % from round to round on digits (a 0.4 s step): more rounds there
METHOD_ROUNDS = {"digits": 15, "resnet18-64": 5}
RESULTS: dict[str, dict[str, float]] = {}


def paper_problem() -> Problem:
    config = resolve_run_config(
        [{"dataset.name": "digits", "backbone.name": "resnet50-dilated", "head.name": "deeplab-aspp",
          "arch.name": "hps"}]
    )
    tasks = toy_tasks(3, num_classes=13)
    torch.manual_seed(0)
    model = build_model(config, tasks, (3, *PAPER_SIZE))
    x, targets = toy_batch(tasks, batch_size=PAPER_BATCH, size=PAPER_SIZE[0])
    return Problem(name="paper", model=model, tasks=tasks, x=x, targets=targets)


def _ours(name: str) -> Callable[[Problem], None]:
    """The registered strategy's step (built per problem in the test)."""

    def step(p: Problem) -> None:
        strategy = STRATEGIES[(name, p.name)]
        strategy.backward(make_step(p.model, p.x, p.targets, p.tasks))

    return step


STRATEGIES: dict[tuple[str, str], mtlx.MTOStrategy] = {}


def _losses(p: Problem) -> tuple[torch.Tensor, list[torch.Tensor]]:
    z = p.model.encode(p.x)
    preds = p.model.decode(z)
    return z, [spec.loss(preds[t].float(), p.targets[t]) for t, spec in p.tasks.items()]


def straightforward_repmtl(p: Problem) -> None:
    """Eq. 10 in a few lines: S_t = ∂L_t/∂Z (graph kept), Σ L_t + λ(TSR + CSA), one backward."""
    z, losses = _losses(p)
    saliencies = stack_saliencies([torch.autograd.grad(loss, z, create_graph=True)[0] for loss in losses])
    total = sum(losses) + 0.9 * tsr_loss(saliencies) + 0.9 * csa_terms(saliencies, temperature=0.1).loss
    total.backward()


def straightforward_mgda(p: Problem) -> None:
    """T gradients from the T losses, the same MGDA solver, the direction written, the heads' Σ L_t backward."""
    _, losses = _losses(p)
    shared = [q for q in p.model.shared_parameters() if q.requires_grad]
    grads = torch.stack([flatten_grads([g[None] for g in torch.autograd.grad(loss, shared, retain_graph=True)])[0]
                         for loss in losses])
    direction, _ = mgda.aggregate(grads, losses=torch.stack(losses).detach())
    write_flat_grad(shared, direction)
    heads = [q for t in p.tasks for q in p.model.task_parameters(t)]
    torch.autograd.backward(sum(losses), inputs=heads)


#: variant -> (what it is, the step); "straightforward" rows are the floor of the row named before " (".
VARIANTS: dict[str, Callable[[Problem], None]] = {
    "ew": _ours("ew"),
    "rep-mtl": _ours("rep-mtl"),
    "rep-mtl (straightforward)": straightforward_repmtl,
    "mgda": _ours("mgda"),
    "mgda (straightforward)": straightforward_mgda,
    "nash-mtl": _ours("nash-mtl"),
    "fairgrad": _ours("fairgrad"),
}
PAPER_ONLY = {"nash-mtl", "fairgrad"}
#: the paper's problem is the costly one (seconds per step on a CPU): Rep-MTL and the two methods the paper
#: compares its speed with (Sec. 4.6)
NOT_ON_PAPER = {"mgda", "mgda (straightforward)"}


#: Gradient methods whose step is the generic GradientAggregation one (per-task gradients, the method's
#: aggregator, the direction written, the heads' backward): their straightforward twin is written once below.
AGGREGATORS = ["aligned-mtl", "cagrad", "config", "dualproj", "excess-mtl", "fairgrad", "gradvac", "metabalance",
               "mgda", "moco", "nash-mtl", "pcgrad", "upgrad"]
#: Gradient methods with steps of their own; each has its own twin below (TWINS).
OWN_STEPS = ["db-mtl", "imtl", "gradnorm", "mtadam"]
#: options that make a step do its full work from the first step (GradNorm is EW until it has initial losses)
OPTIONS = {"gradnorm": {"initial_loss": "first-step"}}
#: the control row: one method's straightforward step against a second copy of itself (true ratio 1)
CONTROL_METHOD = "mgda"
CONTROL = f"control: {CONTROL_METHOD} straightforward vs itself"
METHOD_RESULTS: dict[str, dict[str, tuple[float, float, tuple[float, float, float]]]] = {}


def straightforward_aggregation(strategy: mtlx.MTOStrategy, p: Problem) -> None:
    """T gradients from the T losses (a few lines), then the same aggregator, the direction, the heads' backward."""
    z, losses = _losses(p)
    shared = [q for q in p.model.shared_parameters() if q.requires_grad]
    grads = torch.stack([torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, shared, retain_graph=True)])
                         for loss in losses])
    step = mtlx.StepContext(model=p.model, losses=dict(zip(p.tasks, losses, strict=True)), representation=z)
    direction, weights = strategy.aggregate_grads(grads, step)
    write_flat_grad(shared, direction)
    heads = [q for t in p.tasks for q in p.model.task_parameters(t)]
    head_weights = weights.detach().to(losses[0]) if strategy.weighted_heads else torch.ones(len(losses))
    torch.autograd.backward(sum(w * loss for w, loss in zip(head_weights, losses, strict=True)), inputs=heads)


def _loop_grads(losses: list[torch.Tensor], shared: list[torch.nn.Parameter]) -> torch.Tensor:
    """``[T, P]``: each task's gradient on the shared parameters from its own loss."""
    return torch.stack([torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, shared, retain_graph=True)])
                        for loss in losses])


def straightforward_db_mtl(strategy: mtlx.MTOStrategy, p: Problem) -> None:
    """DB-MTL: ∇log(L_t + ε) = ∇L_t / (L_t + ε) per task, the same aggregator, the heads' Σ log(L_t + ε)."""
    _, losses = _losses(p)
    shared = [q for q in p.model.shared_parameters() if q.requires_grad]
    inverse = 1.0 / (torch.stack(losses).detach() + 1e-8)
    direction, _ = strategy.aggregate_grads(_loop_grads(losses, shared) * inverse[:, None], None)
    write_flat_grad(shared, direction)
    heads = [q for t in p.tasks for q in p.model.task_parameters(t)]
    torch.autograd.backward(sum(w * loss for w, loss in zip(inverse, losses, strict=True)), inputs=heads)


def straightforward_imtl(strategy: mtlx.MTOStrategy, p: Problem) -> None:
    """IMTL (hybrid): e^s_t ∇L_t per task, the same equal-projection solve, Σ e^s_t L_t − s_t into heads and s."""
    _, losses = _losses(p)
    shared = [q for q in p.model.shared_parameters() if q.requires_grad]
    scales = strategy.log_scales.exp()
    direction, _ = strategy.aggregate(_loop_grads(losses, shared) * scales.detach()[:, None])
    write_flat_grad(shared, direction)
    heads = [q for t in p.tasks for q in p.model.task_parameters(t)]
    total = (scales * torch.stack(losses) - strategy.log_scales).sum()
    torch.autograd.backward(total, inputs=[*heads, strategy.log_scales])


def straightforward_gradnorm(strategy: mtlx.MTOStrategy, p: Problem) -> None:
    """GradNorm: per-task gradient norms, the balance loss into the logits, Σ w_t g_t written, Σ L_t into heads."""
    _, losses = _losses(p)
    shared = [q for q in p.model.shared_parameters() if q.requires_grad]
    grads = _loop_grads(losses, shared)
    vector = torch.stack(losses)
    if strategy.state.initial_losses is None:
        strategy.state.initial_losses = vector.detach().double()
    weights = len(losses) * torch.softmax(strategy.logits, 0)
    norms = weights * grads.norm(dim=1)
    relative = vector.detach().double() / strategy.state.initial_losses
    target = (norms.mean() * (relative / relative.mean()).to(norms).pow(strategy.config.alpha)).detach()
    torch.autograd.backward((norms - target).abs().sum(), inputs=[strategy.logits])
    write_flat_grad(shared, weights.detach() @ grads)
    heads = [q for t in p.tasks for q in p.model.task_parameters(t)]
    torch.autograd.backward(vector.sum(), inputs=heads)


def straightforward_mtadam(strategy: mtlx.MTOStrategy, p: Problem) -> None:
    """MTAdam's backward (its optimiser step is not timed here): per-task gradients, the same per-layer
    rescale to the anchor task, their sum written, Σ L_t into the heads."""
    _, losses = _losses(p)
    shared = [q for q in p.model.shared_parameters() if q.requires_grad]
    sizes = torch.tensor([q.numel() for q in shared])
    layer_of = torch.repeat_interleave(torch.arange(len(shared)), sizes)
    balanced, _ = mtadam.balance(_loop_grads(losses, shared), layer_of, strategy.state.norms, strategy.config.beta3)
    write_flat_grad(shared, balanced.sum(0))
    heads = [q for t in p.tasks for q in p.model.task_parameters(t)]
    torch.autograd.backward(torch.stack(losses).sum(), inputs=heads)


TWINS: dict[str, Callable[[mtlx.MTOStrategy, Problem], None]] = {
    **dict.fromkeys(AGGREGATORS, straightforward_aggregation),
    "db-mtl": straightforward_db_mtl,
    "imtl": straightforward_imtl,
    "gradnorm": straightforward_gradnorm,
    "mtadam": straightforward_mtadam,
}


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    if METHOD_RESULTS:
        print("\n\n| problem | method | ours CPU ms | straightforward CPU ms | ours / straightforward | quartiles |")
        print("|---|---|---:|---:|---:|---|")
        for problem, rows in METHOD_RESULTS.items():
            for method, (ours, floor, (q1, median, q3)) in rows.items():
                print(f"| {problem} | {method} | {ours:.0f} | {floor:.0f} | {median:.2f} | {q1:.2f}–{q3:.2f} |")
    if not RESULTS:
        return
    print("\n\n| problem | step | CPU ms | × ew | × straightforward |")
    print("|---|---|---:|---:|---:|")
    for problem, times in RESULTS.items():
        for variant, ms in times.items():
            floor = times.get(f"{variant} (straightforward)")
            vs_floor = f"{ms / floor:.2f}" if floor else ""
            print(f"| {problem} | {variant} | {ms:.0f} | {ms / times['ew']:.2f} | {vs_floor} |")


@pytest.mark.parametrize("name", ["digits", "resnet18-64", "paper"])
def test_floor(benchmark, name, one_thread):
    problem = paper_problem() if name == "paper" else PROBLEMS[name]()
    tasks = list(problem.tasks)
    skip = NOT_ON_PAPER if name == "paper" else PAPER_ONLY
    variants = {k: v for k, v in VARIANTS.items() if k not in skip}
    registries = mtlx.PluginManager().registries  # a strategy that names another (rep-mtl's base) finds it here
    for variant in variants:
        if not variant.endswith("(straightforward)"):
            cls = registries.strategies.get(variant)
            config = RepMTLConfig(mode="paper") if cls is RepMTL else cls.Config()
            STRATEGIES[(variant, name)] = cls.from_registries(config, tasks=tasks, registries=registries)
    times: dict[str, list[float]] = {k: [] for k in variants}

    order = list(variants)

    def one_round() -> None:  # the order turns by one each round: no variant always follows the same one
        order.append(order.pop(0))
        for variant in order:
            step = variants[variant]
            problem.model.zero_grad(set_to_none=True)
            start = time.process_time()
            step(problem)
            times[variant].append(time.process_time() - start)

    benchmark.group = "floor"
    rounds = ROUNDS[name] if not benchmark.disabled else 1
    benchmark.pedantic(one_round, rounds=rounds, warmup_rounds=1 if not benchmark.disabled else 0, iterations=1)
    RESULTS[name] = {k: 1e3 * statistics.median(v[-rounds:]) for k, v in times.items()}
    benchmark.extra_info.update(RESULTS[name])


@pytest.mark.parametrize("name", ["digits", "resnet18-64"])
def test_gradient_methods_against_their_straightforward_loop(benchmark, name, one_thread):
    """Every gradient method: our step vs its straightforward twin, timed back to back in each round."""
    problem = PROBLEMS[name]()
    tasks = list(problem.tasks)
    ours = {m: _build(m, tasks) for m in TWINS}
    twins = {m: _build(m, tasks) for m in TWINS}
    for m in TWINS:  # the twin computes the same step: same shared gradients, first from fresh states
        _assert_same_step(problem, lambda m=m: _our_step(ours[m], problem), lambda m=m: TWINS[m](twins[m], problem))
    steps = {}
    for m in TWINS:
        steps[(m, "ours")] = lambda m=m: _our_step(ours[m], problem)
        steps[(m, "floor")] = lambda m=m: TWINS[m](twins[m], problem)
    # the noise floor of the ratio: the same straightforward step timed against a second copy of itself
    control = _build(CONTROL_METHOD, tasks)
    steps[(CONTROL, "ours")] = lambda: TWINS[CONTROL_METHOD](control, problem)
    steps[(CONTROL, "floor")] = lambda: TWINS[CONTROL_METHOD](twins[CONTROL_METHOD], problem)
    times: dict[tuple[str, str], list[float]] = {k: [] for k in steps}
    names = (*TWINS, CONTROL)
    methods = list(names)  # turned each round
    sides = ["ours", "floor"]

    def one_round() -> None:  # the methods' order turns by one, and which side of a pair goes first alternates
        methods.append(methods.pop(0))
        sides.reverse()
        for key in ((m, side) for m in methods for side in sides):
            problem.model.zero_grad(set_to_none=True)
            start = time.process_time()
            steps[key]()
            times[key].append(time.process_time() - start)

    benchmark.group = "floor: gradient methods"
    rounds = METHOD_ROUNDS[name] if not benchmark.disabled else 1
    benchmark.pedantic(one_round, rounds=rounds, warmup_rounds=1 if not benchmark.disabled else 0, iterations=1)
    METHOD_RESULTS[name] = {m: _summary(times[(m, "ours")][-rounds:], times[(m, "floor")][-rounds:]) for m in names}
    benchmark.extra_info.update({m: ratios[1] for m, (_, _, ratios) in METHOD_RESULTS[name].items()})


def _summary(ours: list[float], floor: list[float]) -> tuple[float, float, tuple[float, float, float]]:
    """Median ms of each side and the quartiles of the per-round ratios: the two steps of a round ran one
    after the other, so a ratio of one round is immune to the load changing between rounds (a ratio of
    medians is not)."""
    ratios = [o / f for o, f in zip(ours, floor, strict=True)]
    quartiles = (ratios[0],) * 3 if len(ratios) < 2 else tuple(statistics.quantiles(ratios, n=4))
    return 1e3 * statistics.median(ours), 1e3 * statistics.median(floor), quartiles


def _build(name: str, tasks: list[str]) -> mtlx.MTOStrategy:
    registries = mtlx.PluginManager().registries
    cls = registries.strategies.get(name)
    return cls.from_registries(cls.Config(**OPTIONS.get(name, {})), tasks=tasks, registries=registries)


def _our_step(strategy: mtlx.MTOStrategy, p: Problem) -> None:
    strategy.backward(make_step(p.model, p.x, p.targets, p.tasks))


def _assert_same_step(p: Problem, ours: Callable[[], None], twin: Callable[[], None]) -> None:
    """Both steps leave the same gradients on the model (rel. 1e-4): the twin is the same maths."""
    grads = []
    for step in (ours, twin):
        p.model.zero_grad(set_to_none=True)
        step()
        grads.append(torch.cat([q.grad.reshape(-1) for q in p.model.parameters() if q.grad is not None]))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)
