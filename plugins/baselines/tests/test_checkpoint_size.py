"""The start-up disk check (``mtlx run`` refuses a run whose checkpoint would not fit) asks for about the size of
the checkpoint the run then writes, whatever per-parameter state its strategy keeps (MTAdam's moments per task,
MoCo's, DB-MTL's and ExcessMTL's per-task gradient matrices) in place of or beside the optimiser's."""

from __future__ import annotations

import pytest

from mtlx import rundir
from mtlx_testing import invoke_cli

TINY = ["-o", "dataset.train_size=64", "-o", "dataset.val_size=32", "-o", "dataset.test_size=32"]


@pytest.mark.parametrize("strategy", ["ew", "mtadam", "moco", "db-mtl", "excess-mtl"])
def test_the_start_up_disk_check_asks_for_about_the_checkpoints_size(strategy, tmp_path, monkeypatch):
    asked: list[int] = []
    check = rundir.check_writable

    def spy(run_dir, needed):
        asked.append(needed)
        return check(run_dir, needed)

    monkeypatch.setattr(rundir, "check_writable", spy)
    out = tmp_path / "run"
    result = invoke_cli("run", "-s", strategy, "-d", "digits", "--device", "cpu", "--threads", "1", "-q",
                        "--max-steps", "2", *TINY, "--out", out)
    assert result.exit_code == 0, result.output
    written = (out / "last.pt").stat().st_size
    assert len(asked) == 1 and 0.8 * written <= asked[0] <= 1.25 * written, (asked, written)
