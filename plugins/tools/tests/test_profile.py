"""``mtlx profile`` end to end on digits (small splits): JSON fields against independent counts."""

from __future__ import annotations

import json
import re

import pytest
import torch
from click.testing import CliRunner

from mtlx import phases
from mtlx.build import build, build_model
from mtlx.cli import main
from mtlx.config import resolve_run_config
from mtlx_digits.tasks import TASKS  # the dataset profiled here
from mtlx_tools import count_flops
from mtlx_tools.profile.measure import profile_components

_DIGITS = [
    "--dataset",
    "digits",
    "-o",
    "dataset.train_size=4",
    "-o",
    "dataset.val_size=1",
    "-o",
    "dataset.test_size=1",
    "--batch-size",
    "4",
    "--steps",
    "2",
    "--warmup",
    "0",
    "--device",
    "cpu",
]


def _invoke(*args):
    return CliRunner().invoke(main, ["profile", *_DIGITS, *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def saliency_mgda():
    result = CliRunner().invoke(
        main,
        [
            "profile",
            *_DIGITS,
            "--arch",
            "saliency-decoder",
            "--strategy",
            "mgda",
            "-o",
            "strategy.grad_mode=rep",
            "--json",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_profile_json_matches_independent_counts(saliency_mgda):
    r = saliency_mgda
    config = resolve_run_config([{"dataset.name": "digits", "dataset.train_size": 4, "arch.name": "saliency-decoder"}])
    tasks = {t: TASKS[t] for t in r["params_per_task"]}
    model = build_model(config, tasks, (1, 32, 32))
    assert r["params_total"] == sum(p.numel() for p in model.parameters())
    assert r["params_shared"] == sum(p.numel() for p in model.backbone.parameters())
    assert r["params_per_task"] == {
        t: sum(p.numel() for p in (*model.saliency[t].parameters(), *model.heads[t].parameters())) for t in tasks
    }
    assert r["flops"]["total"] == count_flops(model, torch.zeros(1, 1, 32, 32)).total
    assert r["flops"]["uncounted"] == {}
    assert r["batch_size"] == 4 and r["input_shape"] == [1, 32, 32]


def test_profile_reports_strategy_cost_over_ew_by_the_cores_phase_labels(saliency_mgda):
    r = saliency_mgda
    top = (phases.FORWARD, phases.STRATEGY, phases.OPTIMIZER)
    assert r["compare"] == "ew"
    for times in (r["times"], r["compare_times"]):
        assert set(times["phases"]) == {*top, phases.PER_TASK_GRADS, phases.BACKWARD}
        assert all(v >= 0 for v in times["phases"].values()) and times["phases"][phases.FORWARD] > 0
        assert times["total"] == pytest.approx(sum(times["phases"][p] for p in top) + times["other"])
        inside = times["phases"][phases.PER_TASK_GRADS] + times["phases"][phases.BACKWARD]
        assert inside <= times["phases"][phases.STRATEGY] * 1.01
    assert r["times"]["phases"][phases.PER_TASK_GRADS] > 0  # mgda computes per-task gradients; ew does not
    assert r["compare_times"]["phases"][phases.PER_TASK_GRADS] == 0
    assert r["strategy_extra_ms"] == pytest.approx(r["times"]["total"] - r["compare_times"]["total"])
    assert r["saved_activations_bytes"] > 4 * 32 * 32 * 4  # at least the input batch's worth
    assert r["peak_memory_bytes"] > r["saved_activations_bytes"]


def test_profile_table_and_synthetic_mode():
    result = _invoke("--arch", "cross-stitch", "--synthetic")
    assert result.exit_code == 0, result.output
    assert "every operator that ran was counted" in result.output
    assert "time per training step (the engine's), batch 4, cpu, fp32" in result.output
    assert "(own forward)" in result.output  # cross-stitch mixes features in its own forward


def test_profile_refuses_representation_strategy_without_z():
    result = CliRunner().invoke(
        main, ["profile", *_DIGITS, "--arch", "mtan", "--strategy", "mgda", "-o", "strategy.grad_mode=rep"]
    )
    assert result.exit_code == 2
    assert "needs a single shared representation, but architecture 'mtan' has none" in result.output


def _digits_components(**train):
    user = {"dataset.name": "digits", "dataset.train_size": 4, "dataset.val_size": 1, "dataset.test_size": 1,
            "train.device": "cpu", **{f"train.{k}": v for k, v in train.items()}}
    torch.manual_seed(0)
    return build(resolve_run_config([user]))


def test_the_profiled_step_is_the_engines_with_its_gradient_clipping():
    """With train.max_grad_norm the timed step clips as `mtlx run` does: plain SGD moves the weights by lr * norm."""
    lr, max_norm = 0.5, 1e-4
    components = _digits_components(optimizer="sgd", momentum=0.0, lr=lr, max_grad_norm=max_norm)
    before = [p.detach().clone() for p in components.model.parameters()]
    profile_components(components, batch_size=4, steps=1, warmup=0, flops=False, compare=None)
    moved = torch.cat([(p.detach() - b).flatten() for p, b in zip(components.model.parameters(), before, strict=True)])
    # two steps (the timed pass and the profiled one), each clipped to norm max_norm
    assert 0 < moved.norm() <= 2 * lr * max_norm * 1.001


def test_the_profiled_step_scales_fp16_losses_with_the_engines_grad_scaler(monkeypatch):
    scaled = []
    real_scale = torch.amp.GradScaler.scale
    monkeypatch.setattr(torch.amp.GradScaler, "scale", lambda self, x: scaled.append(1) or real_scale(self, x))
    components = _digits_components(precision="fp16")
    with pytest.warns(RuntimeWarning, match="fp16 on a CPU is slow"):
        profile_components(components, batch_size=4, steps=1, warmup=0, flops=False, compare=None)
    assert scaled  # the engine's GradScaler took part in the step


def _help() -> str:
    result = CliRunner().invoke(main, ["profile", "--help"], terminal_width=200, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _help_examples() -> list:
    """Each ``mtlx profile ...`` line of the help's examples, and the ``-o`` option's ``e.g.``, as arguments."""
    text = _help().replace("\\\n", " ")  # an example continued on the next line
    lines = [line.split("#")[0].split() for line in text.splitlines() if line.strip().startswith("mtlx profile")]
    examples = [line[2:] for line in lines]
    option = re.search(r"-o, --override SECTION\.KEY=VALUE(.*?)\n  -", text, flags=re.DOTALL).group(1)
    examples.append(re.search(r"e\.g\. (.*?)\.$", " ".join(option.split())).group(1).split())
    marks = [pytest.mark.slow if _dataset(args) != "digits" else () for args in examples]  # a real model, real size
    return [pytest.param(args, marks=mark, id=" ".join(args) or "(no options)") for args, mark in zip(examples, marks)]


def _dataset(args: list[str]) -> str:
    flags = [i for i, arg in enumerate(args) if arg in ("-d", "--dataset")]
    return args[flags[-1] + 1] if flags else "digits"


@pytest.mark.parametrize("args", _help_examples())
def test_every_example_of_the_help_runs(args):
    dataset = _dataset(args)
    if dataset != "digits":
        pytest.importorskip(f"mtlx_{dataset}", reason=f"the example profiles dataset {dataset}")
    small = ["-o", "dataset.train_size=8", "-o", "dataset.val_size=1", "-o", "dataset.test_size=1"]
    extra = [*(small if dataset == "digits" else []), "--warmup", "0", *([] if "--steps" in args else ["--steps", "1"])]
    result = CliRunner().invoke(main, ["profile", *args, *extra, "--threads", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def test_the_step_table_keeps_every_header_whole_in_80_columns():
    result = CliRunner().invoke(main, ["profile", *_DIGITS, "--strategy", "mgda", "--no-flops"], terminal_width=80,
                                env={"COLUMNS": "80"}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80, result.output
    table = result.output.split("time per training step")[1]
    for label in (*(p.removeprefix("mtlx/") for p in (phases.FORWARD, phases.STRATEGY, phases.OPTIMIZER,
                                                       phases.PER_TASK_GRADS, phases.BACKWARD)), "other", "total"):
        assert re.search(rf"(^|\s){re.escape(label)}(\s|$)", table, flags=re.MULTILINE), (label, table)
    assert "…" not in result.output


def test_the_profilers_own_log_lines_stay_out_of_the_output():
    """torch.profiler's C++ backend (kineto) logs 'profiler_start' lines on the process's stderr: a subprocess."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "mtlx", "profile", *_DIGITS, "--no-flops", "--threads", "1"],
                         check=False, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "time per training step" in out.stdout
    assert not [line for line in (out.stdout + out.stderr).splitlines() if "ActivityProfiler" in line or "USDT:" in line]
