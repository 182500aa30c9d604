"""``mtlx run`` as a function: run directory, engine, handlers, training, results.

A run directory holds ``config.toml`` (the resolved config), ``metrics.jsonl``,
``last.pt`` / ``best.pt`` and ``results.json``. An existing run is never
overwritten: continue it with ``resume=True`` or choose another directory.
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__, distributed
from .build import Components, build
from .checkpoint import atomic_write_text, load_checkpoint
from .config import RunConfig, TrainConfig
from .data import EpochLoader, MultiInputLoader, make_loader
from .engine import Engine, State
from .errors import CheckpointError, ConfigError, RunInterrupted
from .handlers import CheckpointHandler, EpochLog, EvaluationHandler, JSONLLogger, LRSchedulerHandler, ProgressBar
from .jsonutil import dumps
from .hooks import get_plugin_manager
from .threads import torch_threads

__all__ = ["RUN_FILES", "check_resumable", "create_engine", "make_engine", "make_optimizer", "prepare_run_dir", "seed_everything", "select_device", "train"]

#: Files whose presence marks a directory as holding a run.
RUN_FILES = ("config.toml", "last.pt", "best.pt", "results.json", "metrics.jsonl")


def select_device(spec: str) -> torch.device:
    """``auto`` picks CUDA when available, else CPU; anything else is passed to torch."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as error:
        raise ConfigError(f"invalid --device {spec!r}: {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {spec} requested but CUDA is not available on this machine")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def check_resumable(run_dir: str | Path) -> Path:
    """The ``config.toml`` of a run that can be resumed, or a :class:`CheckpointError` saying why not."""
    run_dir = Path(run_dir)
    for name in ("config.toml", "last.pt"):
        if not (run_dir / name).is_file():
            what = "does not exist" if not run_dir.exists() else f"has no {name}"
            raise CheckpointError(f"cannot resume {run_dir}: it {what} (is it a run directory of mtlx run?)")
    return run_dir / "config.toml"


def _nothing_left(engine: Engine) -> str | None:
    """Why a resumed run has no step left to take, or None."""
    state = engine.state
    if state.max_steps is not None and state.iteration >= state.max_steps:
        return (f"it has taken its train.max_steps = {state.max_steps} steps; "
                f"pass --max-steps N with N > {state.iteration} to train on")
    if state.epoch >= state.max_epochs:
        return (f"it has trained its train.epochs = {state.max_epochs} epochs; "
                f"pass --epochs N with N > {state.max_epochs} to train on")
    return None


def _record_resume(run_dir: Path, config: RunConfig, changes: Mapping[str, Any], step: int) -> None:
    """config.toml holds the final values; resumes.jsonl one line per resume that changed options."""
    atomic_write_text(run_dir / "config.toml", config.to_toml())
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "at_step": step, "changed": dict(changes)}
    with open(run_dir / "resumes.jsonl", "a", encoding="utf-8") as log:
        log.write(dumps(record) + "\n")


def prepare_run_dir(out: str | Path | None, config: RunConfig) -> Path:
    """The directory of a new run, checked: it may not overwrite one (a resumed run's is :func:`check_resumable`'s).

    Nothing is created here: :func:`train` makes the directory once every component
    is built and validated, so a failed start leaves nothing behind.
    """
    if out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"{config.dataset.name}-{config.strategy.name}-{stamp}"
    run_dir = Path(out)
    existing = [name for name in RUN_FILES if (run_dir / name).exists()]
    if existing:
        raise CheckpointError(
            f"run directory {run_dir} already holds a run ({', '.join(existing)}); "
            f"continue it with --resume {run_dir} or choose another --out"
        )
    return run_dir


def _versions() -> dict[str, str]:
    """mtlx's and every loaded plugin's version, stored in checkpoints."""
    plugins = get_plugin_manager().plugins.values()
    return {**{info.dist: info.version for info in plugins if info.error is None}, "mtlx": __version__}


def make_optimizer(train: TrainConfig, components: Components) -> torch.optim.Optimizer:
    """The configured optimiser over the model and, without weight decay, the strategy's extra parameters."""
    groups = [{"params": [p for p in components.model.parameters() if p.requires_grad], "weight_decay": train.weight_decay}]
    extra = [p for p in components.strategy.extra_parameters() if p.requires_grad]
    if extra:
        groups.append({"params": extra, "weight_decay": 0.0})
    if train.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=train.lr, momentum=train.momentum)
    cls = torch.optim.AdamW if train.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=train.lr)


def _make_scheduler(train: TrainConfig, optimizer: torch.optim.Optimizer) -> Any:
    if train.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=train.step_size, gamma=train.gamma)
    if train.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=train.epochs)
    return None


def _loader(components: Components, split: str, *, train: bool) -> Any:
    """Training: a sharded, resumable :class:`EpochLoader` (batch size per process); evaluation: in order."""
    cfg = components.config.train
    data = components.dataset.split(split)
    collate = components.dataset.collate

    def one(dataset: Any) -> Any:
        if train:
            loader = EpochLoader(dataset, batch_size=cfg.batch_size, seed=cfg.seed, num_workers=cfg.num_workers,
                                 collate_fn=collate, rank=distributed.rank(), world_size=distributed.world_size(),
                                 drop_last=cfg.drop_last)
            if len(loader) == 0:
                raise ConfigError(
                    f"the training split of {components.config.dataset.name!r} has {len(dataset)} samples: "
                    f"no batch of {cfg.batch_size} with train.drop_last=true; lower --batch-size"
                )
            return loader
        return make_loader(dataset, batch_size=cfg.eval_batch_size or cfg.batch_size, shuffle=False,
                           seed=cfg.seed, num_workers=cfg.num_workers, collate_fn=collate)

    if components.dataset.multi_input:
        return MultiInputLoader({t: one(d) for t, d in data.items()}, cycle=train)
    return one(data)


def eval_splits(components: Components) -> tuple[str, str | None]:
    """(validation split, test split or None): val falls back to test where a dataset has no val."""
    cfg, splits = components.config.train, components.dataset.splits
    test = cfg.test_split if cfg.test_split in splits else None
    val = cfg.val_split if cfg.val_split in splits else test
    if val is None:
        raise ConfigError(
            f"dataset {components.config.dataset.name!r} has neither split {cfg.val_split!r} nor "
            f"{cfg.test_split!r} (splits: {', '.join(splits)})"
        )
    return val, test


def make_engine(components: Components, train_loader: Any, eval_loaders: Mapping[str, Any] | None = None) -> Engine:
    """The engine the config describes (device, optimiser, precision, clipping, schedule, ...), without handlers.

    ``mtlx run`` attaches its handlers to it (:func:`create_engine`); tools that
    take real training steps (``mtlx profile``) run it as it is.
    """
    cfg = components.config.train
    device = select_device(cfg.device)
    if device.type == "cpu" and cfg.precision == "fp16":
        warnings.warn(
            "--precision fp16 on a CPU is slow (CPUs have few fp16 kernels and the GradScaler adds work); "
            "use --precision bf16 or fp32 there", RuntimeWarning, stacklevel=3,
        )
    components.model.to(device)
    optimizer = make_optimizer(cfg, components)
    return Engine(
        model=components.model,
        strategy=components.strategy,
        optimizer=optimizer,
        tasks=components.tasks,
        train_loader=train_loader,
        eval_loaders=eval_loaders,
        device=device,
        state=State(max_epochs=cfg.epochs, max_steps=cfg.max_steps),
        precision=cfg.precision,
        loss_transform=cfg.loss_transform,
        on_nonfinite=cfg.on_nonfinite,
        baseline=components.dataset.baseline(),
        multi_input=components.dataset.multi_input,
        scheduler=_make_scheduler(cfg, optimizer),
        max_grad_norm=cfg.max_grad_norm,
        per_task_grads=cfg.per_task_grads,
    )


def create_engine(
    components: Components,
    run_dir: Path,
    *,
    progress: bool = False,
    tensorboard: bool = False,
) -> Engine:
    """The engine with the default handlers (LR schedule, evaluation, checkpoints, JSONL, progress)."""
    cfg = components.config.train
    val, test = eval_splits(components)
    eval_loaders = {s: _loader(components, s, train=False) for s in {val, test} if s is not None}
    engine = make_engine(components, _loader(components, "train", train=True), eval_loaders)
    meta = {"config": components.config.to_dict(), "versions": _versions()}
    engine.attach(LRSchedulerHandler())
    if distributed.is_main_process():  # only rank 0 evaluates, logs and writes checkpoints
        engine.attach(EvaluationHandler(val, every=cfg.eval_every))
        engine.attach(EpochLog(val, eval_every=cfg.eval_every))  # after the evaluation: its metrics are in the line
        engine.attach(CheckpointHandler(run_dir, lambda: meta, every_steps=cfg.checkpoint_every))
        engine.attach(JSONLLogger(run_dir / "metrics.jsonl", log_every=cfg.log_every,
                                  tensorboard_dir=run_dir / "tensorboard" if tensorboard else None))
        if progress:
            engine.attach(ProgressBar())
    get_plugin_manager().hook.mtlx_engine_created(engine=engine, config=components.config)
    return engine


def train(
    config: RunConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    resume_changes: Mapping[str, Any] | None = None,
    progress: bool = False,
    tensorboard: bool = False,
) -> dict[str, Any]:
    """Train and evaluate; write ``config.toml`` and ``results.json``; return the results.

    A resumed run records the options it changed (``resume_changes``, see
    :func:`mtlx.config.resume_config`) in config.toml and resumes.jsonl; one with
    no step left returns its results with ``nothing_to_do`` saying why.
    """
    with torch_threads(config.train.threads):  # restored afterwards: the caller's process is left as it was
        seed_everything(config.train.seed)
        components = build(config)
        config = components.config  # with every default written out
        main = distributed.is_main_process()
        if main and not resume:  # only now that everything is built and validated
            run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(run_dir / "config.toml", config.to_toml())
        engine = create_engine(components, run_dir, progress=progress, tensorboard=tensorboard)
        if resume:
            engine.load_state_dict(load_checkpoint(run_dir / "last.pt", map_location=engine.device)["engine"])
            if main and resume_changes:
                _record_resume(run_dir, config, resume_changes, engine.state.iteration)
            reason = _nothing_left(engine)
            if reason is not None and (run_dir / "results.json").is_file():
                previous = json.loads((run_dir / "results.json").read_text())
                return {**previous, "nothing_to_do": f"nothing left to do in {run_dir}: {reason}"}
        start = time.perf_counter()
        with _stop_on_signals(engine) as received:
            engine.run()
        if received:
            raise RunInterrupted(
                f"stopped by {received[0]} at step {engine.state.iteration}; a resumable checkpoint is in "
                f"{run_dir / 'last.pt'}: continue with mtlx run --resume {run_dir}"
            )
        if not main:
            return {}
        results = _final_results(engine, components, run_dir)
        results["train_time_s"] = round(time.perf_counter() - start, 2)
        results["world_size"] = distributed.world_size()
        atomic_write_text(run_dir / "results.json", dumps(results, indent=2))
        return results


@contextlib.contextmanager
def _stop_on_signals(engine: Engine) -> Iterator[list[str]]:
    """SIGINT/SIGTERM ask the engine to stop after the current step (a checkpoint is written then)."""
    received: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum: int, frame: Any) -> None:
        received.append(signal.Signals(signum).name)
        engine.state.should_stop = True

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def _final_results(engine: Engine, components: Components, run_dir: Path) -> dict[str, Any]:
    state = engine.state
    val, test = eval_splits(components)
    results: dict[str, Any] = {
        "dataset": components.config.dataset.name,
        "strategy": components.config.strategy.name,
        "tasks": list(components.tasks),
        "epochs_completed": state.epoch,
        "steps": state.iteration,
        "higher_is_better": {t: s.higher_is_better for t, s in components.tasks.items()},
        "baseline": components.dataset.baseline(),
        "val_split": val,
        **_evaluated(state, "val", val),
        "best": state.best,
    }
    if test is not None:
        results["test_split"] = test
        if not (test == val and test in state.metrics):
            engine.evaluate(test)
        results.update(_evaluated(state, "test", test))
        best_path = run_dir / "best.pt"
        if state.best is not None and best_path.is_file() and state.best["epoch"] != state.epoch - 1:
            final_weights = {k: v.clone() for k, v in engine.model.state_dict().items()}
            engine.model.load_state_dict(load_checkpoint(best_path, map_location=engine.device)["engine"]["model"])
            engine.evaluate(test, name=f"{test}@best")
            results.update(_evaluated(state, "test_at_best", f"{test}@best"))
            engine.model.load_state_dict(final_weights)
    return results


def _evaluated(state: State, key: str, name: str) -> dict[str, Any]:
    """The metrics, summary and details the engine stored under evaluation ``name``, as ``key``, ``key_summary``..."""
    return {key: state.metrics.get(name), f"{key}_summary": state.summary.get(name, {}),
            f"{key}_details": state.details.get(name, {})}
