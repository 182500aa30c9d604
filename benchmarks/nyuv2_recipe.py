"""Rep-MTL on the paper's NYUv2 recipe with synthetic data: step time, memory and the gradient balance.

The recipe of the Rep-MTL paper's NYUv2 experiment (``--preset paper``): hps +
dilated ResNet-50 + DeepLab ASPP heads, NYUv2's three tasks (13-class
segmentation, depth, normals), the log loss transform, Adam 1e-4 with weight
decay 1e-5, batch 8 at 288x384. The data are random tensors of those shapes
(nothing is read), so the numbers are about cost and the balance of gradients at
initialisation and over the first steps, not accuracy.

For each strategy: N optimiser steps (the engine's step: forward, the
strategy's backward, Adam) on one fixed batch, then the per-step time (median
after a warm-up), the peak memory (CUDA: ``max_memory_allocated``) and, for
rep-mtl, ‖∇ λR‖ / ‖∇ Σ L_t‖ on the encoder (``grad_ratio.<tsr|csa>.shared``) at
each step of a second, gauged run (``balance_every=1``, not timed).

Every run starts from one state: the same initial weights, the same batch, and
the global RNG reseeded (``DROPOUT_SEED``) so that the ASPP heads' dropout draws
the same masks at each step of every run (the model stays in training mode, as
in training). Step 1 of the two rep-mtl modes is then the same forward, so the
two modes log the same regulariser values and saliency norms there and the
balanced λ satisfies λ_bal ≤ ρ · λ_paper / ratio_paper on the encoder; the
script checks both and fails otherwise (a table that mixes draws)::

    python benchmarks/nyuv2_recipe.py --device cuda --steps 20            # the GPU check (one command)
    python benchmarks/nyuv2_recipe.py --device cpu --batch 2 --steps 3 --skip-timing --strategies rep-mtl:paper,rep-mtl

Strategies: ``ew``, ``rep-mtl:paper`` (λ = 0.9, the anchor of the paper's sensitivity study; τ = 0.1),
``rep-mtl`` (balanced, the default), ``nash-mtl``, ``fairgrad`` (``--strategies`` picks). The two gradient
methods are timed with each way of computing their per-task gradients (``--grad-methods``,
``train.per_task_grads``: ``loop`` and ``two-stage``), so the same command says which one ``auto`` should
pick on that device (``mtlx.gradients.AUTO_METHOD``).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

import mtlx
from mtlx.build import build_model
from mtlx.config import build_component_config, resolve_run_config
from mtlx_dense import depth_task, normal_task, segmentation_task
from mtlx_testing import make_step

#: seed of the global RNG at the start of every run: the dropout masks are the same draws in every row
DROPOUT_SEED = 0
#: the strategies whose step takes per-task gradients on the shared parameters (timed per grad method)
PER_TASK = {"nash-mtl", "fairgrad"}
STRATEGIES = {
    "ew": ("ew", {}),
    "rep-mtl:paper": ("rep-mtl", {"mode": "paper"}),
    "rep-mtl": ("rep-mtl", {}),
    "nash-mtl": ("nash-mtl", {}),
    "fairgrad": ("fairgrad", {}),
}


def build(args: argparse.Namespace):
    tasks = {"segmentation": segmentation_task(13), "depth": depth_task(), "normal": normal_task()}
    config = resolve_run_config(
        [{"dataset.name": "digits", "arch.name": "hps", "backbone.name": "resnet50-dilated",
          "head.name": "deeplab-aspp"}]
    )
    torch.manual_seed(0)
    model = build_model(config, tasks, (3, args.height, args.width)).to(args.device)
    g = torch.Generator().manual_seed(0)
    b, h, w = args.batch, args.height, args.width
    x = torch.randn(b, 3, h, w, generator=g)
    normal = torch.nn.functional.normalize(torch.randn(b, 3, h, w, generator=g), dim=1)
    targets = {
        "segmentation": torch.randint(0, 13, (b, h, w), generator=g),
        "depth": torch.rand(b, 1, h, w, generator=g) * 10 + 0.5,
        "normal": normal,
    }
    return tasks, model, x.to(args.device), {k: v.to(args.device) for k, v in targets.items()}


def make_strategy(label: str, tasks, extra: dict) -> mtlx.MTOStrategy:
    name, options = STRATEGIES[label]
    registries = mtlx.PluginManager().registries  # rep-mtl's base weighting is looked up here
    cls = registries.strategies.get(name)
    config = build_component_config(cls.Config, {**options, **(extra if name == "rep-mtl" else {})}, where=label)
    return cls.from_registries(config, tasks=list(tasks), registries=registries)


def train(label, tasks, model, x, targets, steps, device, extra=None, grad_method="auto"):
    """``steps`` engine steps from the shared state; returns per-step seconds and each step's diagnostics."""
    model = copy.deepcopy(model)
    torch.manual_seed(DROPOUT_SEED)  # all devices: every run draws the same dropout masks
    strategy = make_strategy(label, tasks, extra or {})
    params = [*model.parameters(), *strategy.extra_parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-4, weight_decay=1e-5)
    times, diagnostics = [], []
    for it in range(steps):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        step = make_step(model, x, targets, tasks, iteration=it, transform="log", grad_method=grad_method)
        result = strategy.backward(step)
        optimizer.step()
        strategy.after_step(step)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        diagnostics.append(dict(result.diagnostics))
    return times, diagnostics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--height", type=int, default=288)
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--grad-methods", default="loop,two-stage",
                        help="per-task gradient methods to time nash-mtl and fairgrad with (train.per_task_grads)")
    parser.add_argument("--skip-timing", action="store_true", help="only the gauged runs (the balance)")
    args = parser.parse_args()
    tasks, model, x, targets = build(args)
    labels = args.strategies.split(",")
    print(f"# {args.device} ({torch.cuda.get_device_name() if args.device.startswith('cuda') else 'CPU'}), "
          f"torch {torch.__version__}, batch {args.batch} at {args.height}x{args.width}, {args.steps} steps")
    if not args.skip_timing:
        print("\n| strategy | step ms (median) | × ew | peak memory MB | × ew |")
        print("|---|---:|---:|---:|---:|")
        rows = {}
        runs = [(label, method) for label in labels
                for method in (args.grad_methods.split(",") if STRATEGIES[label][0] in PER_TASK else ["auto"])]
        for label, method in runs:
            if args.device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            times, _ = train(label, tasks, model, x, targets, args.steps, args.device, grad_method=method)
            peak = torch.cuda.max_memory_allocated() / 2**20 if args.device.startswith("cuda") else float("nan")
            row = label if method == "auto" else f"{label} ({method})"
            rows[row] = (1e3 * statistics.median(times[1:] or times), peak)
        base = rows.get("ew", next(iter(rows.values())))
        for label, (ms, mb) in rows.items():
            print(f"| {label} | {ms:.0f} | {ms / base[0]:.2f} | {mb:.0f} | {mb / base[1]:.2f} |")
    print("\n| strategy | step | λ_tsr | λ_csa | grad_ratio tsr (encoder) | grad_ratio csa (encoder) |")
    print("|---|---:|---:|---:|---:|---:|")
    gauged = {}
    for label in labels:
        if STRATEGIES[label][0] != "rep-mtl":
            continue
        _, gauged[label] = train(label, tasks, model, x, targets, args.steps, args.device, {"balance_every": 1})
        for it, d in enumerate(gauged[label]):
            print(f"| {label} | {it + 1} | {d['lambda_tsr']:.3g} | {d['lambda_csa']:.3g} "
                  f"| {d.get('grad_ratio.tsr.shared', float('nan')):.3g} "
                  f"| {d.get('grad_ratio.csa.shared', float('nan')):.3g} |")
    if {"rep-mtl:paper", "rep-mtl"} <= gauged.keys():
        check_one_state(gauged["rep-mtl:paper"][0], gauged["rep-mtl"][0], make_strategy("rep-mtl", tasks, {}).config)


def check_one_state(paper: dict, balanced: dict, config) -> None:
    """Step 1 of both modes must be one forward (weights, batch, dropout masks): fail on a table that mixes draws.

    The forward shows in the step's regulariser values and saliency norms, which must agree; then the
    balanced λ is at most ρ · λ_paper / ratio_paper on the encoder (the estimate is the minimum over the
    encoder and the heads), with equality when the encoder binds.
    """
    state = [k for k in paper if k in ("tsr", "csa") or k.startswith("saliency_norm.")]
    differ = {k: (paper[k], balanced[k]) for k in state if abs(paper[k] - balanced[k]) > 1e-6 * abs(paper[k])}
    if differ:
        raise SystemExit(f"step 1 of the two rep-mtl modes saw different forwards (mixed draws): {differ}")
    for name in ("tsr", "csa"):
        bound = config.rho * paper[f"lambda_{name}"] / paper[f"grad_ratio.{name}.shared"]
        share = balanced[f"lambda_{name}"] / bound
        print(f"# step 1, {name}: balanced λ / (ρ · λ_paper / ratio_paper on the encoder) = {share:.4f} (≤ 1)")
        if share > 1 + 1e-4:
            raise SystemExit(f"step 1 of the two rep-mtl modes is not one state ({name}: {share:.4f} > 1)")

if __name__ == "__main__":
    main()
