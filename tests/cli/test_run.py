"""`mtlx run` end to end on the toy plugin: run directory, errors, resume, non-finite guard."""

from __future__ import annotations

import json
import sys
import tomllib
import types
from pathlib import Path

import pytest
import torch

from mtlx.checkpoint import load_checkpoint
from mtlx_testing import invoke_cli

RUN = ("run", "-d", "toy", "-s", "toy-weighted", "-q")


def test_run_writes_config_metrics_checkpoints_and_results(cli, tmp_path):
    out = tmp_path / "run"
    result = cli(*RUN, "--epochs", "2", "--out", str(out), "-o", "arch.channels=4", "-o", "train.log_every=1")
    assert result.exit_code == 0, result.output
    assert {"config.toml", "metrics.jsonl", "last.pt", "best.pt", "results.json"} <= {p.name for p in out.iterdir()}
    results = json.loads((out / "results.json").read_text())
    assert results["epochs_completed"] == 2 and results["steps"] == 8
    assert set(results["test"]) == {"seg0", "reg1"}
    assert "delta_m_task" in results["test_summary"]
    assert results["test_details"] == results["val_details"] == {}  # no toy meter has details (see plugins/nyuv2)
    assert "Delta_m" in result.output and "seg0" in result.output
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {r["event"] for r in records} == {"train", "epoch", "eval"}
    assert 'channels = 4' in (out / "config.toml").read_text()
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["config"]["arch"] == {"name": "toy", "channels": 4}


def test_tensorboard_flag_logs_the_scalars_to_the_run_directory(cli, tmp_path, monkeypatch):
    scalars: dict[str, list] = {}

    class Writer:  # torch.utils.tensorboard.SummaryWriter's calls the logger makes (tensorboard is an extra)
        def __init__(self, log_dir):
            scalars[log_dir] = []

        def add_scalar(self, tag, value, step):
            scalars[str(out / "tensorboard")].append(tag)

        def close(self):
            pass

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=Writer))
    out = tmp_path / "run"
    result = cli(*RUN, "--epochs", "1", "--out", str(out), "--tensorboard", "-o", "train.log_every=1")
    assert result.exit_code == 0, result.output
    assert {"train/losses/seg0", "val/seg0/acc"} <= set(scalars[str(out / "tensorboard")])


def test_existing_run_directory_is_never_overwritten(cli, tmp_path):
    out = tmp_path / "run"
    assert cli(*RUN, "--epochs", "1", "--out", str(out)).exit_code == 0
    before = (out / "last.pt").read_bytes()
    result = cli(*RUN, "--epochs", "1", "--out", str(out))
    assert result.exit_code == 4
    assert "already holds a run" in result.output and "--resume" in result.output
    assert (out / "last.pt").read_bytes() == before


def test_resume_after_max_steps_matches_uninterrupted_run(cli, tmp_path):
    """Stop mid-epoch 2 (step 6 of 8), resume, and end with bit-identical weights."""
    full, part = tmp_path / "full", tmp_path / "part"
    assert cli(*RUN, "--epochs", "2", "--out", str(full)).exit_code == 0
    assert cli(*RUN, "--epochs", "2", "--max-steps", "6", "--out", str(part)).exit_code == 0
    assert load_checkpoint(part / "last.pt")["engine"]["state"]["iteration"] == 6
    result = cli("run", "--resume", str(part), "-q", "-o", "train.max_steps=1000")
    assert result.exit_code == 0, result.output
    a = load_checkpoint(full / "last.pt")["engine"]["model"]
    b = load_checkpoint(part / "last.pt")["engine"]["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("run", "-s", "toy-weigted", "-d", "toy"), 2, "no strategy 'toy-weigted'; did you mean 'toy-weighted'?"),
        (("run", "-d", "tyo"), 2, "no dataset 'tyo'; did you mean 'toy'?"),
        (("run", "-d", "toy", "-o", "train.epoch=1"), 2, "unknown key train.epoch; did you mean 'epochs'?"),
        (("run", "-d", "toy", "-o", "arch.chanels=1"), 2, "architecture 'toy' has no option 'chanels'"),
        (("run", "-d", "toy", "-o", "epochs"), 2, "must look like section.key=value"),
        (("run", "-d", "toy", "--preset", "slow"), 2, "neither dataset 'toy' nor strategy 'ew' has a preset 'slow'"),
        (("rnu",), 2, "no command 'rnu'; did you mean 'run'?"),
    ],
)
def test_bad_input_gives_one_line_and_nonzero_exit(cli, tmp_path, args, code, message):
    result = cli(*args, "--out", str(tmp_path / "x")) if args[0] == "run" else cli(*args)
    assert result.exit_code == code
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "x").exists(), "a failed start left a run directory"


def test_a_start_that_fails_while_building_leaves_no_run_directory(cli, tmp_path, monkeypatch):
    """Errors found while building components (an invalid option value, missing data) come before any write."""
    monkeypatch.chdir(tmp_path)
    result = cli("run", "-d", "toy", "-o", "dataset.size=0")  # the default runs/<...> folder
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "runs").exists()


def test_malformed_config_file(cli, tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text("[train]\nepochs = = 3\n")
    result = cli("run", "--config", str(bad))
    assert result.exit_code == 2 and "is not valid TOML" in result.output


def test_debug_shows_the_traceback(tmp_path):
    from click.testing import CliRunner

    from mtlx.cli import main
    from mtlx.errors import UnknownComponentError

    result = CliRunner().invoke(main, ["--debug", "--plugin", "mtlx_testing.plugin", "run", "-d", "nope"])
    assert isinstance(result.exception, UnknownComponentError)


def test_nonfinite_loss_stops_with_task_and_step_and_keeps_checkpoint(cli, tmp_path, monkeypatch):
    """A NaN in task reg1's loss at step 6 stops the run; last.pt from epoch 1 survives."""
    import mtlx.engine.engine as engine_mod

    real = engine_mod.task_losses
    calls = {"n": 0}

    def poisoned(preds, targets, tasks, transform):
        losses = real(preds, targets, tasks, transform)
        calls["n"] += 1
        if calls["n"] == 6:
            losses["reg1"] = losses["reg1"] * float("nan")
        return losses

    monkeypatch.setattr(engine_mod, "task_losses", poisoned)
    out = tmp_path / "run"
    result = cli(*RUN, "--epochs", "3", "--out", str(out), "-o", "train.eval_every=100")
    assert result.exit_code == 6
    assert "step 6 (epoch 1): the loss of task 'reg1' is nan" in result.output
    assert load_checkpoint(out / "last.pt")["engine"]["state"]["iteration"] == 4


def test_nonfinite_loss_skip_mode_drops_the_step_and_continues(cli, tmp_path, monkeypatch):
    import mtlx.engine.engine as engine_mod

    real = engine_mod.task_losses
    calls = {"n": 0}

    def poisoned(preds, targets, tasks, transform):
        losses = real(preds, targets, tasks, transform)
        calls["n"] += 1
        if calls["n"] == 3:
            losses["seg0"] = losses["seg0"] + float("inf")
        return losses

    monkeypatch.setattr(engine_mod, "task_losses", poisoned)
    out = tmp_path / "run"
    with pytest.warns(RuntimeWarning, match="skipping step 3 .*the loss of task 'seg0' is inf"):
        result = cli(*RUN, "--epochs", "2", "--on-nonfinite", "skip", "--out", str(out))
    assert result.exit_code == 0, result.output
    state = load_checkpoint(out / "last.pt")["engine"]
    assert state["state"]["iteration"] == 8
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_one_unwrapped_line_per_epoch_when_output_is_not_a_terminal(cli, tmp_path):
    """Piped output (CliRunner is not a terminal): one whole line per epoch with losses, metrics, Δm and time."""
    result = cli(*RUN, "--epochs", "3", "-o", "train.eval_every=2", "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/3", "2/3", "3/3"]
    assert "val " not in lines[0] and "train seg0=" in lines[0]  # epoch 1 is not evaluated (eval_every=2)
    for line in lines[1:]:
        assert "val seg0.acc=" in line and "reg1.mae=" in line and "Δm_task" in line and line.endswith("s")
        assert len(line) > 80  # whole, not wrapped at 80 columns


def test_ctrl_c_during_start_up_exits_130_and_writes_nothing(cli, tmp_path, monkeypatch):
    import mtlx.runner

    def interrupted(config, registries):
        raise KeyboardInterrupt

    monkeypatch.setattr(mtlx.runner, "build", interrupted)
    result = cli(*RUN, "--out", str(tmp_path / "r"))
    assert result.exit_code == 130, result.output
    assert "Interrupted" in result.output and "Aborted" not in result.output
    assert not (tmp_path / "r").exists()


def test_threads_option_leaves_the_process_as_it_was(cli, tmp_path):
    before = torch.get_num_threads()
    result = cli(*RUN, "--epochs", "1", "--threads", str(before + 1), "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    assert torch.get_num_threads() == before


def test_config_toml_records_every_option_at_the_value_the_run_used(cli, tmp_path):
    """Defaults are written out: a plugin that changes a default later changes neither the record nor a resume."""
    out = tmp_path / "run"
    assert cli(*RUN, "--epochs", "1", "--out", str(out), "-o", "arch.channels=4").exit_code == 0
    recorded = tomllib.loads((out / "config.toml").read_text())
    assert recorded["dataset"] == {"name": "toy", "num_tasks": 2, "size": 16, "seed": 0}
    assert recorded["arch"] == {"name": "toy", "channels": 4}
    assert load_checkpoint(out / "last.pt")["config"]["dataset"] == recorded["dataset"]


def test_every_run_flag_sets_the_config_key_of_its_name():
    """``--batch-size`` is ``train.batch_size``, ``--strategy`` is ``strategy.name`` (cli_settings' rule)."""
    import attrs

    from mtlx.cli.options import cli_settings
    from mtlx.cli.run import run
    from mtlx.config import COMPONENT_SECTIONS, TrainConfig

    own = {"config_file", "overrides", "presets", "out", "resume", "tensorboard", "quiet", "nproc", "max_restarts"}
    flags = {p.name: 1 for p in run.params if p.name not in own}
    keys = set(cli_settings(None, flags, ()))
    known = {f"train.{f.name}" for f in attrs.fields(TrainConfig)} | {f"{s}.name" for s in COMPONENT_SECTIONS}
    assert len(keys) == len(flags) and keys <= known | {"backbone.weights"}


@pytest.fixture
def faulty(monkeypatch):
    """``mtlx`` in-process with the toy plugin and ``tests/fixtures/faulty_plugin.py``."""
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "fixtures"))
    return lambda *args: invoke_cli("--plugin", "mtlx_testing.plugin", "--plugin", "faulty_plugin", *args)


def _finite(run_dir):
    engine = load_checkpoint(run_dir / "last.pt")["engine"]
    return all(torch.isfinite(v).all() for v in engine["model"].values() if v.is_floating_point())


def test_a_finite_loss_with_a_nonfinite_gradient_names_its_task(faulty, tmp_path):
    out = tmp_path / "run"
    result = faulty(*RUN, "-d", "toy-faulty", "--epochs", "2", "--out", out, "-o", "dataset.poison_task=reg1",
                    "-o", "dataset.poison=grad", "-o", "dataset.poison_from=6", "-o", "dataset.poison_to=99")
    assert result.exit_code == 6, result.output
    assert "step 6 (epoch 1): the gradient of task 'reg1' is NaN/Inf" in result.output
    assert load_checkpoint(out / "last.pt")["engine"]["state"]["iteration"] == 4 and _finite(out)


def test_skip_mode_stops_after_too_many_consecutive_skipped_steps(faulty, tmp_path):
    out = tmp_path / "run"
    with pytest.warns(RuntimeWarning, match="skipping step"):
        result = faulty(*RUN, "-d", "toy-faulty", "--epochs", "3", "--on-nonfinite", "skip", "--out", out,
                        "-o", "dataset.poison_task=seg0", "-o", "dataset.poison_from=3", "-o", "dataset.poison_to=99",
                        "-o", "train.max_consecutive_skips=4")
    assert result.exit_code == 6, result.output
    assert "4 consecutive steps skipped (steps 3 to 6)" in result.output
    assert "train.max_consecutive_skips" in result.output


def test_nonfinite_batchnorm_statistics_stop_the_run_and_never_reach_a_checkpoint(tmp_path):
    """SGD at lr 50 on digits: BN running_var overflows while the losses stay finite (exit 0 and inf in last.pt
    before); now exit 6 naming the tensor, and no checkpoint holds a non-finite value."""
    pytest.importorskip("mtlx_digits", reason="the BatchNorm model and the data come from mtlx-digits")
    out = tmp_path / "run"
    result = invoke_cli("run", "-s", "ew", "-d", "digits", "--epochs", "2", "--threads", "1", "-q",
                        "-o", "dataset.train_size=256", "-o", "dataset.val_size=64", "-o", "dataset.test_size=64",
                        "-o", "train.optimizer=sgd", "--lr", "50", "--out", out)
    assert result.exit_code == 6, result.output
    assert "is NaN/Inf" in result.output
    assert not (out / "last.pt").exists() or _finite(out)
    assert not (out / "best.pt").exists() or all(
        torch.isfinite(v).all() for v in load_checkpoint(out / "best.pt")["engine"]["model"].values()
        if v.is_floating_point())


def test_huge_but_finite_gradients_are_not_called_nonfinite(faulty, tmp_path):
    """Gradients ~1e20 are finite, though their squares overflow float32: a norm-based check called them NaN/Inf."""
    out = tmp_path / "run"
    result = faulty(*RUN, "-d", "toy-faulty", "--epochs", "1", "--out", out, "-o", "dataset.poison_task=reg1",
                    "-o", "dataset.poison=huge", "-o", "dataset.poison_from=2", "-o", "dataset.poison_to=2")
    assert result.exit_code == 0, result.output
    assert _finite(out)
