"""From one QM9 record to its molecular graph and its 19 targets in PyG units.

Atoms come from the stored elements and geometry. Heavy-atom bonds and
their orders come from the SMILES, whose heavy atoms are listed in the
geometry's order for all but a handful of molecules; when that order does
not fit the geometry (a SMILES bond longer than :data:`MAX_BOND_LENGTH`),
the heavy atoms are matched to the geometry by a search that minimises
the longest bond. Each hydrogen is bonded to its nearest heavy atom.

Node features follow PyG's QM9 layout (11 columns): one-hot H/C/N/O/F,
atomic number, aromatic, sp, sp2, sp3, number of bonded hydrogens. The
QM9 SMILES are Kekulé strings, so "aromatic" is whatever the SMILES marks
(never, in QM9) and the hybridisation is read off the bond orders (a
triple or two double bonds: sp; a double/aromatic bond: sp2; else sp3).
"""

from __future__ import annotations

import math

import attrs
import numpy as np

from mtlx import DataError

from .smiles import SmilesGraph, parse_smiles
from .source import Record
from .targets import ATOM_REFERENCE, HARTREE_TO_EV

__all__ = [
    "ATOMIC_NUMBERS",
    "ELEMENTS",
    "MAX_BOND_LENGTH",
    "NUM_NODE_FEATURES",
    "MoleculeGraph",
    "build_graph",
    "map_heavy_atoms",
    "pyg_targets",
]

#: Element order of the one-hot node features (PyG's ``types``).
ELEMENTS = ("H", "C", "N", "O", "F")
ATOMIC_NUMBERS = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}
NUM_NODE_FEATURES = 11
#: Longest heavy-atom bond (Angstrom) accepted without re-matching the SMILES atoms.
MAX_BOND_LENGTH = 2.0

_SINGLE, _DOUBLE, _TRIPLE, _AROMATIC = range(4)


@attrs.frozen
class MoleculeGraph:
    """Atoms and bonds of one molecule (bonds in both directions, sorted by ``row * n + col``)."""

    z: np.ndarray  # [n] int64
    x: np.ndarray  # [n, 11] int8
    bond_index: np.ndarray  # [2, 2B] int64
    bond_type: np.ndarray  # [2B] int64, index into smiles.BOND_TYPES
    remapped: bool  # the SMILES atom order had to be matched to the geometry


def _longest_bond(mapping: list[int], graph: SmilesGraph, dist: np.ndarray) -> float:
    return max((float(dist[mapping[a], mapping[b]]) for a, b, _ in graph.bonds), default=0.0)


def map_heavy_atoms(graph: SmilesGraph, elements: list[str], pos: np.ndarray) -> tuple[list[int], bool]:
    """``mapping[i]`` = the geometry's heavy atom for SMILES atom ``i``; True when not the identity.

    The identity is kept when elements agree and every bond is shorter than
    :data:`MAX_BOND_LENGTH`; otherwise a branch-and-bound search returns the
    element-preserving assignment with the shortest longest bond.
    """
    n = len(graph.elements)
    if sorted(graph.elements) != sorted(elements):
        raise ValueError(f"SMILES heavy atoms {graph.elements} differ from the geometry's {tuple(elements)}")
    dist = np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=-1)
    identity = list(range(n))
    if tuple(elements) == graph.elements and _longest_bond(identity, graph, dist) <= MAX_BOND_LENGTH:
        return identity, False
    neighbours: list[list[int]] = [[] for _ in range(n)]
    for a, b, _ in graph.bonds:
        neighbours[a].append(b)
        neighbours[b].append(a)
    order = _bfs_order(neighbours)
    assign, used = [-1] * n, [False] * n
    best: list[object] = [math.inf, None]

    def search(k: int, worst: float) -> None:
        if k == n:
            best[0], best[1] = worst, list(assign)
            return
        atom = order[k]
        for candidate in range(n):
            if used[candidate] or elements[candidate] != graph.elements[atom]:
                continue
            bound = max([worst] + [float(dist[candidate, assign[j]]) for j in neighbours[atom] if assign[j] >= 0])
            if bound >= best[0]:
                continue
            assign[atom], used[candidate] = candidate, True
            search(k + 1, bound)
            assign[atom], used[candidate] = -1, False

    search(0, 0.0)
    return list(best[1]), True  # type: ignore[arg-type]


def _bfs_order(neighbours: list[list[int]]) -> list[int]:
    """Atoms in breadth-first order, so each placed atom is constrained by a placed neighbour."""
    order: list[int] = []
    seen = [False] * len(neighbours)
    for start in range(len(neighbours)):
        if seen[start]:
            continue
        seen[start] = True
        queue = [start]
        while queue:
            atom = queue.pop(0)
            order.append(atom)
            for j in neighbours[atom]:
                if not seen[j]:
                    seen[j] = True
                    queue.append(j)
    return order


def build_graph(record: Record) -> MoleculeGraph:
    """The molecular graph of ``record`` (raises DataError naming the molecule if it cannot be built)."""
    elements = record.elements
    unknown = set(elements) - set(ELEMENTS)
    if unknown:
        raise DataError(f"dataset qm9: molecule {record.index} has elements {sorted(unknown)} outside {ELEMENTS}")
    heavy = [k for k, e in enumerate(elements) if e != "H"]
    hydrogens = [k for k, e in enumerate(elements) if e == "H"]
    try:
        smiles = parse_smiles(record.smiles)
        mapping, remapped = map_heavy_atoms(smiles, [elements[k] for k in heavy], record.pos[heavy])
    except ValueError as error:
        raise DataError(f"dataset qm9: molecule {record.index} ({record.smiles}): {error}") from None
    n = len(elements)
    aromatic = np.zeros(n, dtype=bool)
    for i, flag in enumerate(smiles.aromatic):
        aromatic[heavy[mapping[i]]] = flag
    edges = [(heavy[mapping[a]], heavy[mapping[b]], t) for a, b, t in smiles.bonds]
    if hydrogens and heavy:
        d = np.linalg.norm(record.pos[hydrogens][:, None, :] - record.pos[heavy][None, :, :], axis=-1)
        edges += [(h, heavy[j], _SINGLE) for h, j in zip(hydrogens, d.argmin(1).tolist(), strict=True)]
    rows = np.array([e[0] for e in edges] + [e[1] for e in edges], dtype=np.int64)
    cols = np.array([e[1] for e in edges] + [e[0] for e in edges], dtype=np.int64)
    types = np.array([e[2] for e in edges] * 2, dtype=np.int64)
    perm = np.argsort(rows * n + cols, kind="stable")
    bond_index, bond_type = np.stack([rows[perm], cols[perm]]), types[perm]
    z = np.array([ATOMIC_NUMBERS[e] for e in elements], dtype=np.int64)
    return MoleculeGraph(
        z, _node_features(elements, z, aromatic, bond_index, bond_type), bond_index, bond_type, remapped
    )


def _node_features(
    elements: tuple[str, ...], z: np.ndarray, aromatic: np.ndarray, bond_index: np.ndarray, bond_type: np.ndarray
) -> np.ndarray:
    n = len(elements)
    x = np.zeros((n, NUM_NODE_FEATURES), dtype=np.int8)
    x[np.arange(n), [ELEMENTS.index(e) for e in elements]] = 1
    x[:, 5] = z
    x[:, 6] = aromatic
    row, col = bond_index
    counts = np.zeros((n, 4), dtype=np.int64)
    np.add.at(counts, (row, bond_type), 1)
    heavy = z != 1
    sp = heavy & ((counts[:, _TRIPLE] > 0) | (counts[:, _DOUBLE] >= 2))
    sp2 = heavy & ~sp & ((counts[:, _DOUBLE] > 0) | (counts[:, _AROMATIC] > 0))
    x[:, 7], x[:, 8], x[:, 9] = sp, sp2, heavy & ~sp & ~sp2
    np.add.at(x[:, 10], row, (z[col] == 1).astype(np.int8))
    return x


def pyg_targets(record: Record) -> np.ndarray:
    """The 19 targets in PyG's order and units (eV for energies; atomization energies vs free atoms)."""
    p = record.properties
    reference = np.sum([ATOM_REFERENCE[e] for e in record.elements], axis=0)
    atomization = (np.array([p["u0"], p["u"], p["h"], p["g"]]) - reference) * HARTREE_TO_EV
    ev = HARTREE_TO_EV
    return np.array(
        [
            p["mu"], p["alpha"], p["homo"] * ev, p["lumo"] * ev, p["gap"] * ev, p["r2"], p["zpve"] * ev,
            p["u0"] * ev, p["u"] * ev, p["h"] * ev, p["g"] * ev, p["cv"], *atomization, p["a"], p["b"], p["c"],
        ],
        dtype=np.float64,
    )  # fmt: skip
