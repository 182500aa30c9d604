"""`mtlx report`'s leaderboard: Δm confidence intervals, mean rank, tests against a reference row, row labels,
sweep directories and the LaTeX table, checked against scipy and by hand on hand-made run directories."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from pathlib import Path

import pytest
import tomli_w
from scipy import stats

from mtlx.hooks import PluginManager
from mtlx.metrics import delta_m
from mtlx_tools.report import build_tables, find_runs

HIB = {"seg": {"miou": True, "pixacc": True}, "depth": {"abs_err": False}}
BASELINE = {"seg": {"miou": 0.5, "pixacc": 0.8}, "depth": {"abs_err": 0.4}}
#: the [train] section of a real `mtlx run` config.toml (toy dataset, 1 epoch)
TRAIN = {"epochs": 1, "batch_size": 4, "drop_last": False, "lr": 0.001, "weight_decay": 0.0, "optimizer": "adam",
         "momentum": 0.9, "scheduler": "none", "step_size": 100, "gamma": 0.5, "seed": 0, "device": "auto",
         "threads": 1, "precision": "fp32", "loss_transform": "none", "num_workers": 0, "eval_every": 1,
         "log_every": 10, "on_nonfinite": "stop", "per_task_grads": "auto", "val_split": "val",
         "test_split": "test"}


def write_run(path: Path, strategy: str, seed: int, miou: float, pixacc: float = 0.8, abs_err: float = 0.4,
              options: dict | None = None, dataset: str = "fake", config: dict | None = None, **train) -> Path:
    """A finished run directory as `mtlx run` writes it: config.toml by section, results.json with the summaries
    the runner computes with mtlx.metrics.delta_m (the report reads those, as it does for real runs).
    ``config``: the whole config.toml by section instead of the one made from the other arguments."""
    path.mkdir(parents=True)
    config = config or {"strategy": {"name": strategy, **(options or {})}, "dataset": {"name": dataset, "size": 64},
                        "arch": {"name": "hps"}, "backbone": {"name": "toy"}, "head": {"name": "toy"},
                        "train": {**TRAIN, "seed": seed, **train}}
    (path / "config.toml").write_text(tomli_w.dumps(config))
    metrics = {"seg": {"miou": miou, "pixacc": pixacc}, "depth": {"abs_err": abs_err}}
    summary = {f"delta_m_{c}": delta_m(metrics, BASELINE, HIB, c) for c in ("task", "metric")}
    results = {"dataset": dataset, "strategy": strategy, "tasks": ["seg", "depth"],
               "epochs_completed": config["train"]["epochs"], "steps": 40, "higher_is_better": HIB,
               "baseline": BASELINE, "val_split": "val", "val": metrics, "val_summary": summary,
               "best": {"epoch": 0, "iteration": 40, "score": summary["delta_m_task"], "metrics": metrics},
               "test_split": "test", "test": metrics, "test_summary": summary, "train_time_s": 0.5, "world_size": 1}
    (path / "results.json").write_text(json.dumps(results, indent=2))
    return path


#: strategy -> (seed, miou, pixacc, abs_err) per run. Only miou moves in ew and mgda, so their Δm_task is
#: miou's relative change / 4 (seg averages miou with an unchanged pixacc, then depth's 0): 1, 2, 3 and 2, 4, 5.
TABLE = {
    "ew": [(0, 0.52, 0.8, 0.4), (1, 0.54, 0.8, 0.4), (2, 0.56, 0.8, 0.4)],
    "mgda": [(0, 0.54, 0.8, 0.4), (1, 0.58, 0.8, 0.4), (2, 0.60, 0.8, 0.4)],
    "rep-mtl": [(3, 0.50, 0.82, 0.38), (4, 0.56, 0.84, 0.36)],  # other seeds: Welch
    "famo": [(0, 0.60, 0.79, 0.45)],  # one seed: no interval, no test
}


@pytest.fixture
def table_dir(tmp_path):
    root = tmp_path / "sweep"
    for strategy, runs in TABLE.items():
        for seed, miou, pixacc, abs_err in runs:
            write_run(root / "runs" / f"{strategy}-s{seed}", strategy, seed, miou, pixacc, abs_err)
    return root


def delta(strategy, convention="task"):
    values = {}
    for seed, miou, pixacc, abs_err in TABLE[strategy]:
        metrics = {"seg": {"miou": miou, "pixacc": pixacc}, "depth": {"abs_err": abs_err}}
        values[seed] = delta_m(metrics, BASELINE, HIB, convention)
    return values


def by_label(text):
    return {row["label"]: row for row in csv.DictReader(io.StringIO(text))}


def test_paired_t_by_hand_on_three_seeds(table_dir):
    """ew's Δm_task is 1, 2, 3 and mgda's 2, 4, 5 on seeds 0-2: differences 1, 2, 2, mean 5/3, sample std
    sqrt(1/3), so t = (5/3) / (sqrt(1/3) / sqrt(3)) = 5; with 2 degrees of freedom the two-sided p-value
    is 1 - t / sqrt(2 + t^2) = 1 - 5 / sqrt(27)."""
    (table,) = build_tables(find_runs([table_dir]), reference="ew")
    rows = {row.label: row for row in table.rows}
    assert rows["ew"].delta_m["task"].values == pytest.approx((1.0, 2.0, 3.0))
    assert rows["mgda"].delta_m["task"].values == pytest.approx((2.0, 4.0, 5.0))
    versus = rows["mgda"].versus
    assert versus.test == "paired t"
    assert versus.p == pytest.approx(1 - 5 / math.sqrt(27), rel=1e-9)
    assert versus.difference == pytest.approx(5 / 3)


def test_leaderboard_statistics_against_scipy(cli, table_dir, tmp_path):
    out = tmp_path / "report"
    result = cli("report", str(table_dir), "--out", str(out), "--no-plots", "--reference", "ew", "--format", "csv",
                 toy=False)
    assert result.exit_code == 0, result.output
    text = (out / "fake.csv").read_text()
    assert "nan" not in text.lower()
    rows = by_label(text)
    assert set(rows) == {"single-task baseline", "ew", "mgda", "rep-mtl", "famo"}
    for strategy, runs in TABLE.items():
        row = rows[strategy]
        assert row["n"] == str(len(runs))
        for convention in ("task", "metric"):
            values = list(delta(strategy, convention).values())
            assert float(row[f"delta_m_{convention}.mean"]) == pytest.approx(statistics.fmean(values), rel=1e-12)
            if len(values) < 2:
                assert row[f"delta_m_{convention}.ci_low"] == row[f"delta_m_{convention}.ci_high"] == ""
                continue
            low, high = stats.t.interval(0.95, len(values) - 1, loc=statistics.fmean(values),
                                         scale=stats.sem(values))
            assert float(row[f"delta_m_{convention}.ci_low"]) == pytest.approx(low, rel=1e-9)
            assert float(row[f"delta_m_{convention}.ci_high"]) == pytest.approx(high, rel=1e-9)

    ew, mgda, rep = (list(delta(s).values()) for s in ("ew", "mgda", "rep-mtl"))
    assert rows["mgda"]["test"] == "paired t" and rows["mgda"]["test_on"] == "delta_m_task"
    assert float(rows["mgda"]["p_value"]) == pytest.approx(stats.ttest_rel(mgda, ew).pvalue, rel=1e-12)
    assert rows["mgda"]["significant"] == "yes"  # p = 0.038
    assert float(rows["mgda"]["difference"]) == pytest.approx(statistics.fmean(mgda) - statistics.fmean(ew))
    assert rows["rep-mtl"]["test"] == "Welch t"  # seeds 3, 4 against 0, 1, 2
    welch = stats.ttest_ind(rep, ew, equal_var=False).pvalue
    assert float(rows["rep-mtl"]["p_value"]) == pytest.approx(welch, rel=1e-12) and welch > 0.05
    assert rows["rep-mtl"]["significant"] == "no"
    assert rows["famo"]["p_value"] == rows["famo"]["significant"] == ""  # one seed: undefined
    assert rows["ew"]["reference"] == "ew" and rows["ew"]["test"] == "reference" and rows["ew"]["p_value"] == ""

    # ranks per metric (1 = best, ties share the mean rank):  miou ↑  pixacc ↑  abs_err ↓
    #   ew      0.54   0.80  0.40  -> 3, 2.5, 2.5        mgda  0.573  0.80  0.40 -> 2, 2.5, 2.5
    #   rep-mtl 0.53   0.83  0.37  -> 4, 1, 1            famo  0.60   0.79  0.45 -> 1, 4, 4
    expected = {"ew": 8 / 3, "mgda": 7 / 3, "rep-mtl": 2.0, "famo": 3.0}
    assert {k: float(rows[k]["mean_rank"]) for k in expected} == pytest.approx(expected, rel=1e-12)
    assert rows["single-task baseline"]["mean_rank"] == ""
    assert by_label(result.stdout) == rows


def test_markdown_and_latex_show_the_tests(cli, table_dir, tmp_path):
    out = tmp_path / "report"
    result = cli("report", str(table_dir), "--out", str(out), "--no-plots", "--reference", "ew",
                 "--test-on", "metric", "--format", "latex", toy=False)
    assert result.exit_code == 0, result.output
    markdown = (out / "report.md").read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| strategy"))
    assert header.endswith("| Δm task 95 % CI | Δm metric 95 % CI | mean rank ↓ | p vs ew (Δm metric) | test |")
    mgda = next(line for line in markdown.splitlines() if line.startswith("| mgda "))
    p = stats.ttest_rel(list(delta("mgda", "metric").values()), list(delta("ew", "metric").values())).pvalue
    assert f"| {p:.3f} * | paired t |" in mgda  # the same t as on Δm_task: Δm_metric is Δm_task * 4/3 here
    famo = next(line for line in markdown.splitlines() if line.startswith("| famo "))
    assert famo.endswith("| — | — | 3.00 | — | — |")  # n = 1: no interval, no test
    assert "ttest_rel" in markdown and "equal_var=False" in markdown

    latex = (out / "fake.tex").read_text()
    assert result.stdout.strip() == latex.strip()
    lines = latex.splitlines()
    body = lines[lines.index(r"\toprule") + 1:lines.index(r"\bottomrule")]
    assert r"\midrule" in body and r"\begin{tabular}" in latex and r"\end{tabular}" in latex
    rows = [line for line in body if line != r"\midrule"]
    assert len(rows) == 1 + 1 + len(TABLE)  # header, baseline, settings
    assert all(line.endswith(r"\\") and line.count("&") == rows[0].count("&") for line in rows)
    assert r"$\Delta$m task \% $\uparrow$" in rows[0] and r"abs\_err $\downarrow$" in rows[0]
    assert "±" not in latex and "—" not in latex and r"$\pm$" in latex


def test_labels_name_every_option_that_differs_epochs_included(tmp_path):
    """Issue 28: runs of 10 and 2 epochs were both shown as just "ew" / "rep-mtl". A strategy's own options
    label rows only among that strategy's rows. Dataset 'fake' is not installed, so no default is known and
    every option that differs is shown (test_report_labels.py: with the defaults)."""
    write_run(tmp_path / "a", "ew", 0, 0.5, epochs=10)
    write_run(tmp_path / "b", "rep-mtl", 0, 0.5, epochs=2, options={"rho": 0.01})
    write_run(tmp_path / "c", "rep-mtl", 0, 0.5, epochs=2, options={"rho": 0.001})
    write_run(tmp_path / "d", "mgda", 0, 0.5, epochs=2, options={"normalize": "l2"})
    with pytest.warns(RuntimeWarning, match="for dataset 'fake': its plugin is not installed"):
        (table,) = build_tables(find_runs([tmp_path]))
    assert [row.label for row in table.rows] == [
        "ew (train.epochs=10)", "mgda (train.epochs=2)",
        "rep-mtl (strategy.rho=0.001, train.epochs=2)", "rep-mtl (strategy.rho=0.01, train.epochs=2)"]


def test_real_runs_of_different_lengths_are_labelled_by_epochs(cli, toy_runs, tmp_path):
    """The same with real run directories: a 2-epoch ew run beside the 1-epoch toy-weighted run."""
    two = tmp_path / "two"
    result = cli("run", "-d", "toy", "-s", "ew", "--epochs", "2", "--out", str(two), "-q", "--threads", "1",
                 "-o", "train.seed=1", "-o", "arch.channels=32")
    assert result.exit_code == 0, result.output
    toy = PluginManager(modules=["mtlx_testing.plugin"]).registries  # the toy dataset: its defaults known
    (table,) = build_tables(find_runs([toy_runs["a1"], two]), registries=toy)
    # the toy dataset recommends 2 epochs: the 2-epoch row is at the default
    assert [row.label for row in table.rows] == ["ew", "toy-weighted (train.epochs=1)"]


def test_seeds_pool_across_thread_counts_and_nested_sweep_folders(tmp_path):
    """A sweep's runs (any depth below the folder given) pool by setting; the CPU threads a run was given
    (a sweep's share of the machine) do not change what is trained."""
    write_run(tmp_path / "sweep" / "runs" / "ew-s0", "ew", 0, 0.52, threads=1)
    write_run(tmp_path / "sweep" / "runs" / "ew-s1", "ew", 1, 0.54, threads=2)
    write_run(tmp_path / "sweep" / "old" / "deeper" / "ew-s2", "ew", 2, 0.56, threads=1)
    (tmp_path / "sweep" / "runs" / "ew-s3").mkdir()  # not started yet: no config.toml, nothing below
    (tmp_path / "sweep" / "manifest.json").write_text("{}")
    found = find_runs([tmp_path / "sweep", tmp_path / "sweep" / "runs" / "ew-s0"], skip=pytest.fail)
    assert len(found) == 3  # the run named twice counts once
    (table,) = build_tables(found, reference="ew")
    assert [(row.label, row.seeds) for row in table.rows] == [("ew", [0, 1, 2])]


def test_one_seed_everywhere_gives_dashes_not_nan(cli, tmp_path):
    write_run(tmp_path / "runs" / "a", "ew", 0, 0.52)
    write_run(tmp_path / "runs" / "b", "mgda", 0, 0.56)
    out = tmp_path / "report"
    result = cli("report", str(tmp_path / "runs"), "--out", str(out), "--no-plots", "--reference", "ew",
                 "--format", "markdown", toy=False)
    assert result.exit_code == 0, result.output
    assert "nan" not in result.stdout.lower() and "nan" not in (out / "fake.csv").read_text().lower()
    mgda = next(line for line in result.stdout.splitlines() if line.startswith("| mgda "))
    assert mgda.endswith("| — | — | 1.33 | — | — |")  # ranks 1 (miou), 1.5 and 1.5 (ties with ew)
    (table,) = build_tables(find_runs([tmp_path / "runs"]), reference="ew")
    assert table.rows[1].versus.test == "paired t" and table.rows[1].versus.p is None


def test_partly_shared_seeds_are_compared_by_welch(tmp_path):
    for seed, miou in [(0, 0.52), (1, 0.54), (2, 0.56)]:
        write_run(tmp_path / f"ew{seed}", "ew", seed, miou)
    for seed, miou in [(0, 0.55), (1, 0.60)]:
        write_run(tmp_path / f"mgda{seed}", "mgda", seed, miou)
    (table,) = build_tables(find_runs([tmp_path]), reference="ew", test_on="metric")
    versus = table.rows[1].versus
    ew = next(row.delta_m["metric"].values for row in table.rows if row.label == "ew")
    assert versus.test == "Welch t"
    assert versus.p == pytest.approx(stats.ttest_ind(table.rows[1].delta_m["metric"].values, ew,
                                                     equal_var=False).pvalue, rel=1e-12)


def test_a_bad_reference_is_one_line_and_writes_nothing(cli, tmp_path):
    write_run(tmp_path / "runs" / "a", "ew", 0, 0.52)
    write_run(tmp_path / "runs" / "b", "rep-mtl", 0, 0.5, options={"rho": 0.01})
    write_run(tmp_path / "runs" / "c", "rep-mtl", 0, 0.5, options={"rho": 0.001})
    out = tmp_path / "report"
    result = cli("report", str(tmp_path / "runs"), "--out", str(out), "--reference", "mgda", toy=False)
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        "Error: --reference 'mgda' names no row of any dataset (fake: ew; rep-mtl (strategy.rho=0.001); "
        "rep-mtl (strategy.rho=0.01)); give a row's label or a strategy with one row")
    result = cli("report", str(tmp_path / "runs"), "--out", str(out), "--reference", "rep-mtl", toy=False)
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        "Error: --reference 'rep-mtl' matches 2 rows of fake (rep-mtl (strategy.rho=0.001); "
        "rep-mtl (strategy.rho=0.01)); give one row's label")
    assert not out.exists()
    result = cli("report", str(tmp_path / "runs"), "--out", str(out), "--no-plots",
                 "--reference", "rep-mtl (strategy.rho=0.01)", "--format", "csv", toy=False)
    assert result.exit_code == 0, result.output
    assert by_label(result.stdout)["ew"]["reference"] == "rep-mtl (strategy.rho=0.01)"


def test_a_dataset_without_the_reference_row_is_noted_and_left_untested(cli, tmp_path):
    write_run(tmp_path / "runs" / "a0", "ew", 0, 0.52)
    write_run(tmp_path / "runs" / "a1", "ew", 1, 0.54)
    write_run(tmp_path / "runs" / "b0", "mgda", 0, 0.56, dataset="other")
    write_run(tmp_path / "runs" / "b1", "mgda", 1, 0.50, dataset="other")
    result = cli("report", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--no-plots",
                 "--reference", "ew", "--format", "csv", toy=False)
    assert result.exit_code == 0, result.output
    assert "note: other has no row 'ew': its rows are not tested" in result.stderr
    other = by_label((tmp_path / "out" / "other.csv").read_text())["mgda"]
    assert other["reference"] == other["test"] == other["p_value"] == ""
    assert by_label((tmp_path / "out" / "fake.csv").read_text())["ew"]["test"] == "reference"
