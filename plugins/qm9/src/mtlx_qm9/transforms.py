"""Nash-MTL's QM9 edge construction: ``Complete()`` then ``T.Distance(norm=False)``.

Every ordered pair of distinct atoms becomes an edge (row-major order, as
Nash-MTL's ``Complete`` produces after ``remove_self_loops``); the 4 bond
one-hot columns are copied where a bond exists and zero elsewhere, and the
Euclidean distance (Angstrom) is appended as a 5th column.
"""

from __future__ import annotations

import torch

__all__ = ["append_distance", "complete_graph"]


def complete_graph(
    num_nodes: int, edge_index: torch.Tensor, edge_attr: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """All ``n(n-1)`` directed edges without self loops, with ``edge_attr`` scattered onto them."""
    nodes = torch.arange(num_nodes)
    row = nodes.repeat_interleave(num_nodes)
    col = nodes.repeat(num_nodes)
    dense = edge_attr.new_zeros((num_nodes * num_nodes, *edge_attr.shape[1:]))
    dense[edge_index[0] * num_nodes + edge_index[1]] = edge_attr
    keep = row != col
    return torch.stack([row[keep], col[keep]]), dense[keep]


def append_distance(edge_index: torch.Tensor, edge_attr: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """``edge_attr`` with the unnormalised edge length ``|pos[col] - pos[row]|`` as a last column."""
    row, col = edge_index
    distance = torch.linalg.vector_norm(pos[col] - pos[row], dim=-1, keepdim=True)
    return torch.cat([edge_attr, distance.to(edge_attr.dtype)], dim=-1)
