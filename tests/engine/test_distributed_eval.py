"""Sharded evaluation under data parallelism: every process evaluates whole batches of each split and the meters
are merged, so the metrics are those of the one-process evaluation (real torchrun, gloo, 2 CPU processes)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from mtlx.engine.evaluation import check_mergeable
from mtlx.errors import ConfigError
from mtlx.interfaces import Meter
from mtlx.metrics import MAEMeter
from mtlx_testing import toy_tasks

FIXTURES = Path(__file__).parents[1] / "fixtures"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(FIXTURES), *sys.path]), "OMP_NUM_THREADS": "1"}


def _assert_same_metrics(one: dict, two: dict, rel: float) -> None:
    assert one.keys() == two.keys()
    for task, metrics in one.items():
        for metric, value in metrics.items():
            other = two[task][metric]
            assert math.isclose(value, other, rel_tol=rel, abs_tol=1e-12), f"{task}.{metric}: {value} != {other}"


@pytest.mark.slow
def test_two_processes_evaluate_their_shards_to_the_one_process_metrics(tmp_path):
    """digits with all four tasks (confusion matrix, depth sums, accuracy counts, every normal error for the exact
    median) and the per-batch conventions; odd split sizes whose last batch is short and whose batches do not
    divide between the processes (val: 37 = 4 x 8 + 5, test: 20 = 2 x 8 + 4)."""
    pytest.importorskip("mtlx_digits", reason="the dataset comes from mtlx-digits")
    overrides = ["dataset.name=digits", "dataset.tasks=seg,depth,cls,normal", "dataset.train_size=16",
                 "dataset.val_size=37", "dataset.test_size=20", "train.eval_batch_size=8", "train.threads=1"]
    results = {}
    for nproc in (1, 2):
        out = tmp_path / f"{nproc}.json"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
                   str(FIXTURES / "mtl_eval_worker.py"), str(out), *overrides]
        done = subprocess.run(command, check=False, env=_env(), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        results[nproc] = json.loads(out.read_text())
    assert results[2]["sizes"] == [{"val": 21, "test": 12}, {"val": 16, "test": 8}]  # batches 0,2,4 | 1,3
    for split in ("val", "test", "val-per-batch", "test-per-batch"):
        _assert_same_metrics(results[1][split], results[2][split], rel=1e-9)
    assert results[1]["val"]["normal"] != results[1]["val-per-batch"]["normal"]  # the conventions differ


@pytest.mark.slow
def test_distributed_run_reports_the_one_process_val_and_test_metrics(tmp_path):
    """``mtlx run --nproc 2`` against one process on the global batch: the toy model (no BatchNorm) trains to the
    same weights (1e-5), and the sharded evaluation of splits of 16 in batches of 5 (5, 5, 5, 1) gives the same
    metrics."""
    args = ["--plugin", "mtlx_testing.plugin", "run", "-d", "toy", "-s", "toy-weighted", "-q", "--threads", "1",
            "--epochs", "2", "-o", "dataset.size=16", "-o", "train.eval_batch_size=5"]
    runs = {"one": [*args, "--batch-size", "4"], "two": [*args, "--batch-size", "2", "--nproc", "2"]}
    results = {}
    for name, command in runs.items():
        done = subprocess.run([sys.executable, "-m", "mtlx", *command, "--out", str(tmp_path / name)], check=False,
                              env=_env(), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        results[name] = json.loads((tmp_path / name / "results.json").read_text())
    for key in ("val", "test"):
        _assert_same_metrics(results["one"][key], results["two"][key], rel=1e-4)
    assert results["two"]["best"]["epoch"] == results["one"]["best"]["epoch"]


class _Unmergeable(MAEMeter):
    merge = Meter.merge  # the interface's: not implemented


def test_a_meter_without_merge_is_refused_before_a_data_parallel_run():
    tasks = toy_tasks(2)
    check_mergeable(tasks)
    tasks["reg1"] = attrs.evolve(tasks["reg1"], meter=_Unmergeable)
    with pytest.raises(ConfigError, match=r"the meter of task 'reg1' \(.*_Unmergeable\) does not implement "
                                          r"Meter.merge, which data-parallel evaluation needs .*run it in one process"):
        check_mergeable(tasks)
