"""A minimal SMILES reader: heavy atoms in order and the bonds between them.

QM9 ships no bond lists, but its GDB SMILES list the heavy atoms in the
same order as the XYZ geometry, so parsing the SMILES gives the bonds and
their orders without RDKit. Only what the QM9 strings use is supported:
organic-subset and bracket atoms, branches, ring closures (digits and
``%nn``) and the bond symbols ``- = # :`` (``/ \\`` are read as single).
"""

from __future__ import annotations

import re

import attrs

__all__ = ["BOND_TYPES", "SmilesError", "SmilesGraph", "parse_smiles"]

#: Bond orders in PyG's QM9 one-hot order (single, double, triple, aromatic).
BOND_TYPES = ("single", "double", "triple", "aromatic")
_BOND_SYMBOLS = {"-": 0, "/": 0, "\\": 0, "=": 1, "#": 2, ":": 3}
_TOKEN = re.compile(r"\[[^\]]+\]|Cl|Br|[BCNOPSFI]|[bcnops]|%\d\d|\d|[-=#:/\\()]|\.")
_BRACKET_ELEMENT = re.compile(r"^\[\d*([A-Z][a-z]?|[a-z][a-z]?)")


class SmilesError(ValueError):
    """A SMILES string uses syntax this reader does not support or is malformed."""


@attrs.frozen
class SmilesGraph:
    """Heavy atoms (element symbols, aromatic flags) and bonds ``(i, j, type index)``."""

    elements: tuple[str, ...]
    aromatic: tuple[bool, ...]
    bonds: tuple[tuple[int, int, int], ...]


def _element(token: str) -> tuple[str, bool]:
    """Element symbol and aromatic flag of an atom token."""
    symbol = token
    if token.startswith("["):
        match = _BRACKET_ELEMENT.match(token)
        if match is None:
            raise SmilesError(f"cannot read the element of bracket atom {token}")
        symbol = match.group(1)
    aromatic = symbol[0].islower()
    return symbol.capitalize(), aromatic


def parse_smiles(smiles: str) -> SmilesGraph:
    """Parse ``smiles`` into its heavy-atom graph (implicit and bracket hydrogens are not atoms)."""
    tokens = _TOKEN.findall(smiles)
    if "".join(tokens) != smiles:
        raise SmilesError(f"unsupported characters in SMILES {smiles!r}")
    elements: list[str] = []
    aromatic: list[bool] = []
    bonds: list[tuple[int, int, int]] = []
    branch_stack: list[int] = []
    rings: dict[str, tuple[int, int | None]] = {}
    previous: int | None = None
    pending: int | None = None  # explicit bond symbol waiting for its second atom

    def bond_type(i: int, j: int, explicit: int | None) -> int:
        if explicit is not None:
            return explicit
        return 3 if aromatic[i] and aromatic[j] else 0

    for token in tokens:
        if token in _BOND_SYMBOLS:
            pending = _BOND_SYMBOLS[token]
        elif token == "(":
            if previous is None:
                raise SmilesError(f"branch before any atom in SMILES {smiles!r}")
            branch_stack.append(previous)
        elif token == ")":
            if not branch_stack:
                raise SmilesError(f"unbalanced ')' in SMILES {smiles!r}")
            previous = branch_stack.pop()
        elif token == ".":
            previous, pending = None, None
        elif token[0].isdigit() or token[0] == "%":
            label = token.lstrip("%")
            if previous is None:
                raise SmilesError(f"ring closure before any atom in SMILES {smiles!r}")
            if label in rings:
                other, explicit = rings.pop(label)
                explicit = pending if pending is not None else explicit
                bonds.append((other, previous, bond_type(other, previous, explicit)))
            else:
                rings[label] = (previous, pending)
            pending = None
        else:
            symbol, is_aromatic = _element(token)
            index = len(elements)
            elements.append(symbol)
            aromatic.append(is_aromatic)
            if previous is not None:
                bonds.append((previous, index, bond_type(previous, index, pending)))
            previous, pending = index, None
    if rings or branch_stack:
        raise SmilesError(f"unclosed ring or branch in SMILES {smiles!r}")
    return SmilesGraph(tuple(elements), tuple(aromatic), tuple(bonds))
