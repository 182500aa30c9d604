"""Reading the QM9 molecules shipped in the ``qm9pack`` wheel (no download, no import).

``import qm9pack`` fails on current Python (it needs ``pkg_resources``), so
the data folder is located with :func:`importlib.util.find_spec` and its
CSVs are read directly: ``qm9_part{1,2,3}.csv`` with one molecule a row,
130,831 molecules in all (the 3,054 unconverged ones are already left out).
"""

from __future__ import annotations

import csv
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import attrs
import numpy as np

from mtlx import DataError

__all__ = [
    "CSV_FILES",
    "PACKAGE",
    "PACKAGE_VERSION",
    "Record",
    "package_data_dir",
    "read_records",
    "source_files",
]

PACKAGE = "qm9pack"
#: The release the plugin was built and checked against.
PACKAGE_VERSION = "1.0.3"
CSV_FILES = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")
_INSTALL_HINT = f"install it with `pip install {PACKAGE}=={PACKAGE_VERSION}` (a 104 MB wheel holding the molecules)"

#: CSV column -> raw property name (units as stored: Hartree for energies).
_PROPERTIES = {
    "mu": "Dipole_debye",
    "alpha": "Polarizability_bohr3",
    "homo": "HOMO_au",
    "lumo": "LUMO_au",
    "gap": "HOMO_LUMO_gap_au",
    "r2": "R2_bohr2",
    "zpve": "ZPVE_au",
    "u0": "InternalEnergy_0K_au",
    "u": "InternalEnergy_298K_au",
    "h": "Enthalphy_298K_au",
    "g": "GibbsFreeEnergy_298K_au",
    "cv": "Heatcapacity_Cv_cal_mol_K",
    "a": "RotA_GHz",
    "b": "RotB_GHz",
    "c": "RotC_GHz",
}


@attrs.frozen
class Record:
    """One molecule as stored: QM9 index, SMILES, elements, positions (Angstrom), raw properties."""

    index: int
    smiles: str
    elements: tuple[str, ...]
    pos: np.ndarray
    properties: dict[str, float]


def package_data_dir() -> Path:
    """The ``data`` folder of the installed qm9pack wheel."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"dataset qm9 reads its molecules from the {PACKAGE!r} package, which is not installed: {_INSTALL_HINT}"
        )
    return Path(spec.submodule_search_locations[0]) / "data"


def source_files(directory: Path) -> list[Path]:
    """The CSV files of ``directory`` that exist (at least ``qm9_part1.csv``)."""
    files = [directory / name for name in CSV_FILES if (directory / name).is_file()]
    if not files or files[0].name != CSV_FILES[0]:
        raise DataError(
            f"dataset qm9: {directory / CSV_FILES[0]} is missing; the folder must hold {', '.join(CSV_FILES)} "
            f"as shipped by {PACKAGE} ({_INSTALL_HINT})"
        )
    return files


def _numbers(text: str) -> list[float]:
    """Parse ``"[[0.,-7.E-6],[...]]"`` (not valid JSON) by dropping brackets and splitting on commas."""
    return [float(v) for v in text.replace("[", "").replace("]", "").split(",") if v.strip()]


def _record(row: dict[str, str], where: str) -> Record:
    try:
        elements = tuple(e.strip().strip("'\"") for e in row["Elements"].strip("[]").split(","))
        pos = np.asarray(_numbers(row["XYZ_Ang"]), dtype=np.float64).reshape(len(elements), 3)
        properties = {name: float(row[column]) for name, column in _PROPERTIES.items()}
        return Record(int(row["Index"]), row["SMILES"], elements, pos, properties)
    except (KeyError, ValueError) as error:
        raise DataError(f"dataset qm9: {where}: cannot read the molecule ({type(error).__name__}: {error})") from None


def read_records(files: list[Path]) -> Iterator[Record]:
    """Every molecule of ``files`` in file order."""
    for path in files:
        with path.open(newline="") as handle:
            for line, row in enumerate(csv.DictReader(handle), start=2):
                yield _record(row, f"{path}:{line}")
