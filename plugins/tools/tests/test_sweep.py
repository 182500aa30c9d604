"""`mtlx sweep`: cells from flags and spec files, validation before anything starts, the sweep directory's checks,
the local executor, and one cell's job. Runs are toy runs (the core's toy plugin); the resumption of killed
and interrupted sweeps is in test_sweep_resume.py."""

from __future__ import annotations

import fcntl
import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path

import attrs
import pytest
import tomli_w
import torch

from mtlx.checkpoint import load_checkpoint
from mtlx.config import RESUMABLE_KEYS
from mtlx_testing import invoke_cli
from mtlx_tools.sweep import cell as cell_job
from mtlx_tools.sweep.cells import PLACEMENT_KEYS
from mtlx_tools.sweep.executor import Job
from mtlx_tools.sweep.local import LocalExecutor

TOY = ("sweep", "-d", "toy", "-s", "toy-weighted")
HASH = re.compile(r"-[0-9a-f]{8}$")


def planned(output: str) -> dict[str, str]:
    """``{key: action}`` from the cell lines of a sweep's summary."""
    lines = [line.split() for line in output.splitlines() if HASH.search(line.strip())]
    return {words[-1]: " ".join(words[:-1]) for words in lines}


def labels(output: str) -> list[str]:
    return [HASH.sub("", key) for key in planned(output)]


def tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def write_spec(path: Path, spec: dict) -> Path:
    path.write_text(tomli_w.dumps(spec))
    return path


def test_flag_form_axes_apply_where_the_component_has_the_option(cli, tmp_path):
    out = tmp_path / "sweep"
    args = ("sweep", "-d", "toy", "-s", "ew,dwa", "--seeds", "0-1", "-g", "strategy.temperature=1.0,3.0", "--out",
            out, "--dry-run")
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert labels(result.output) == [  # launch order: every setting on seed 0 before any on seed 1
        "toy-ew-seed0", "toy-dwa-temperature1.0-seed0", "toy-dwa-temperature3.0-seed0",
        "toy-ew-seed1", "toy-dwa-temperature1.0-seed1", "toy-dwa-temperature3.0-seed1",
    ]
    assert set(planned(result.output).values()) == {"run"}
    assert "6 cells" in result.output and "dry run" in result.output
    assert not out.exists()
    assert cli(*args).output == result.output  # the same sweep names the same run directories


def test_a_key_hashes_what_the_cell_trains_not_where_it_runs(cli, tmp_path):
    def keys(*extra):
        result = cli(*TOY, "--seeds", "0", "--out", tmp_path / "s", "--dry-run", *extra)
        assert result.exit_code == 0, result.output
        return list(planned(result.output))

    (plain,) = keys()
    (lr,) = keys("-o", "train.lr=0.01")
    (placed,) = keys("-o", "train.threads=2", "-o", "train.log_every=3", "-o", "train.num_workers=1")
    assert HASH.sub("", plain) == HASH.sub("", lr) == "toy-toy-weighted-seed0"
    assert lr != plain  # a base setting changes the config, so the run directory
    assert placed == plain


def test_placement_keys_may_change_on_resume():
    """A cell's job passes them again when it resumes; mtlx run must accept that."""
    assert PLACEMENT_KEYS <= RESUMABLE_KEYS


def test_spec_file_grid_settings_and_base(cli, tmp_path):
    spec = write_spec(tmp_path / "study.toml", {
        "sweep": {"presets": ["fast"]},
        "dataset": {"name": "toy", "size": 8},
        "train": {"lr": 0.01},
        "grid": {"strategy": {"name": ["ew", "dwa"], "temperature": [1.0, 4.0]}, "seeds": "3-4"},
        # a setting fixes its own keys: this one is not multiplied by the temperature axis, only by the seeds
        "settings": [{}, {"strategy.name": "dwa", "strategy.temperature": 2.5}],
    })
    result = cli("sweep", spec, "--out", tmp_path / "out", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "mtlx sweep study: 8 cells" in result.output
    assert labels(result.output) == [
        "toy-ew-seed3", "toy-dwa-temperature1.0-seed3", "toy-dwa-temperature4.0-seed3", "toy-dwa-temperature2.5-seed3",
        "toy-ew-seed4", "toy-dwa-temperature1.0-seed4", "toy-dwa-temperature4.0-seed4", "toy-dwa-temperature2.5-seed4",
    ]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("-s", "ew,dwa", "-g", "strategy.temperatur=1,2"), 2,
         ("axis strategy.temperatur: no strategy of this sweep (dwa, ew) has an option 'temperatur'; "
          "did you mean 'temperature'?")),
        (("-s", "ew", "-g", "optim.lr=1,2"), 2, "unknown axis 'optim.lr'"),
        (("-s", "ew", "-g", "train.epochz=1,2"), 2, "unknown key train.epochz; did you mean 'epochs'?"),
        (("-s", "ew,dwa", "-o", "strategy.temperature=2.0"), 2, "strategy 'ew' has no option 'temperature'"),
        (("-s", "toy-weigted", "--seeds", "0"), 2, "no strategy 'toy-weigted'"),
        (("-s", "ew", "-g", "train.lr=abc,0.1"), 2, "lr expects a number"),
        (("-s", "ew", "-g", "train.lr="), 2, "axis train.lr has no values (empty grid)"),
        (("-s", "ew", "--seeds", "3-1"), 2, "no seeds (empty grid)"),
        (("-s", "ew", "--seeds", "0,1,0"), 2, "seed 0 is given twice"),
        (("-s", "ew", "-g", "train.lr=0.01,0.01"), 2, "duplicate cells"),
        (("-s", "ew", "--name", "a/b"), 2, "sweep name 'a/b' may only hold"),
        ((), 2, "needs a spec file or axes"),
    ],
)
def test_bad_input_is_one_line_and_nothing_is_written(cli, tmp_path, args, code, message):
    out = tmp_path / "sweep"
    base = ("sweep", "-d", "toy") if args else ("sweep",)
    result = cli(*base, *args, "--out", out)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
    assert not out.exists()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"grd": {"seeds": [0]}}, "unknown table [grd]; did you mean 'grid'?"),
        ({"grid": {"train.lr": []}}, "axis train.lr has no values (empty grid)"),
        ({"grid": {"train.lr": 0.1}}, "axis train.lr must be a list of values"),
        ({"grid": {"seeds": [0], "train.seed": [1]}}, "axis train.seed is given twice"),
        ({"settings": []}, "leaves no cell to run (empty grid)"),
        # the second setting is the default learning rate written out: the same config as the first
        ({"strategy": {"name": "ew"}, "settings": [{}, {"train.lr": 0.001}]}, "duplicate cells"),
        ({"strategy": {"name": "ew"}, "settings": [{"strategy.temperature": 2.0}]}, "has no option 'temperature'"),
        ({"grid": {"strategy.temperature": [1.0]}, "settings": [{"strategy.name": "dwa", "strategy.temperature": 2.0}]},
         "every [[settings]] entry sets strategy.temperature itself"),
        ({"executor": {"jobs": 0}}, "jobs must be at least 1"),
        ({"executor": {"name": "pbs"}}, "name must be local or slurm"),
        ({"executor": {"partitions": "gpu"}}, "unknown key 'partitions'; did you mean 'partition'?"),
    ],
)
def test_bad_spec_file_is_one_line_and_nothing_is_written(cli, tmp_path, spec, message):
    out = tmp_path / "sweep"
    path = write_spec(tmp_path / "bad.toml", {"dataset": {"name": "toy"}, **spec})
    result = cli("sweep", path, "--out", out)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1, result.output
    assert not out.exists()


def test_slurm_executor_without_slurm_is_refused_before_anything(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch there
    out = tmp_path / "sweep"
    result = cli(*TOY, "--seeds", "0", "--executor", "slurm", "--out", out)
    assert result.exit_code == 2, result.output
    # without the slurm extra (the matrix's tools target) the missing submitit is what is named
    assert ("--executor slurm: SLURM's sbatch" in result.output and "not found on PATH" in result.output) or (
        "--executor slurm needs submitit" in result.output and importlib.util.find_spec("submitit") is None)
    assert result.output.count("\n") == 1
    assert not out.exists()


# --- a finished sweep: skipping, and the directory checks ------------------------------------------------------

SWEEP = (*TOY, "--seeds", "0", "-o", "train.epochs=1", "--jobs", "1", "--threads", "1")


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A sweep of one toy run, finished (one real job subprocess)."""
    out = tmp_path_factory.mktemp("finished") / "sweep"
    result = invoke_cli("--plugin", "mtlx_testing.plugin", *SWEEP, "--out", out)
    assert result.exit_code == 0, result.output
    assert "all 1 runs finished" in result.output
    return out


@pytest.fixture
def sweep_copy(finished, tmp_path) -> Path:
    return Path(shutil.copytree(finished, tmp_path / "sweep"))


def test_finished_runs_are_skipped(cli, sweep_copy):
    before = tree(sweep_copy)
    result = cli(*SWEEP, "--out", sweep_copy, "--dry-run")
    assert result.exit_code == 0, result.output
    assert set(planned(result.output).values()) == {"skip (finished)"}
    result = cli(*SWEEP, "--out", sweep_copy)
    assert result.exit_code == 0, result.output
    assert "0 to run, 0 to resume, 1 finished" in result.output
    after = tree(sweep_copy)
    assert {k: v for k, v in after.items() if k != "manifest.json"} == {k: v for k, v in before.items()
                                                                         if k != "manifest.json"}


def test_a_spec_edit_that_relabels_finished_runs_is_refused(cli, sweep_copy):
    before = tree(sweep_copy)
    (key,) = [cell["key"] for cell in json.loads((sweep_copy / "manifest.json").read_text())["cells"]]
    result = cli(*SWEEP, "-o", "train.lr=0.01", "--out", sweep_copy)
    assert result.exit_code == 2, result.output
    assert f"no longer gives 1 finished run(s) of {sweep_copy}: {key} (now train.lr 0.001 -> 0.01)" in result.output
    assert result.output.count("\n") == 1
    assert tree(sweep_copy) == before


@pytest.mark.parametrize("where", ["other name", "inside", "run directory", "runs without manifest"])
def test_a_directory_of_another_sweep_or_run_is_refused(cli, sweep_copy, where):
    run = next((sweep_copy / "runs").iterdir())
    out, extra = {
        "other name": (sweep_copy, ("--name", "other")),
        "inside": (sweep_copy / "runs" / "x", ()),
        "run directory": (Path(shutil.copytree(run, sweep_copy.parent / "lone-run")), ()),
        "runs without manifest": (sweep_copy, ()),
    }[where]
    if where == "runs without manifest":
        (sweep_copy / "manifest.json").unlink()
    before = tree(sweep_copy)
    result = cli(*SWEEP, "--out", out, *extra)
    assert result.exit_code == 4, result.output
    assert {"other name": "holds the runs of sweep 'toy-toy-weighted', not 'other'",
            "inside": "is inside the directory of another sweep",
            "run directory": "is a run directory (config.toml, last.pt",
            "runs without manifest": "holds run directories but"}[where] in result.output
    assert result.output.count("\n") == 1
    assert tree(sweep_copy) == before


def test_a_run_directory_holding_other_settings_is_refused(cli, sweep_copy):
    run = next((sweep_copy / "runs").iterdir())
    config = run / "config.toml"
    config.write_text(config.read_text().replace("lr = 0.001", "lr = 0.5"))
    (run / "results.json").unlink()  # unfinished, so the cell would be launched
    before = tree(sweep_copy)
    result = cli(*SWEEP, "--out", sweep_copy)
    assert result.exit_code == 4, result.output
    assert f"run directory {run} holds a run of other settings (train.lr 0.5 -> 0.001)" in result.output
    assert tree(sweep_copy) == before


def test_a_second_sweep_in_the_same_directory_is_refused(cli, sweep_copy):
    with open(sweep_copy / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = cli(*SWEEP, "--out", sweep_copy)
    assert result.exit_code == 4, result.output
    assert "another mtlx sweep is running in" in result.output


def test_the_manifest_of_a_finished_sweep(finished):
    manifest = json.loads((finished / "manifest.json").read_text())
    assert manifest["name"] == "toy-toy-weighted" and manifest["plugins"] == ["mtlx_testing.plugin"]
    assert manifest["spec"]["axes"] == {"dataset.name": ["toy"], "strategy.name": ["toy-weighted"], "train.seed": [0]}
    assert manifest["spec"]["base"] == {"train.epochs": 1}
    (entry,) = manifest["cells"]
    assert entry["state"] == "finished" and entry["exit_code"] == 0 and entry["attempts"] == 1
    saved = (finished / "runs" / entry["key"] / "config.toml").read_text()
    assert 'name = "toy-weighted"' in saved and entry["config"]["train.epochs"] == 1
    assert not [p for p in finished.iterdir() if p.name.endswith(".tmp")]


# --- one cell's job ---------------------------------------------------------------------------------------------

def test_a_cell_killed_before_its_first_checkpoint_starts_afresh(sweep_copy, capsys):
    run = next((sweep_copy / "runs").iterdir())
    finished_weights = load_checkpoint(run / "last.pt")["engine"]["model"]
    for name in ("last.pt", "best.pt", "results.json"):
        (run / name).unlink(missing_ok=True)  # config.toml and metrics.jsonl stay, as a killed start leaves them
    assert cell_job.main([str(sweep_copy), run.name, "--threads", "1"]) == 0
    assert "starting afresh (removed config.toml, metrics.jsonl" in capsys.readouterr().out
    again = load_checkpoint(run / "last.pt")["engine"]["model"]
    assert all(torch.equal(finished_weights[k], again[k]) for k in finished_weights)


def test_a_cell_that_is_not_in_the_manifest_is_refused(sweep_copy, capsys):
    assert cell_job.main([str(sweep_copy), "nope"]) == 4
    assert f"{sweep_copy} has no sweep cell 'nope'" in capsys.readouterr().err


# --- the local executor ----------------------------------------------------------------------------------------

def test_local_executor_runs_every_job_in_slots_with_one_gpu_each(tmp_path):
    """Each job records its GPU and thread settings and, under a lock, how many jobs run beside it."""
    script = (
        "import fcntl, os, sys, time\n"
        "counter = sys.argv[1]\n"
        "def add(n):\n"
        "    with open(counter, 'a+') as f:\n"
        "        fcntl.flock(f, fcntl.LOCK_EX); f.seek(0); now, top = map(int, (f.read() or '0 0').split())\n"
        "        now += n; f.seek(0); f.truncate(); f.write(f'{now} {max(top, now)}')\n"
        "add(1); time.sleep(0.2); add(-1)\n"
        "print(os.environ.get('CUDA_VISIBLE_DEVICES'), os.environ['OMP_NUM_THREADS'])\n"
        "sys.exit(int(sys.argv[2]))\n"
    )
    counter = tmp_path / "counter"
    jobs = [Job(key=f"j{i}", run_dir=tmp_path / f"j{i}", argv=(sys.executable, "-c", script, str(counter), str(i % 2 * 3)),
                threads=2) for i in range(5)]
    ended: list[tuple[str, int | None]] = []
    LocalExecutor(2, log_dir=tmp_path / "logs", gpus=2).run(jobs, lambda job, code: ended.append((job.key, code)))
    assert sorted(ended) == [("j0", 0), ("j1", 3), ("j2", 0), ("j3", 3), ("j4", 0)]
    for i in range(5):
        gpu, threads = (tmp_path / "logs" / f"j{i}.log").read_text().split()
        assert gpu in {"0", "1"} and threads == "2"
    assert int(counter.read_text().split()[1]) <= 2  # never more than --jobs at a time


# --- the repository's sweep specs -------------------------------------------------------------------------------

SPECS = Path(__file__).parents[3] / "benchmarks" / "sweeps"


@pytest.mark.parametrize("spec", sorted(SPECS.glob("*.toml")), ids=lambda p: p.name)
def test_every_sweep_spec_of_the_repository_validates(cli, tmp_path, spec):
    pytest.importorskip("mtlx_repmtl", reason="the specs compare against rep-mtl (mtlx-repmtl is not installed)")
    result = cli("sweep", spec, "--out", tmp_path / "sweep", "--dry-run", toy=False)
    assert result.exit_code == 0, result.output
    assert "dry run: nothing launched" in result.output


# --- the records committed beside published tables --------------------------------------------------------------

def test_exported_records_hold_what_report_reads_and_nothing_large(finished, tmp_path):
    from mtlx_tools.report.runs import find_runs
    from mtlx_tools.sweep.records import export_records

    dest = tmp_path / "records"
    (stale := dest / "runs" / "a-cell-no-longer-in-the-sweep").mkdir(parents=True)
    (key,) = export_records(finished, dest)
    assert not stale.exists()
    assert sorted(p.name for p in (dest / "runs" / key).iterdir()) == ["config.toml", "metrics.jsonl", "results.json"]
    assert (dest / "manifest.json").read_bytes() == (finished / "manifest.json").read_bytes()
    events = {json.loads(line)["event"] for line in (dest / "runs" / key / "metrics.jsonl").read_text().splitlines()}
    assert events <= {"epoch", "eval", "resume"} and "eval" in events
    (exported,), (original,) = find_runs([dest]), find_runs([finished / "runs" / key])
    assert exported.results == original.results and exported.config == original.config


def test_a_table_valued_option_in_settings_is_one_value(cli, tmp_path):
    spec = write_spec(tmp_path / "fixed.toml", {
        "dataset": {"name": "digits"}, "grid": {"seeds": "0"},
        "settings": [{"strategy.name": "fixed", "strategy.weights": {"seg": 1.0, "depth": 1.0, "cls": 0.5}},
                     {"strategy": {"name": "fixed", "weights": {"seg": 2.0, "depth": 1.0, "cls": 0.5}}}],
    })
    result = cli("sweep", spec, "--out", tmp_path / "out", "--dry-run", toy=False)
    assert result.exit_code == 0, result.output
    assert "2 cells" in result.output


def _toy_arch_config(**fields: tuple[type, object]) -> type:
    """ToyArch's Config as a later mtlx might define it: the fields given, ``{name: (type, default)}``."""
    return attrs.make_class("Config", {name: attrs.field(type=kind, default=default)
                                       for name, (kind, default) in fields.items()}, frozen=True, kw_only=True)


def test_an_option_added_by_a_later_version_keeps_finished_and_interrupted_runs(cli, sweep_copy, monkeypatch):
    """Upgrading mtlx mid-sweep: an option that did not exist when the runs were made, at its default, is what
    they trained, so the finished run is still skipped and an unfinished one resumes (not re-run, not refused)."""
    from mtlx_testing.plugin import ToyArch

    monkeypatch.setattr(ToyArch, "Config", _toy_arch_config(channels=(int, 8), dropout=(float, 0.0)))
    result = cli(*SWEEP, "--out", sweep_copy, "--dry-run")
    assert result.exit_code == 0, result.output
    assert set(planned(result.output).values()) == {"skip (finished)"}
    run = next((sweep_copy / "runs").iterdir())
    (run / "results.json").unlink()
    result = cli(*SWEEP, "--out", sweep_copy, "--dry-run")
    assert result.exit_code == 0, result.output
    assert planned(result.output) == {run.name: "resume"}


def test_a_default_changed_by_a_later_version_is_not_taken_for_the_runs_made_before(cli, sweep_copy, monkeypatch):
    from mtlx_testing.plugin import ToyArch

    monkeypatch.setattr(ToyArch, "Config", _toy_arch_config(channels=(int, 16)))
    before = tree(sweep_copy)
    result = cli(*SWEEP, "--out", sweep_copy)
    assert result.exit_code == 2, result.output
    assert "(now arch.channels 8 -> 16)" in result.output
    assert tree(sweep_copy) == before
