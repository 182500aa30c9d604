"""`mtlx report`: rows of seeds, mean ± std, Delta_m in both conventions, Markdown/CSV files, PNG plots."""

from __future__ import annotations

import csv
import io
import json
import shutil
import statistics

import attrs
import pytest

from mtlx.errors import ConfigError
from mtlx.hooks import PluginManager
from mtlx_tools.report import build_tables, find_runs, load_run


def results(path):
    return json.loads((path / "results.json").read_text())


def rows_by_label(text):
    return {row["label"]: row for row in csv.DictReader(io.StringIO(text))}


def test_report_table_is_mean_and_std_over_seeds(cli, toy_runs, tmp_path):
    out = tmp_path / "report"
    result = cli("report", *map(str, toy_runs.values()), "--out", str(out), "--format", "csv", "--no-plots")
    assert result.exit_code == 0, result.output
    rows = rows_by_label((out / "toy.csv").read_text())
    # a1/a2 train at the default lr (1e-3): labelled by the strategy alone
    assert set(rows) == {"single-task baseline", "toy-weighted", "toy-weighted (train.lr=0.01)"}
    a1, a2, b1 = (results(toy_runs[k]) for k in ("a1", "a2", "b1"))
    seeds = rows["toy-weighted"]
    assert seeds["n"] == "2" and seeds["seeds"] == "1 2"
    for task, metric in [("seg0", "acc"), ("reg1", "mae")]:
        values = [a1["test"][task][metric], a2["test"][task][metric]]
        assert float(seeds[f"{task}.{metric}.mean"]) == pytest.approx((values[0] + values[1]) / 2, rel=1e-12)
        by_hand = abs(values[0] - values[1]) / 2**0.5  # sample std (n - 1) of two values
        assert float(seeds[f"{task}.{metric}.std"]) == pytest.approx(by_hand, rel=1e-9)
        single = rows["toy-weighted (train.lr=0.01)"]
        assert float(single[f"{task}.{metric}.mean"]) == b1["test"][task][metric]
        assert single[f"{task}.{metric}.std"] == ""  # one seed: no std
    for conv in ("task", "metric"):
        values = [a1["test_summary"][f"delta_m_{conv}"], a2["test_summary"][f"delta_m_{conv}"]]
        assert float(seeds[f"delta_m_{conv}.mean"]) == pytest.approx(statistics.fmean(values), rel=1e-12)
        assert float(seeds[f"delta_m_{conv}.std"]) == pytest.approx(statistics.stdev(values), rel=1e-9)
    assert float(rows["single-task baseline"]["seg0.acc.mean"]) == a1["baseline"]["seg0"]["acc"]
    assert rows_by_label(result.stdout) == rows  # --format csv prints the same table
    assert not list(out.glob("*.png"))

    markdown = (out / "report.md").read_text()
    mean = (a1["test"]["reg1"]["mae"] + a2["test"]["reg1"]["mae"]) / 2
    std = abs(a1["test"]["reg1"]["mae"] - a2["test"]["reg1"]["mae"]) / 2**0.5
    assert f"| {mean:.4f} ± {std:.4f} |" in markdown
    assert "| strategy | n | seg0 acc ↑ | reg1 mae ↓ | Δm task % ↑ | Δm metric % ↑ |" in markdown


def test_report_writes_nonblank_plots(cli, toy_runs, tmp_path):
    from PIL import Image, ImageStat

    out = tmp_path / "report"
    result = cli("report", *map(str, toy_runs.values()), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "toy (test)" in result.stdout and "single-task baseline" in result.stdout
    for name in ("toy_loss.png", "toy_weights.png", "toy_delta_m.png"):
        with Image.open(out / name) as image:
            assert image.width > 300 and image.height > 200
            grey = image.convert("L")
            assert ImageStat.Stat(grey).stddev[0] > 10  # not a blank canvas
            assert len(grey.getcolors(maxcolors=1 << 16)) > 20


def test_runs_of_a_directory_and_recomputed_delta_m(toy_runs, tmp_path):
    """A parent directory stands for its runs; a run without a summary gets Delta_m from mtlx.metrics.delta_m."""
    parent = tmp_path / "runs"
    for name in ("a1", "a2"):
        shutil.copytree(toy_runs[name], parent / name)
    stored = build_tables(find_runs([parent]))[0].rows[0].delta_m
    for name in ("a1", "a2"):
        data = results(parent / name)
        del data["test_summary"]
        (parent / name / "results.json").write_text(json.dumps(data))
    recomputed = build_tables(find_runs([parent]))[0].rows[0].delta_m
    for conv in ("task", "metric"):
        assert recomputed[conv].values == pytest.approx(stored[conv].values, rel=1e-12)


def test_val_and_test_at_best_splits(toy_runs):
    run = load_run(toy_runs["a1"])
    val = build_tables([run], "val")[0]
    assert val.rows[0].cells[("reg1", "mae")].values == (run.results["val"]["reg1"]["mae"],)
    at_best = build_tables([run], "test-at-best")[0]  # one epoch: the best epoch is the last
    assert at_best.rows[0].cells[("reg1", "mae")].values == (run.results["test"]["reg1"]["mae"],)
    no_test = attrs.evolve(run, results={k: v for k, v in run.results.items() if k != "test"})
    with pytest.raises(ConfigError, match=r"has no 'test' results \(results.json has: val\); choose another --split"):
        build_tables([no_test], "test")


def test_missing_or_damaged_run_directories_are_named(cli, toy_runs, tmp_path):
    result = cli("report", str(tmp_path / "nope"))
    assert result.exit_code == 2 and f"run directory {tmp_path / 'nope'} does not exist" in result.output

    damaged = tmp_path / "damaged"
    shutil.copytree(toy_runs["a1"], damaged)
    (damaged / "results.json").write_text('{"dataset": ')
    with pytest.raises(ConfigError, match=f"{damaged / 'results.json'} cannot be read as JSON"):
        load_run(damaged)

    unfinished = tmp_path / "unfinished"
    shutil.copytree(toy_runs["a1"], unfinished)
    (unfinished / "results.json").unlink()
    with pytest.raises(ConfigError, match="is not a finished run: it has no results.json.*--resume"):
        load_run(unfinished)

    bad_log = tmp_path / "bad_log"
    shutil.copytree(toy_runs["a1"], bad_log)
    with (bad_log / "metrics.jsonl").open("a") as f:
        f.write("{truncated\n")
    lines = len((bad_log / "metrics.jsonl").read_text().splitlines())
    with pytest.raises(ConfigError, match=f"metrics.jsonl:{lines} is not a JSON record"):
        load_run(bad_log)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no finished run to report"):
        find_runs([empty], skip=lambda line: None)


def test_report_skips_empty_and_unfinished_run_directories_with_one_line_each(toy_runs, tmp_path):
    """A stale folder among the runs (a failed start, an interrupted run) does not stop the report."""
    runs = tmp_path / "runs"
    shutil.copytree(toy_runs["a1"], runs / "a1")
    shutil.copytree(toy_runs["a1"], runs / "unfinished")
    (runs / "unfinished" / "results.json").unlink()
    (tmp_path / "empty").mkdir()
    lines: list[str] = []
    found = find_runs([runs, tmp_path / "empty"], skip=lines.append)
    assert [r.path.name for r in found] == ["a1"]
    assert lines == [
        f"skipping {tmp_path / 'empty'}: neither a run directory (no config.toml) nor a folder of runs",
        f"skipping {runs / 'unfinished'}: an unfinished run (no results.json yet)",
    ]


def test_plot_axes_hold_the_rows_but_not_a_far_outlier():
    from mtlx_tools.report.plots import _robust_limits

    low, high = _robust_limits([-9.9, -8.6, -10.2, -10.9, -9.5, -48.0])
    assert -48.0 < low < -10.9 and high >= 0.0  # the failed setting is clipped, zero and the rest are shown
    assert _robust_limits([-3.0, 2.0]) == pytest.approx((-3.4, 2.4))  # few rows: everything


def test_plot_axes_hold_the_error_bars_of_the_rows_they_show():
    """The screen's rows: EW -5.48 ± 0.95 must not have its bar's left whisker cut at the axis edge."""
    from mtlx_tools.report.plots import _robust_limits

    means, stds = [-5.48, -5.69, -5.40, -27.86], [0.95, 0.76, 0.66, 1.97]
    low, high = _robust_limits(means, stds)
    assert -27.86 < low <= -5.48 - 0.95 and high >= 0.0  # paper mode clipped; every other whisker inside
    assert _robust_limits([-3.0, 2.0], [1.0, 0.5]) == pytest.approx((-4.0 - 0.52, 2.5 + 0.52))


def test_the_delta_m_axis_shows_whole_labels_on_up_to_three_lines(toy_runs):
    from mtlx_tools.report.plots import _axis_labels

    toy = PluginManager(modules=["mtlx_testing.plugin"]).registries
    table = build_tables(find_runs(toy_runs.values()), registries=toy)[0]
    assert _axis_labels(table, width=16) == ["R1 toy-weighted\n(n=2)", "R2 toy-weighted\n(train.lr=0.01)\n(n=1)"]


def test_plot_labels_are_short_keys_with_shortened_labels(toy_runs):
    from mtlx_tools.report.plots import _legend_labels, plot_keys

    toy = PluginManager(modules=["mtlx_testing.plugin"]).registries  # the toy runs' dataset: its defaults known
    table = build_tables(find_runs(toy_runs.values()), registries=toy)[0]
    assert [row.label for row in table.rows] == ["toy-weighted", "toy-weighted (train.lr=0.01)"]
    keys = plot_keys(table)
    assert keys == [f"R{i + 1}" for i in range(len(table.rows))]
    labels = _legend_labels(table, width=20)
    assert all(label.startswith(f"{key} ") and len(label) <= 3 + 1 + 20 for key, label in zip(keys, labels))


def test_a_retired_config_key_does_not_split_the_seeds_of_a_row(toy_runs, tmp_path):
    """Runs recorded before a key was retired (``train.select_metric``, never read) pool with the runs after."""
    old = tmp_path / "old"
    shutil.copytree(toy_runs["a2"], old)
    config = old / "config.toml"
    config.write_text(config.read_text().replace("[train]\n", '[train]\nselect_metric = "delta_m"\n'))
    assert "select_metric" in config.read_text()
    (table,) = build_tables([load_run(toy_runs["a1"]), load_run(old)])
    assert [(row.label, len(row.runs)) for row in table.rows] == [("toy-weighted", 2)]
