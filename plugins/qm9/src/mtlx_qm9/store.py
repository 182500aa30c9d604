"""All molecules packed into flat tensors, cached on disk after the first build.

Building the 130,831 graphs from the CSVs takes about a minute, so the
result is saved once (atomically) under the cache directory, keyed by the
source files' names, sizes and modification times and by
:data:`FORMAT_VERSION`; a changed source or format rebuilds, nothing is
ever downloaded.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import warnings
from collections.abc import Iterable
from pathlib import Path

import attrs
import numpy as np
import torch

from mtlx import DataError

from .graphs import build_graph, pyg_targets
from .source import Record, read_records, source_files

__all__ = ["FORMAT_VERSION", "MoleculeStore", "build_store", "cache_path", "load_or_build"]

#: Bump when the packed layout or the graph construction changes.
FORMAT_VERSION = 1


@attrs.frozen(eq=False)
class MoleculeStore:
    """Packed molecules: per-atom and per-bond tensors with offsets, plus the 19 PyG targets.

    Attributes:
        z, x, pos: atoms of all molecules (``atom_ptr`` delimits molecule i).
        bond_index, bond_type: local (per-molecule) bond endpoints and types (``bond_ptr``).
        y: ``[M, 19]`` float64 targets in PyG units.
        index: QM9 molecule numbers (``dsgdb9nsd_<index>``).
        remapped: how many molecules needed their SMILES atoms matched to the geometry.
    """

    z: torch.Tensor
    x: torch.Tensor
    pos: torch.Tensor
    atom_ptr: torch.Tensor
    bond_index: torch.Tensor
    bond_type: torch.Tensor
    bond_ptr: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor
    remapped: int

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def atoms(self, i: int) -> slice:
        return slice(int(self.atom_ptr[i]), int(self.atom_ptr[i + 1]))

    def bonds(self, i: int) -> slice:
        return slice(int(self.bond_ptr[i]), int(self.bond_ptr[i + 1]))

    def to_dict(self) -> dict[str, object]:
        return {"format": FORMAT_VERSION, **attrs.asdict(self, recurse=False)}


def build_store(records: Iterable[Record]) -> MoleculeStore:
    """Build the graphs of ``records`` and pack them, sorted by QM9 index (PyG's order)."""
    graphs, targets, pos, index = [], [], [], []
    for record in sorted(records, key=lambda r: r.index):
        graphs.append(build_graph(record))
        targets.append(pyg_targets(record))
        pos.append(record.pos)
        index.append(record.index)
    if not graphs:
        raise DataError("dataset qm9: the source files hold no molecules")
    atom_counts = [len(g.z) for g in graphs]
    bond_counts = [g.bond_type.shape[0] for g in graphs]
    return MoleculeStore(
        z=torch.from_numpy(np.concatenate([g.z for g in graphs]).astype(np.int8)),
        x=torch.from_numpy(np.concatenate([g.x for g in graphs])),
        pos=torch.from_numpy(np.concatenate(pos).astype(np.float32)),
        atom_ptr=torch.from_numpy(np.concatenate([[0], np.cumsum(atom_counts)]).astype(np.int64)),
        bond_index=torch.from_numpy(np.concatenate([g.bond_index for g in graphs], axis=1).astype(np.int8)),
        bond_type=torch.from_numpy(np.concatenate([g.bond_type for g in graphs]).astype(np.int8)),
        bond_ptr=torch.from_numpy(np.concatenate([[0], np.cumsum(bond_counts)]).astype(np.int64)),
        y=torch.from_numpy(np.stack(targets)),
        index=torch.tensor(index, dtype=torch.int64),
        remapped=sum(g.remapped for g in graphs),
    )


def cache_path(cache_dir: Path, files: list[Path]) -> Path:
    """Cache file for ``files``: changes whenever a file's name, size or mtime or the format changes."""
    key = hashlib.sha1(f"format={FORMAT_VERSION}".encode())
    for path in files:
        stat = path.stat()
        key.update(f"|{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return cache_dir / f"qm9-graphs-v{FORMAT_VERSION}-{key.hexdigest()[:12]}.pt"


def load_or_build(cache_dir: Path, source_dir: Path) -> MoleculeStore:
    """The store of ``source_dir``'s molecules, from ``cache_dir`` if built before."""
    files = source_files(source_dir)
    path = cache_path(cache_dir, files)
    if path.is_file():
        try:
            state = torch.load(path, weights_only=True)
            if state.pop("format") == FORMAT_VERSION:
                return MoleculeStore(**state)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError, AttributeError, KeyError, TypeError) as error:
            # a truncated or foreign file: rebuild it
            warnings.warn(
                f"dataset qm9: rebuilding the unreadable cache {path} ({type(error).__name__}: {error})", stacklevel=2
            )
    store = build_store(read_records(files))
    _save_atomically(store, path)
    return store


def _save_atomically(store: MoleculeStore, path: Path) -> None:
    """Write to a temporary file beside ``path`` (created with the user's umask), then rename."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = tmp.open("wb")
    except OSError as error:
        raise DataError(
            f"dataset qm9: cannot write the graph cache in {path.parent} ({error}); "
            "choose a writable folder with --data-root or MTLX_DATA"
        ) from None
    try:
        with handle:
            torch.save(store.to_dict(), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
