"""`mtlx report`'s row labels: the strategy name plus what departs from the other rows AND from the defaults
(the component's Config, the dataset's recommendation, the core's TrainConfig), on the configs `mtlx run` writes."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from mtlx.config import resolve_run_config
from mtlx_tools.report import build_tables, find_runs
from mtlx_tools.report.plots import _legend_labels

from .test_leaderboard import write_run


def real_config(seed: int = 0, **overrides) -> dict:
    """The config.toml (by section) `mtlx run -d digits -o KEY=VALUE ...` writes: every option at its default but
    the overrides, as the core resolves and writes it out."""
    layer = {"dataset.name": "digits", "train.seed": seed, **{k.replace("__", "."): v for k, v in overrides.items()}}
    return resolve_run_config([layer]).to_dict()


def run(root: Path, name: str, config: dict, miou: float = 0.5) -> Path:
    return write_run(root / name, config["strategy"]["name"], config["train"]["seed"], miou, dataset="digits",
                     config=config)


#: run directory -> (overrides, expected label). Two seeds of the all-default rows; the others depart from the
#: defaults in a strategy option, two of them, a dataset option, train.* (epochs; lr, where TrainConfig's 1e-3
#: departs from digits' recommended 2e-3) and the architecture.
ROWS = {
    "ew-s0": ({}, "ew"),
    "ew-s1": ({"train__seed": 1}, "ew"),
    "ew-2ep": ({"train__epochs": 2}, "ew (train.epochs=2)"),
    "ew-lr": ({"train__lr": 0.001}, "ew (train.lr=0.001)"),
    "mgda-mtan": ({"strategy__name": "mgda", "arch__name": "mtan"}, "mgda (arch.name=mtan)"),
    "mgda": ({"strategy__name": "mgda"}, "mgda"),
    "rep-s0": ({"strategy__name": "rep-mtl"}, "rep-mtl"),
    "rep-s1": ({"strategy__name": "rep-mtl", "train__seed": 1}, "rep-mtl"),
    "rep-tau": ({"strategy__name": "rep-mtl", "strategy__temperature": 0.3}, "rep-mtl (strategy.temperature=0.3)"),
    "rep-rho-tau": ({"strategy__name": "rep-mtl", "strategy__rho": 0.01, "strategy__temperature": 0.3},
                    "rep-mtl (strategy.rho=0.01, strategy.temperature=0.3)"),
    "rep-small": ({"strategy__name": "rep-mtl", "dataset__train_size": 256}, "rep-mtl (dataset.train_size=256)"),
}


def by_label(text: str) -> dict[str, dict[str, str]]:
    return {row["label"]: row for row in csv.DictReader(io.StringIO(text))}


def test_labels_name_only_what_departs_from_the_defaults(cli, tmp_path):
    """A 13-option Rep-MTL row reads "rep-mtl (strategy.temperature=0.3)", not every option that differs between
    rows; the all-default row is the strategy's name. CSV, Markdown and the plots' legends share the labels."""
    pytest.importorskip("mtlx_repmtl", reason="its rows are rep-mtl runs (mtlx-repmtl)")
    for name, (overrides, _) in ROWS.items():
        run(tmp_path / "runs", name, real_config(**overrides))
    (table,) = build_tables(find_runs([tmp_path / "runs"]))
    expected = sorted({label for _, label in ROWS.values()})
    assert sorted(row.label for row in table.rows) == expected
    assert {row.label: len(row.runs) for row in table.rows}["rep-mtl"] == 2

    out = tmp_path / "report"
    result = cli("report", str(tmp_path / "runs"), "--out", str(out), "--no-plots", "--reference", "ew",
                 "--format", "markdown", toy=False)
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.stderr  # every plugin installed: every default known
    for label in expected:
        assert f"| {label} |" in result.stdout
    assert set(by_label((out / "digits.csv").read_text())) == {"single-task baseline", *expected}
    assert [line.split(" ", 1)[1].rsplit(" (n=", 1)[0] for line in _legend_labels(table, width=80)] == \
        [row.label for row in table.rows]


def test_labels_stay_unique_when_a_row_lacks_an_option_the_other_has_at_its_default(tmp_path):
    """A record written before an option existed (no csa_tasks) beside one at its default ("mean"): the rows differ
    in that option, so they cannot both be at its default, and the one that is not says so."""
    pytest.importorskip("mtlx_repmtl", reason="its rows are rep-mtl runs (mtlx-repmtl)")
    old = real_config(strategy__name="rep-mtl")
    del old["strategy"]["csa_tasks"]
    run(tmp_path, "old", old)
    run(tmp_path, "new", real_config(strategy__name="rep-mtl"))
    run(tmp_path, "sum", real_config(strategy__name="rep-mtl", strategy__csa_tasks="sum"))
    (table,) = build_tables(find_runs([tmp_path]))
    assert sorted(row.label for row in table.rows) == [
        "rep-mtl", "rep-mtl (strategy.csa_tasks=None)", "rep-mtl (strategy.csa_tasks=sum)"]


def test_a_component_whose_plugin_is_missing_is_labelled_by_every_option_that_differs(cli, tmp_path):
    """Defaults of a strategy that is not installed are unknown: its rows keep every differing option (the
    labelling without defaults), with one warning line; the installed ones' rows still drop their defaults."""
    for name, alpha in (("x1", 1), ("x2", 2)):
        config = real_config()
        config["strategy"] = {"name": "not-installed", "alpha": alpha, "beta": "same"}
        run(tmp_path / "runs", name, config)
    run(tmp_path / "runs", "ew", real_config())
    run(tmp_path / "runs", "ew-2ep", real_config(train__epochs=2))
    lines = []
    (table,) = build_tables(find_runs([tmp_path / "runs"]), warn=lines.append)
    assert [row.label for row in table.rows] == [
        "ew", "ew (train.epochs=2)", "not-installed (strategy.alpha=1)", "not-installed (strategy.alpha=2)"]
    assert lines == [("row labels show every option that differs between rows for strategy 'not-installed': "
                      "its plugin is not installed, so its defaults are unknown")]

    result = cli("report", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--no-plots",
                 "--format", "csv", toy=False)
    assert result.exit_code == 0, result.output
    assert [line for line in result.stderr.splitlines() if line.startswith("Warning")] == [f"Warning: {lines[0]}"]
    assert "not-installed (strategy.alpha=2)" in by_label(result.stdout)


def test_blocking_an_installed_plugin_falls_back_for_its_rows_only(cli, tmp_path):
    """`mtlx --no-plugin rep-mtl report`: the report takes its registries from the command line's plugin manager,
    so Rep-MTL's defaults are unknown there (its rows show every differing option) while EW's are still known."""
    pytest.importorskip("mtlx_repmtl", reason="its rows are rep-mtl runs (mtlx-repmtl)")
    for name in ("ew-s0", "ew-2ep", "rep-s0", "rep-tau"):
        run(tmp_path / "runs", name, real_config(**ROWS[name][0]))
    result = cli("--no-plugin", "rep-mtl", "report", str(tmp_path / "runs"), "--out", str(tmp_path / "out"),
                 "--no-plots", "--format", "csv", toy=False)
    assert result.exit_code == 0, result.output
    assert list(by_label(result.stdout)) == [
        "single-task baseline", "ew", "ew (train.epochs=2)", "rep-mtl (strategy.temperature=0.1)",
        "rep-mtl (strategy.temperature=0.3)"]
    assert [line for line in result.stderr.splitlines() if line.startswith("Warning")] == [
        ("Warning: row labels show every option that differs between rows for strategy 'rep-mtl': its plugin is "
         "not installed, so its defaults are unknown")]
