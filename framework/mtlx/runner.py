"""``mtlx run`` as a function: run directory, engine, handlers, training, results.

A run directory holds ``config.toml`` (the resolved config and the run's id),
``metrics.jsonl``, ``last.pt`` / ``best.pt`` and ``results.json``. An existing
run is never overwritten: continue it with ``resume=True`` or choose another
directory. :func:`train` starts in two phases (:mod:`mtlx.rundir`); a failure
after the directory is made leaves one that a resume continues (from step 0 if
no checkpoint was written yet).
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__, distributed, rundir
from .build import Components, build
from .checkpoint import append_line, atomic_write_text, load_checkpoint
from .config import RunConfig, TrainConfig, read_run_id
from .data import EpochLoader, MultiInputLoader, make_loader
from .engine import Engine, State
from .engine.evaluation import check_mergeable
from .errors import CheckpointError, ConfigError, RunInterrupted
from .handlers import CheckpointHandler, EpochLog, EvaluationHandler, JSONLLogger, LRSchedulerHandler, ProgressBar
from .hooks import PluginManager
from .jsonutil import dumps
from .rundir import RUN_FILES
from .signals import on_stop_signals
from .threads import torch_threads

__all__ = [
    "RUN_FILES", "check_resumable", "create_engine", "interrupt_on_signals", "make_engine", "make_optimizer",
    "prepare_run_dir", "seed_everything", "select_device", "train",
]


def select_device(spec: str) -> torch.device:
    """``auto`` picks CUDA when available, else CPU; anything else (``train.device``: parsed, meta refused by
    :class:`~mtlx.config.TrainConfig`) must exist on this machine."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {spec} requested but CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {spec}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                              f"numbered from 0")
    elif device.type != "cpu":
        backend = getattr(torch, device.type, None)
        if not (backend is not None and getattr(backend, "is_available", lambda: False)()):
            raise ConfigError(f"--device {spec} requested but {device.type} is not available on this machine")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def check_resumable(run_dir: str | Path) -> Path:
    """The ``config.toml`` of a run that can be resumed, or a :class:`CheckpointError` saying why not.

    A run that stopped before its first checkpoint (config.toml, no last.pt) resumes from step 0.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.toml").is_file():
        what = "does not exist" if not run_dir.exists() else "has no config.toml"
        raise CheckpointError(f"cannot resume {run_dir}: it {what} (is it a run directory of mtlx run?)")
    return run_dir / "config.toml"


def _nothing_left(engine: Engine) -> str | None:
    """Why a resumed run has no step left to take, or None."""
    state = engine.state
    if state.steps_done:
        return (f"it has taken its train.max_steps = {state.max_steps} steps; "
                f"pass --max-steps N with N > {state.iteration} to train on")
    if state.epoch >= state.max_epochs:
        return (f"it has trained its train.epochs = {state.max_epochs} epochs; "
                f"pass --epochs N with N > {state.max_epochs} to train on")
    return None


def _record_resume(run_dir: Path, config: RunConfig, run_id: str | None, changes: Mapping[str, Any],
                   step: int) -> None:
    """config.toml holds the final values; resumes.jsonl one line per resume that changed options."""
    atomic_write_text(run_dir / "config.toml", config.to_toml(run_id=run_id))
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "at_step": step, "changed": dict(changes)}
    append_line(run_dir / "resumes.jsonl", dumps(record))


def prepare_run_dir(out: str | Path | None, config: RunConfig) -> Path:
    """The directory of a new run, checked: it may not overwrite one (a resumed run's is :func:`check_resumable`'s).

    Nothing is created here: :func:`train` makes the directory once every component
    is built and validated, so a failed start leaves nothing behind.
    """
    if out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"{config.dataset.name}-{config.strategy.name}-{stamp}"
    run_dir = Path(out)
    rundir.refuse_existing_run(run_dir)
    return run_dir


def _versions(plugins: PluginManager) -> dict[str, str]:
    """mtlx's and every loaded plugin's version, stored in checkpoints."""
    loaded = plugins.plugins.values()
    return {**{info.dist: info.version for info in loaded if info.error is None}, "mtlx": __version__}


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


def _checkpoint_bytes(engine: Engine, train: TrainConfig) -> int:
    """About the size of one checkpoint: the model's state, the optimiser's per-parameter state (Adam: two
    moments; SGD with momentum: one buffer; none when the strategy takes the step) and the strategy's."""
    model = sum(t.numel() * t.element_size() for t in engine.model.state_dict().values())
    params = list(engine.trainable_parameters())
    stepped = sum(p.numel() * p.element_size() for p in params)
    slots = 2 if train.optimizer in ("adam", "adamw") else int(train.momentum > 0)
    shared = engine.model.shared_parameters()
    others = [p for p in params if all(p is not q for q in shared)]
    strategy = engine.strategy.state_bytes(shared, others)
    return model + (0 if engine.strategy.owns_optimizer_step else slots * stepped) + strategy


def _labels(components: Components) -> dict[str, str]:
    """How messages name the run's components: ``strategy 'ew' from mtlx-baselines==0.1.0 (baselines)``."""
    config, registries = components.config, components.registries

    def label(section: str) -> str:
        return registries.by_section[section].describe(getattr(config, section).name)

    model = ", ".join(label(s) for s in ("arch", "backbone", "head"))
    return {"strategy": label("strategy"), "dataset": label("dataset"), "meter": f"a meter of {label('dataset')}",
            "model": f"the model ({model})"}


def _make_scheduler(train: TrainConfig, optimizer: torch.optim.Optimizer) -> Any:
    if train.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=train.step_size, gamma=train.gamma)
    if train.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=train.epochs)
    return None


def _loader(components: Components, split: str, *, train: bool, seed_offset: int = 0) -> Any:
    """Training: a sharded, resumable :class:`EpochLoader` (batch size per process); evaluation: in order, this
    process's whole batches (:func:`mtlx.distributed.batch_shard`)."""
    cfg = components.config.train
    data = components.dataset.split(split)
    collate = components.dataset.collate

    def one(dataset: Any) -> Any:
        if train:
            loader = EpochLoader(dataset, batch_size=cfg.batch_size, seed=cfg.seed + seed_offset,
                                 num_workers=cfg.num_workers,
                                 collate_fn=collate, rank=distributed.rank(), world_size=distributed.world_size(),
                                 drop_last=cfg.drop_last)
            if len(loader) == 0:
                what = "the training split" if split == "train" else f"the held-out split {split!r}"
                raise ConfigError(
                    f"{what} of {components.config.dataset.name!r} has {len(dataset)} samples: "
                    f"no batch of {cfg.batch_size}{' with train.drop_last=true' * cfg.drop_last}; lower --batch-size"
                )
            return loader
        size = cfg.eval_batch_size or cfg.batch_size
        return make_loader(distributed.batch_shard(dataset, size), batch_size=size, shuffle=False,
                           seed=cfg.seed, num_workers=cfg.num_workers, collate_fn=collate)

    if components.dataset.multi_input:
        return MultiInputLoader({t: one(d) for t, d in data.items()}, cycle=train)
    return one(data)


#: added to the run's seed for the held-out loader's shuffle, so that a held-out split ``train`` is drawn in
#: another order than the training batches (the original Auto-Lambda's second training loader)
HELDOUT_SEED_OFFSET = 1


def heldout_loader(components: Components) -> Any:
    """The cycled training-style loader of the strategy's ``heldout_split`` (None without one), its own shard
    per process; a split the dataset lacks is refused in one line."""
    split, splits = components.strategy.heldout_split, components.dataset.splits
    if split is None:
        return None
    if split not in splits:
        raise ConfigError(
            f"strategy {components.config.strategy.name!r} draws held-out batches of split {split!r}, but dataset "
            f"{components.config.dataset.name!r} has only {', '.join(splits)}; "
            "choose one of them in the strategy's options"
        )
    return _loader(components, split, train=True, seed_offset=HELDOUT_SEED_OFFSET)


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
    if cfg.sync_batchnorm and device.type == "cuda" and distributed.is_distributed():  # torch's CPU has none
        torch.nn.SyncBatchNorm.convert_sync_batchnorm(components.model)  # swaps the BN children in place
    optimizer = make_optimizer(cfg, components)
    return Engine(
        model=components.model,
        strategy=components.strategy,
        optimizer=optimizer,
        tasks=components.tasks,
        train_loader=train_loader,
        eval_loaders=eval_loaders,
        heldout_loader=heldout_loader(components),
        device=device,
        state=State(max_epochs=cfg.epochs, max_steps=cfg.max_steps),
        precision=cfg.precision,
        loss_transform=cfg.loss_transform,
        on_nonfinite=cfg.on_nonfinite,
        max_consecutive_skips=cfg.max_consecutive_skips,
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
    plugins: PluginManager,
    progress: bool = False,
    tensorboard: bool = False,
    run_id: str | None = None,
) -> Engine:
    """The engine with the default handlers (LR schedule, evaluation, JSONL, checkpoints, progress).

    ``plugins``' ``mtlx_engine_created`` attach theirs; checkpoints record their versions. Nothing is written
    until it runs. Checkpoints carry ``run_id`` and the number of processes.
    """
    cfg = components.config.train
    val, test = eval_splits(components)
    eval_loaders = {s: _loader(components, s, train=False) for s in {val, test} if s is not None}
    engine = make_engine(components, _loader(components, "train", train=True), eval_loaders)
    engine.labels = _labels(components)
    meta = {"config": components.config.to_dict(), "versions": _versions(plugins), "run_id": run_id,
            "world_size": distributed.world_size()}
    engine.attach(LRSchedulerHandler())
    if distributed.is_distributed():
        check_mergeable(components.tasks)
    engine.attach(EvaluationHandler(val, every=cfg.eval_every))  # every process: each evaluates its shard
    if distributed.is_main_process():  # only rank 0 logs and writes checkpoints
        engine.attach(EpochLog(val, eval_every=cfg.eval_every))  # after the evaluation: its metrics are in the line
        # before the checkpoints: a checkpoint's state includes the records of its own step
        engine.attach(JSONLLogger(run_dir / "metrics.jsonl", log_every=cfg.log_every,
                                  tensorboard_dir=run_dir / "tensorboard" if tensorboard else None))
        if progress:
            engine.attach(ProgressBar())
    # every process: last.pt gathers each rank's state (rank 0 writes it)
    engine.attach(CheckpointHandler(run_dir, lambda: meta, every_steps=cfg.checkpoint_every))
    plugins.call("mtlx_engine_created", required=True, engine=engine, config=components.config,
                 options={name: section.config for name, section in components.config.plugins.items()})
    return engine


def train(
    config: RunConfig,
    run_dir: Path,
    *,
    plugins: PluginManager,
    resume: bool = False,
    resume_changes: Mapping[str, Any] | None = None,
    progress: bool = False,
    tensorboard: bool = False,
    on_start: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Train and evaluate; write ``config.toml`` (``config``, resolved: :func:`mtlx.config.resolve_run_config`)
    and ``results.json``; return the results.

    Everything is built from ``plugins``' registries (the command line's: :func:`mtlx.cli.plugin_manager`).
    Of the two phases (:mod:`mtlx.rundir`), ``on_start(step, epoch)`` (the start line) is called once the
    directory is claimed, before training. A resumed run's checkpoint must be this run's
    (its run id), from as many processes, and fit the model; it records the options it changed
    (``resume_changes``, see :func:`mtlx.config.resume_config`) in config.toml and resumes.jsonl. One with
    no step left returns its results with ``nothing_to_do`` saying why.
    """
    with torch_threads(config.train.threads):  # restored afterwards: the caller's process is left as it was
        seed_everything(config.train.seed)
        components = build(config, plugins.registries)
        main = distributed.is_main_process()
        run_id = read_run_id(run_dir / "config.toml") if resume else rundir.new_run_id()
        engine = create_engine(components, run_dir, plugins=plugins, progress=progress, tensorboard=tensorboard,
                               run_id=run_id)
        if main:
            rundir.check_writable(run_dir, _checkpoint_bytes(engine, config.train))
        held = rundir.claim(run_dir, new=not resume) if main else contextlib.nullcontext()
        with held:
            # SIGINT/SIGTERM stop after the current step, the same one on every process (Engine.request_stop)
            with on_stop_signals(lambda received: engine.request_stop()) as received:
                if main and not resume:
                    atomic_write_text(run_dir / "config.toml", config.to_toml(run_id=run_id))
                if resume:
                    _load_resume_state(engine, run_dir, run_id, config.train.epochs)
                    if main and resume_changes:
                        _record_resume(run_dir, config, run_id, resume_changes, engine.state.iteration)
                    reason = _nothing_left(engine)
                    if reason is not None and (run_dir / "results.json").is_file():
                        previous = json.loads((run_dir / "results.json").read_text())
                        return {**previous, "nothing_to_do": f"nothing left to do in {run_dir}: {reason}"}
                if on_start is not None and main:
                    on_start(engine.state.iteration, engine.state.epoch)
                start = time.perf_counter()
                engine.run()
            if received:
                raise RunInterrupted(
                    f"stopped by {received[0]} at step {engine.state.iteration}; a resumable checkpoint is in "
                    f"{run_dir / 'last.pt'}: continue with mtlx run --resume {run_dir}"
                )
            with interrupt_on_signals(f"during the final evaluation; continue with mtlx run --resume {run_dir}"):
                results = _final_results(engine, components, run_dir)  # every process: the evaluation is sharded
                if not main:
                    return {}
                results["train_time_s"] = round(time.perf_counter() - start, 2)
                results["world_size"] = distributed.world_size()
                atomic_write_text(run_dir / "results.json", dumps(results, indent=2))
            return results


def _load_own_checkpoint(path: Path, run_id: str | None, device: torch.device) -> dict[str, Any]:
    """``path``, refused unless it belongs to the run whose config.toml says ``run_id`` (runs written before
    run ids existed have none and are not checked)."""
    checkpoint = load_checkpoint(path, map_location=device)
    if run_id is not None and checkpoint.get("run_id") != run_id:
        raise CheckpointError(
            f"{path} belongs to another run (run id {checkpoint.get('run_id')}, this run's config.toml says "
            f"{run_id}): a checkpoint only continues the run that wrote it"
        )
    return checkpoint


def _load_resume_state(engine: Engine, run_dir: Path, run_id: str | None, epochs: int) -> None:
    """Restore ``run_dir``'s last.pt into ``engine`` with every check; without one, start from step 0
    (a run that stopped before its first checkpoint) and drop the records of that attempt."""
    path = run_dir / "last.pt"
    if not path.is_file():
        if distributed.is_main_process():
            (run_dir / "metrics.jsonl").unlink(missing_ok=True)
        return
    checkpoint = _load_own_checkpoint(path, run_id, engine.device)
    saved = checkpoint.get("world_size", distributed.world_size())  # older checkpoints did not record it
    if saved != distributed.world_size():
        how = f"with --nproc {saved}" if saved > 1 else "without --nproc"
        raise ConfigError(
            f"cannot resume {run_dir} with {distributed.world_size()} process(es): it was trained by {saved} "
            f"process{'es' * (saved > 1)}; resume it {how} (the number of processes decides what each step sees)"
        )
    try:
        engine.load_state_dict(checkpoint["engine"])
        if checkpoint.get("ranks"):  # written with each rank's state (older checkpoints: rank 0's only)
            engine.load_rank_state(checkpoint["ranks"][distributed.rank()])
    except (RuntimeError, KeyError, ValueError) as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else (lines[0] if lines else type(error).__name__)
        raise CheckpointError(f"{path} does not fit the model this run's config.toml builds: {detail}") from None
    _follow_horizon(engine, epochs)


def _follow_horizon(engine: Engine, epochs: int) -> None:
    """A cosine schedule whose horizon grew (``--epochs`` on resume) continues as a run started with the new
    horizon would: epoch e trains at eta_min + (base - eta_min)(1 + cos(pi e / epochs)) / 2."""
    scheduler = engine.scheduler
    if not isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR) or scheduler.T_max == epochs:
        return
    scheduler.T_max = epochs
    factor = (1 + math.cos(math.pi * scheduler.last_epoch / epochs)) / 2
    for group, base in zip(engine.optimizer.param_groups, scheduler.base_lrs, strict=True):
        group["lr"] = scheduler.eta_min + (base - scheduler.eta_min) * factor


def interrupt_on_signals(what: str) -> contextlib.AbstractContextManager[list[str]]:
    """SIGINT/SIGTERM raise :class:`RunInterrupted` ``interrupted by SIGTERM <what>`` (exit 130, one line)
    while the block runs: start-up, where nothing is written yet, and the final evaluation."""

    def interrupt(received: list[str]) -> None:
        raise RunInterrupted(f"interrupted by {received[-1]} {what}")

    return on_stop_signals(interrupt)


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
        if state.best is not None and state.best["epoch"] != state.epoch - 1 and (best := _best_weights(run_dir)):
            final_weights = {k: v.clone() for k, v in engine.model.state_dict().items()}
            engine.model.load_state_dict(best)
            engine.evaluate(test, name=f"{test}@best")
            results.update(_evaluated(state, "test_at_best", f"{test}@best"))
            engine.model.load_state_dict(final_weights)
    return results


def _best_weights(run_dir: Path) -> dict[str, torch.Tensor] | None:
    """The model weights of ``run_dir``'s best.pt (None without one), read by rank 0 and sent to every process."""
    path = run_dir / "best.pt"
    weights = None
    if distributed.is_main_process() and path.is_file():
        weights = _load_own_checkpoint(path, read_run_id(run_dir / "config.toml"), torch.device("cpu"))
        weights = weights["engine"]["model"]
    return distributed.broadcast_object(weights)


def _evaluated(state: State, key: str, name: str) -> dict[str, Any]:
    """The metrics, summary and details the engine stored under evaluation ``name``, as ``key``, ``key_summary``..."""
    return {key: state.metrics.get(name), f"{key}_summary": state.summary.get(name, {}),
            f"{key}_details": state.details.get(name, {})}
