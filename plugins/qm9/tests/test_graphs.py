"""Graphs and targets built from real qm9pack rows: atoms, bonds, features, units."""

from __future__ import annotations

import numpy as np
import pytest

from mtlx_qm9.graphs import MAX_BOND_LENGTH, build_graph, map_heavy_atoms, pyg_targets
from mtlx_qm9.smiles import parse_smiles
from mtlx_qm9.source import read_records, source_files
from mtlx_qm9.targets import ATOM_REFERENCE, HARTREE_TO_EV, TARGET_COLUMNS, TASK_NAMES

#: The 19 target columns of ``torch_geometric.datasets.QM9`` in order (from PyG's documentation).
PYG_COLUMNS = (
    "mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "u0", "u", "h", "g", "cv",
    "u0_atom", "u_atom", "h_atom", "g_atom", "a", "b", "c",
)  # fmt: skip


@pytest.fixture(scope="module")
def records(small_source):
    return {r.index: r for r in read_records(source_files(small_source))}


def test_methane_graph_and_features(records):
    methane = records[1]
    assert methane.smiles == "C" and methane.elements == ("C", "H", "H", "H", "H")
    graph = build_graph(methane)
    assert graph.z.tolist() == [6, 1, 1, 1, 1]
    # 4 C-H bonds in both directions, sorted by row * n + col
    assert graph.bond_index.tolist() == [[0, 0, 0, 0, 1, 2, 3, 4], [1, 2, 3, 4, 0, 0, 0, 0]]
    assert graph.bond_type.tolist() == [0] * 8
    # one-hot H C N O F | Z | aromatic | sp sp2 sp3 | number of H
    assert graph.x[0].tolist() == [0, 1, 0, 0, 0, 6, 0, 0, 0, 1, 4]
    assert graph.x[1].tolist() == [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]


def test_hybridisation_follows_bond_orders(records):
    """Hydrogen cyanide: sp carbon and nitrogen; formaldehyde: sp2 carbon with two hydrogens."""
    hcn = next(r for r in records.values() if r.smiles == "C#N")
    graph = build_graph(hcn)
    heavy = [i for i, z in enumerate(graph.z) if z != 1]
    for i in heavy:
        assert graph.x[i, 7:10].tolist() == [1, 0, 0]
    formaldehyde = next(r for r in records.values() if r.smiles == "C=O")
    graph = build_graph(formaldehyde)
    carbon = int(np.flatnonzero(graph.z == 6)[0])
    assert graph.x[carbon, 7:11].tolist() == [0, 1, 0, 2]


def test_every_bond_is_short_after_matching_smiles_to_geometry(records):
    """Numbers 23 (C#CC#C) and 24 list their heavy atoms in another order than the geometry."""
    for index, record in records.items():
        graph = build_graph(record)
        row, col = graph.bond_index
        lengths = np.linalg.norm(record.pos[row] - record.pos[col], axis=-1)
        assert lengths.max() < MAX_BOND_LENGTH, index
        assert graph.remapped == (index in (23, 24)), index


def test_search_recovers_a_shuffled_atom_order():
    smiles = parse_smiles("CC#N")
    pos = np.array([[0.0, 0, 0], [1.46, 0, 0], [2.62, 0, 0]])  # C-C 1.46, C#N 1.16
    elements = ["N", "C", "C"]  # geometry order N, C(sp), C(methyl) reversed
    mapping, remapped = map_heavy_atoms(smiles, elements, pos[::-1].copy())
    assert remapped and mapping == [2, 1, 0]
    with pytest.raises(ValueError, match="differ from the geometry"):
        map_heavy_atoms(smiles, ["C", "C", "O"], pos)


def test_targets_are_in_pyg_units(records):
    """Energies Hartree -> eV; atomization energies subtract the free-atom references (hand-computed)."""
    methane = records[1]
    y = pyg_targets(methane)
    assert len(y) == len(PYG_COLUMNS) == 19
    p = methane.properties
    assert y[PYG_COLUMNS.index("mu")] == p["mu"]
    assert y[PYG_COLUMNS.index("homo")] == pytest.approx(-0.3877 * 27.211386246)
    assert y[PYG_COLUMNS.index("zpve")] == pytest.approx(0.044749 * HARTREE_TO_EV)
    u0_atom = (-40.47893 - (-37.846772 + 4 * -0.500273)) * 27.211386246
    assert y[PYG_COLUMNS.index("u0_atom")] == pytest.approx(u0_atom)
    assert u0_atom == pytest.approx(-17.1722, abs=1e-4)  # PyG stores -17.1724 (converted from kcal/mol)
    g_atom = (p["g"] - sum(ATOM_REFERENCE[e][3] for e in methane.elements)) * HARTREE_TO_EV
    assert y[PYG_COLUMNS.index("g_atom")] == pytest.approx(g_atom)
    assert y[PYG_COLUMNS.index("cv")] == 6.469 and y[PYG_COLUMNS.index("a")] == 157.7118


def test_the_tasks_are_the_pyg_columns_of_their_names_with_atomization_energies():
    assert tuple(PYG_COLUMNS[c].removesuffix("_atom") for c in TARGET_COLUMNS) == TASK_NAMES
