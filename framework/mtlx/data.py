"""Locating datasets on disk and building resumable loaders.

Nothing here downloads: a dataset that is not where it should be produces a
:class:`~mtlx.errors.DataError` telling the user what to put where.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torchdata.stateful_dataloader import StatefulDataLoader
from torchdata.stateful_dataloader.sampler import StatefulDistributedSampler

from .errors import DataError

__all__ = [
    "DATA_ENV", "EpochLoader", "MultiInputLoader", "make_loader", "require_files", "resolve_root", "worker_message",
]

DATA_ENV = "MTLX_DATA"


def _stateful_loader(dataset: torch.utils.data.Dataset, **options: Any) -> StatefulDataLoader:
    """A StatefulDataLoader, built without the warning its constructor triggers.

    torchdata 0.11 calls torch's deprecated ``set_vital`` in ``__init__``; the
    warning says nothing to users. It is silenced here only, never in the
    process-wide filters.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="'set_vital' is deprecated", category=UserWarning)
        return StatefulDataLoader(dataset, **options)


def resolve_root(root: str | os.PathLike[str] | None, dataset: str, *, expected: str, source: str) -> Path:
    """The dataset's directory: ``root`` (``--data-root``) or ``$MTLX_DATA/<dataset>``.

    Args:
        expected: what the directory must contain (shown when it is missing).
        source: where the public release comes from (shown when it is missing).
    """
    if root is None:
        base = os.environ.get(DATA_ENV)
        if not base:
            raise DataError(
                f"dataset {dataset!r} needs its files: pass --data-root PATH or set {DATA_ENV} "
                f"(then {DATA_ENV}/{dataset} is used). Expected layout: {expected}. Get the data from: {source}"
            )
        path = Path(base).expanduser() / dataset
    else:
        path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(
            f"dataset {dataset!r}: directory {path} does not exist. Expected layout: {expected}. "
            f"Get the data from: {source}"
        )
    return path


def require_files(paths: Sequence[Path], what: str) -> None:
    """Raise one DataError listing the first missing files of ``paths``."""
    missing = [p for p in paths if not p.is_file()]
    if missing:
        shown = ", ".join(str(p) for p in missing[:5])
        more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
        raise DataError(f"{what}: missing file(s) {shown}{more}")


def make_loader(
    dataset: torch.utils.data.Dataset,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    num_workers: int = 0,
    collate_fn: Any = None,
) -> StatefulDataLoader:
    """A StatefulDataLoader whose shuffling order depends only on ``seed`` and the epoch.

    Its ``state_dict`` captures the position inside the epoch, so a resumed
    run continues with the exact next batch.
    """
    return _stateful_loader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        collate_fn=collate_fn,
        generator=torch.Generator().manual_seed(seed),
    )


def worker_message(error: BaseException) -> str | None:
    """The original message of an error a DataLoader worker raised, else None.

    torch re-raises a worker's exception in the main process as the same type with the text
    ``Caught X in DataLoader worker process N. Original Traceback ...`` and the worker's whole
    traceback; the last line, ``module.X: message``, is what the dataset said.
    """
    text = str(error)
    if not text.startswith("Caught ") or "Original Traceback" not in text:
        return None
    last = [line for line in text.splitlines() if line.strip()][-1]
    name = type(error).__name__
    head, sep, rest = last.partition(": ")
    return rest if sep and head.rsplit(".", 1)[-1] == name else last


class EpochLoader:
    """The training loader: a shuffle that depends only on ``(seed, epoch)``, sharded over processes.

    Every process uses a :class:`StatefulDistributedSampler` over the same
    seeded permutation, so the global batch of step ``i`` holds the same
    samples whatever the number of processes (1 included) and a resumed run
    continues with the exact next batch. ``state_dict`` holds the epoch and
    the position inside it. Starting an epoch draws the DataLoader's base seed
    from torch's global RNG; an epoch resumed mid-way leaves that RNG as it
    finds it, since the checkpoint's RNG state already holds the draw of the
    epoch's start (otherwise every later draw, dropout's, would shift).
    """

    def __init__(
        self,
        dataset: torch.utils.data.Dataset,
        *,
        batch_size: int,
        seed: int,
        num_workers: int = 0,
        drop_last: bool = False,
        collate_fn: Any = None,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.sampler = StatefulDistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=drop_last
        )
        self.loader = _stateful_loader(
            dataset, batch_size=batch_size, sampler=self.sampler, num_workers=num_workers,
            drop_last=drop_last, collate_fn=collate_fn,
        )
        self.epoch = 0
        self._mid_epoch = False
        self._resumed_mid_epoch = False

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        self.sampler.set_epoch(self.epoch)
        rng = torch.get_rng_state() if self._resumed_mid_epoch else None
        batches = iter(self.loader)
        if rng is not None:
            torch.set_rng_state(rng)
            self._resumed_mid_epoch = False
        self._mid_epoch = True
        yield from batches
        self._mid_epoch = False
        self.epoch += 1

    def state_dict(self) -> dict[str, Any]:
        # a finished epoch's loader state would replay as an empty epoch: store the position only mid-epoch
        return {"epoch": self.epoch, "loader": self.loader.state_dict() if self._mid_epoch else None}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        if state["loader"] is not None:
            self.loader.load_state_dict(state["loader"])
        self._resumed_mid_epoch = state["loader"] is not None


class MultiInputLoader:
    """Zips one loader per task into batches ``({task: x}, {task: y})``.

    An epoch is as long as the longest task loader. For training
    (``cycle=True``) shorter loaders restart (LibMTL's multi-input
    convention); for evaluation (``cycle=False``) a task whose loader is
    exhausted drops out of the batch, so every sample is seen exactly once.
    Resumable through ``state_dict``.
    """

    def __init__(self, loaders: Mapping[str, Any], *, cycle: bool = True):
        self.loaders = dict(loaders)
        self.cycle = cycle
        self._iters: dict[str, Iterator[Any]] = {}
        self._emitted = 0

    def __len__(self) -> int:
        return max(len(loader) for loader in self.loaders.values())

    def __iter__(self) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        for task, loader in self.loaders.items():
            if task not in self._iters:
                self._iters[task] = iter(loader)
        while self._emitted < len(self):
            inputs, targets = {}, {}
            for task in self.loaders:
                try:
                    x, y = next(self._iters[task])
                except StopIteration:
                    if not self.cycle:
                        continue
                    self._iters[task] = iter(self.loaders[task])
                    x, y = next(self._iters[task])
                inputs[task], targets[task] = x, y
            self._emitted += 1
            yield inputs, targets
        self._iters.clear()
        self._emitted = 0

    def state_dict(self) -> dict[str, Any]:
        return {"emitted": self._emitted, "loaders": {t: loader.state_dict() for t, loader in self.loaders.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._emitted = int(state["emitted"])
        for task, loader in self.loaders.items():
            loader.load_state_dict(state["loaders"][task])
        self._iters.clear()
