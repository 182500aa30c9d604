"""The QM9 regression targets: the 11 MTL tasks among PyG's 19 columns, and their reported units.

The 11 tasks are those of Nash-MTL, FAMO and LibMTL: PyG columns
``[0, 1, 2, 3, 5, 6, 12, 13, 14, 15, 11]`` (the gap is dropped; the four
energies are the *atomization* energies). Targets are stored in PyG units
(D, a0^3, eV, a0^2, cal/mol K, GHz); metrics report meV for the seven
energy-like tasks, as the papers do.
"""

from __future__ import annotations

__all__ = [
    "ATOM_REFERENCE",
    "HARTREE_TO_EV",
    "MEV_TASKS",
    "STL_BASELINE",
    "TARGET_COLUMNS",
    "TASK_NAMES",
    "metric_scale",
]

#: PyG's Hartree -> eV factor (torch_geometric.datasets.qm9.HAR2EV).
HARTREE_TO_EV = 27.211386246

#: Columns of the 11 tasks among the 19 targets of ``torch_geometric.datasets.QM9``, in task order.
TARGET_COLUMNS = (0, 1, 2, 3, 5, 6, 12, 13, 14, 15, 11)

#: Task names in order; u0/u/h/g are atomization energies.
TASK_NAMES = ("mu", "alpha", "homo", "lumo", "r2", "zpve", "u0", "u", "h", "g", "cv")

#: Tasks reported in meV (stored in eV): LibMTL's columns {2, 3, 6, 12, 13, 14, 15}.
MEV_TASKS = frozenset({"homo", "lumo", "zpve", "u0", "u", "h", "g"})

#: Free-atom energies (Hartree) at B3LYP/6-31G(2df,p) from the QM9 paper's atomref table
#: (Ramakrishnan et al. 2014, figshare 1057643): U0, U(298 K), H(298 K), G(298 K).
ATOM_REFERENCE = {
    "H": (-0.500273, -0.498857, -0.497912, -0.510927),
    "C": (-37.846772, -37.845355, -37.844411, -37.861317),
    "N": (-54.583861, -54.582445, -54.581501, -54.598897),
    "O": (-75.064579, -75.063163, -75.062219, -75.079532),
    "F": (-99.718730, -99.717314, -99.716370, -99.733544),
}

#: Single-task MAE of the Nash-MTL/FAMO papers (lower is better; meV for MEV_TASKS).
STL_BASELINE = {
    "mu": 0.0671, "alpha": 0.1814, "homo": 60.576, "lumo": 53.915, "r2": 0.5027, "zpve": 4.539,
    "u0": 58.838, "u": 64.244, "h": 63.852, "g": 66.223, "cv": 0.07212,
}  # fmt: skip


def metric_scale(task: str) -> float:
    """Factor from the stored unit (eV for energies) to the reported unit (meV)."""
    return 1000.0 if task in MEV_TASKS else 1.0
