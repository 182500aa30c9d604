"""``mtlx run`` end to end on the tiny Office-31: multi-input training with EW and Rep-MTL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import mtlx.cli
from mtlx.metrics import AccuracyMeter
from mtlx_office import dataset as dataset_module

from .conftest import DOMAINS, write_office31

_FAST = ["-o", "dataset.image_size=32", "--epochs", "1", "--batch-size", "2", "--device", "cpu", "-q"]


def _run(root: Path, out: Path, strategy: str) -> dict:
    args = ["run", "--strategy", strategy, "--dataset", "office-31", "--data-root", str(root), "--out", str(out)]
    result = CliRunner().invoke(mtlx.cli.main, [*args, *_FAST])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return json.loads((out / "results.json").read_text())


@pytest.mark.parametrize("strategy", ["ew", "rep-mtl"])
def test_run_trains_every_domain_and_reports_accuracy_and_delta(office31, tmp_path, strategy):
    root, _ = office31
    results = _run(root, tmp_path / strategy, strategy)
    assert results["tasks"] == list(DOMAINS)
    assert results["steps"] == 2  # 4 training images per domain, batch 2
    for domain in DOMAINS:
        assert 0.0 <= results["test"][domain]["acc"] <= 1.0
    assert results["baseline"]["dslr"] == {"acc": 0.9563}
    assert "delta_m_task" in results["test_summary"]


class _CountingMeter(AccuracyMeter):
    """Records how many samples each computed accuracy was over."""

    counts: list[int] = []

    def compute(self) -> dict[str, float]:
        _CountingMeter.counts.append(int(self.counts[1]))
        return super().compute()


def test_evaluation_counts_every_test_image_exactly_once(tmp_path, monkeypatch):
    """Domains of different sizes (test: amazon 5, dslr 3, webcam 2 images; batch 2)."""
    root = tmp_path / "office-31"
    write_office31(root)
    lists = root / "data_txt" / "office-31"
    train_lines = (lists / "amazon_train.txt").read_text().splitlines(keepends=True)
    with (lists / "amazon_test.txt").open("a") as handle:
        handle.writelines(train_lines[:3])
    with (lists / "dslr_test.txt").open("a") as handle:
        handle.writelines((lists / "dslr_train.txt").read_text().splitlines(keepends=True)[:1])
    monkeypatch.setattr(dataset_module, "AccuracyMeter", _CountingMeter)
    monkeypatch.setattr(_CountingMeter, "counts", [])
    _run(root, tmp_path / "run", "ew")
    assert _CountingMeter.counts[-3:] == [5, 3, 2]
