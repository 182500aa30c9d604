"""The ``qm9`` dataset: 11 molecular properties, the Nash-MTL / FAMO / LibMTL setup, offline.

Molecules come from the ``qm9pack`` wheel (:mod:`mtlx_qm9.source`); graphs
are built once and cached (:mod:`mtlx_qm9.store`). Splits: after a seeded
permutation, test = the first ``test_size`` molecules, val = the next
``val_size``, train = the rest. Targets are z-scored with the mean/std of
the train split (``standardize="train"``) or of all molecules
(``standardize="full"``: LibMTL, and what Nash-MTL's code computes in
effect); the loss is MSE on standardised targets and the metric the MAE in
original units (meV for energies).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import torch

from mtlx import ConfigError, DataError, Dataset, TaskSpec
from mtlx.data import DATA_ENV
from mtlx.errors import did_you_mean
from mtlx.interfaces import task_subset_field
from mtlx.losses import mse_loss
from mtlx.metrics import MAEMeter

from .graphs import NUM_NODE_FEATURES
from .smiles import BOND_TYPES
from .source import package_data_dir
from .store import MoleculeStore, load_or_build
from .targets import STL_BASELINE, TARGET_COLUMNS, TASK_NAMES, metric_scale
from .transforms import append_distance, complete_graph

if TYPE_CHECKING:
    from torch_geometric.data import Batch, Data

__all__ = ["QM9Dataset", "default_cache_dir", "split_indices"]

_SPLITS = ("train", "val", "test")
_MEASURED_BASELINE_FILE = "stl_baseline.json"
_nonneg = [attrs.validators.instance_of(int), attrs.validators.ge(0)]


def default_cache_dir() -> Path:
    """``$MTLX_DATA/qm9`` when MTLX_DATA is set, else ``~/.cache/mtlx/qm9``."""
    base = os.environ.get(DATA_ENV)
    return Path(base) / "qm9" if base else Path.home() / ".cache" / "mtlx" / "qm9"


def split_indices(
    permutation: torch.Tensor, test_size: int, val_size: int, train_size: int | None
) -> dict[str, torch.Tensor]:
    """Test = first ``test_size``, val = next ``val_size``, train = the rest (or its first ``train_size``)."""
    rest = permutation[test_size + val_size :]
    return {
        "train": rest if train_size is None else rest[:train_size],
        "val": permutation[test_size : test_size + val_size],
        "test": permutation[:test_size],
    }


class _GraphSplit(torch.utils.data.Dataset):
    """Molecules of one split; a sample is ``(Data, y)`` with y the 11 standardised targets."""

    def __init__(self, store: MoleculeStore, indices: torch.Tensor, targets: torch.Tensor):
        self.store, self.indices, self.targets = store, indices, targets

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> tuple[Data, torch.Tensor]:
        i = int(self.indices[item])
        store = self.store
        atoms, bonds = store.atoms(i), store.bonds(i)
        pos = store.pos[atoms]
        bond_attr = torch.nn.functional.one_hot(store.bond_type[bonds].long(), len(BOND_TYPES)).float()
        edge_index, edge_attr = complete_graph(len(pos), store.bond_index[:, bonds].long(), bond_attr)
        from torch_geometric.data import Data  # imported on use: torch_geometric takes seconds to import

        graph = Data(
            x=store.x[atoms].float(),
            z=store.z[atoms].long(),
            pos=pos,
            edge_index=edge_index,
            edge_attr=append_distance(edge_index, edge_attr, pos),
        )
        return graph, self.targets[i]


class QM9Dataset(Dataset):
    """QM9: 11 regression targets of 130,831 small molecules (graph input, Complete+Distance edges).

    ``root`` is the cache directory of the built graphs (default
    ``$MTLX_DATA/qm9`` or ``~/.cache/mtlx/qm9``); the molecules themselves
    come from the installed ``qm9pack`` package.
    """

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o dataset.KEY=VALUE``.

        Attributes:
            test_size, val_size: molecules in test / val (the first and next ones after the permutation).
            train_size: train molecules; None (default) takes all the rest (110,831).
            split_seed: seed of the permutation (Nash-MTL shuffles with the run seed: set it alike).
            permutation: a ``torch.save``-d permutation of all molecule positions (e.g. LibMTL's
                ``random_split.t``) used instead of the seeded one.
            standardize: ``train`` (mean/std of the train split) or ``full`` (of all molecules, LibMTL).
            source_dir: folder with ``qm9_part*.csv``; default: the installed qm9pack's ``data`` folder.
            tasks: which of the 11 targets to train (default all); one gives a single-task
                baseline run, e.g. ``-o dataset.tasks=mu``.
        """

        test_size: int = attrs.field(default=10_000, validator=_nonneg)
        val_size: int = attrs.field(default=10_000, validator=_nonneg)
        train_size: int | None = attrs.field(
            default=None,
            validator=attrs.validators.optional([attrs.validators.instance_of(int), attrs.validators.ge(1)]),
        )
        split_seed: int = attrs.field(default=0, validator=_nonneg)
        permutation: str | None = None
        standardize: str = attrs.field(default="train", validator=attrs.validators.in_(("train", "full")))
        source_dir: str | None = None
        tasks: tuple[str, ...] = task_subset_field("qm9", TASK_NAMES)

        def split_options(self) -> dict[str, Any]:
            """The options that decide the molecules and targets (all but ``tasks``), as stored with a baseline."""
            options = attrs.asdict(self)
            options.pop("tasks")
            return options

    recommended = {
        "backbone.name": "mpnn",
        "head.name": "linear",
        "arch.name": "hps",
        "train.batch_size": 120,
        "train.lr": 1e-3,
    }
    presets = {
        # Nash-MTL / FAMO: 300 epochs, batch 120, Adam 1e-3 (they also decay the lr on plateau).
        "paper": {"train.epochs": 300, "train.batch_size": 120, "train.lr": 1e-3},
        # About 15 minutes on 2 shared CPU cores: 4k train molecules and a narrower MPNN.
        "cpu-small": {
            "dataset.train_size": 4000,
            "dataset.val_size": 500,
            "dataset.test_size": 1000,
            "backbone.dim": 32,
            "backbone.edge_hidden": 64,
            "train.epochs": 8,
            "train.batch_size": 64,
            "train.lr": 2e-3,
        },
    }

    def __init__(self, config: Config | None = None, root: str | os.PathLike[str] | None = None):
        self.config = config if config is not None else self.Config()
        source = Path(self.config.source_dir) if self.config.source_dir else package_data_dir()
        self.store = load_or_build(Path(root) if root is not None else default_cache_dir(), source)
        self._indices = split_indices(
            self._permutation(), self.config.test_size, self.config.val_size, self.config.train_size
        )
        if len(self._indices["train"]) == 0:
            raise ConfigError(
                f"dataset qm9: no molecules left for train ({len(self.store)} molecules, "
                f"test_size={self.config.test_size}, val_size={self.config.val_size})"
            )
        raw = self.store.y[:, list(TARGET_COLUMNS)]
        stats_rows = raw[self._indices["train"]] if self.config.standardize == "train" else raw
        self.mean, self.std = stats_rows.mean(0), stats_rows.std(0)
        self._targets = ((raw - self.mean) / self.std).float()

    def _permutation(self) -> torch.Tensor:
        n = len(self.store)
        if self.config.permutation is None:
            return torch.randperm(n, generator=torch.Generator().manual_seed(self.config.split_seed))
        path = Path(self.config.permutation)
        try:
            perm = torch.load(path, weights_only=True)
        except (OSError, RuntimeError, ValueError) as error:
            raise DataError(f"dataset qm9: cannot read the permutation file {path}: {error}") from None
        perm = torch.as_tensor(perm).long().reshape(-1)
        if len(perm) != n or not torch.equal(perm.sort().values, torch.arange(n)):
            raise DataError(f"dataset qm9: {path} is not a permutation of the {n} molecules (0..{n - 1})")
        return perm

    @property
    def tasks(self) -> Mapping[str, TaskSpec]:
        return {
            name: TaskSpec(
                name=name,
                kind="regression",
                out_channels=1,
                dense=False,
                loss=mse_loss,
                meter=functools.partial(MAEMeter, scale=float(self.std[k]) * metric_scale(name)),
            )
            for k, name in enumerate(TASK_NAMES)
            if name in self.config.tasks
        }

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Node-feature width; an input is a PyG ``Batch`` of graphs, not a tensor."""
        return (NUM_NODE_FEATURES,)

    @property
    def splits(self) -> tuple[str, ...]:
        return _SPLITS

    def indices(self, name: str) -> torch.Tensor:
        """Store positions of the molecules of split ``name``."""
        if name not in self._indices:
            raise ConfigError(
                f"dataset qm9 has no split {name!r}{did_you_mean(name, _SPLITS)} (splits: train, val, test)"
            )
        return self._indices[name]

    def split(self, name: str) -> torch.utils.data.Dataset:
        return _GraphSplit(self.store, self.indices(name), self._targets)

    def collate(self, samples: list[Any]) -> tuple[Batch, dict[str, torch.Tensor]]:
        """A PyG ``Batch`` of the graphs and ``{task: [B] standardised target}``."""
        graphs, targets = zip(*samples, strict=True)
        y = torch.stack(targets)
        from torch_geometric.data import Batch

        targets = {name: y[:, k] for k, name in enumerate(TASK_NAMES) if name in self.config.tasks}
        return Batch.from_data_list(list(graphs)), targets

    def baseline(self) -> Mapping[str, Mapping[str, float]] | None:
        """Single-task MAEs measured on these splits, else None.

        The papers' values (Nash-MTL/FAMO) on their splits (10k test, 10k val, the
        rest for training); the stored runs of ``--preset cpu-small`` on its
        splits; no baseline otherwise, since Delta_m against single-task models
        trained on other data is not a meaningful percentage.
        """
        options = self.config.split_options()
        measured = _measured_baseline()
        if measured is not None and measured["dataset"] == options:
            return {name: dict(measured["results"][name]) for name in self.config.tasks}
        if (options["train_size"], options["val_size"], options["test_size"]) == (None, 10_000, 10_000):
            return {name: {"mae": STL_BASELINE[name]} for name in self.config.tasks}
        return None


def _measured_baseline() -> dict[str, Any] | None:
    """The single-task runs shipped with the package (``--preset cpu-small``), or None before they exist."""
    path = resources.files(__package__).joinpath(_MEASURED_BASELINE_FILE)
    return json.loads(path.read_text()) if path.is_file() else None
