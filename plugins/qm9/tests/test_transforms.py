"""Complete + Distance against brute force and PyG's own Distance transform."""

from __future__ import annotations

import torch
import torch_geometric.transforms as T
from torch_geometric.data import Data
from torch_geometric.utils import remove_self_loops

from mtlx_qm9.transforms import append_distance, complete_graph


def _chain(n: int = 4) -> Data:
    """A symmetric chain 0-1-2-3 with one-hot bond types (single, double, single)."""
    rows = [0, 1, 1, 2, 2, 3]
    cols = [1, 0, 2, 1, 3, 2]
    types = torch.tensor([0, 0, 1, 1, 0, 0])
    return Data(
        edge_index=torch.tensor([rows, cols]),
        edge_attr=torch.nn.functional.one_hot(types, 4).float(),
        pos=torch.randn(n, 3, generator=torch.Generator().manual_seed(0)),
        num_nodes=n,
    )


def test_complete_graph_has_all_ordered_pairs_in_row_major_order():
    data = _chain()
    edge_index, edge_attr = complete_graph(4, data.edge_index, data.edge_attr)
    assert edge_index.shape == (2, 4 * 3) and edge_attr.shape == (12, 4)
    expected = [(i, j) for i in range(4) for j in range(4) if i != j]
    assert list(zip(*edge_index.tolist(), strict=True)) == expected
    bonds = {(r, c): a for r, c, a in zip(*data.edge_index.tolist(), data.edge_attr, strict=True)}
    for (i, j), attr in zip(expected, edge_attr, strict=True):
        torch.testing.assert_close(attr, bonds.get((i, j), torch.zeros(4)))


def test_complete_graph_matches_nash_mtl_construction():
    """Nash-MTL: scatter attributes onto the n*n grid, then ``remove_self_loops``."""
    data = _chain()
    n = 4
    grid = torch.stack([torch.arange(n).repeat_interleave(n), torch.arange(n).repeat(n)])
    dense = torch.zeros(n * n, 4)
    dense[data.edge_index[0] * n + data.edge_index[1]] = data.edge_attr
    reference_index, reference_attr = remove_self_loops(grid, dense)
    edge_index, edge_attr = complete_graph(n, data.edge_index, data.edge_attr)
    torch.testing.assert_close(edge_index, reference_index)
    torch.testing.assert_close(edge_attr, reference_attr)


def test_distance_column_equals_pyg_distance_transform():
    data = _chain()
    edge_index, edge_attr = complete_graph(4, data.edge_index, data.edge_attr)
    ours = append_distance(edge_index, edge_attr, data.pos)
    reference = T.Distance(norm=False)(Data(edge_index=edge_index, edge_attr=edge_attr, pos=data.pos)).edge_attr
    assert ours.shape == (12, 5)
    torch.testing.assert_close(ours, reference)
