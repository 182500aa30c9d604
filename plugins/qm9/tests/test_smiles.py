"""The SMILES reader against hand-derived bond lists."""

from __future__ import annotations

import pytest

from mtlx_qm9.smiles import SmilesError, parse_smiles

S, D, T, A = range(4)


def test_chain_branches_and_bond_orders():
    graph = parse_smiles("CC(C)N=COCC#C")
    assert graph.elements == ("C", "C", "C", "N", "C", "O", "C", "C", "C")
    assert graph.bonds == ((0, 1, S), (1, 2, S), (1, 3, S), (3, 4, D), (4, 5, S), (5, 6, S), (6, 7, S), (7, 8, T))


def test_ring_closures_keep_their_bond_symbol():
    graph = parse_smiles("C1=CC=CC=C1")
    assert graph.bonds == ((0, 1, D), (1, 2, S), (2, 3, D), (3, 4, S), (4, 5, D), (0, 5, S))
    graph = parse_smiles("C=1CC1")  # the order written at the opening digit applies to the closure
    assert graph.bonds == ((0, 1, S), (1, 2, S), (0, 2, D))
    assert parse_smiles("C%12CC%12").bonds == ((0, 1, S), (1, 2, S), (0, 2, S))


def test_bracket_atoms_charges_and_hydrogens_are_one_atom():
    graph = parse_smiles("[NH3+]CC([O-])=O")
    assert graph.elements == ("N", "C", "C", "O", "O")
    assert graph.bonds == ((0, 1, S), (1, 2, S), (2, 3, S), (2, 4, D))
    assert parse_smiles("[C-]#[N+]").bonds == ((0, 1, T),)


def test_aromatic_atoms_get_aromatic_bonds():
    graph = parse_smiles("c1ccncc1")
    assert graph.elements == ("C", "C", "C", "N", "C", "C")
    assert all(graph.aromatic)
    assert {t for _, _, t in graph.bonds} == {A}
    assert len(graph.bonds) == 6


@pytest.mark.parametrize("smiles", ["C(C", "CC)", "C1CC", "(C)", "C$C"])
def test_malformed_smiles_raise(smiles):
    with pytest.raises(SmilesError):
        parse_smiles(smiles)
