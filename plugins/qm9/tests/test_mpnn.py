"""The MPNN backbone: shapes, per-graph pooling, and equality with the reference NNConv formulation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch_geometric.nn import NNConv

from mtlx_qm9 import MPNN, QM9Dataset


def _batch(small_source, tmp_path, count=3):
    dataset = QM9Dataset(QM9Dataset.Config(source_dir=str(small_source), test_size=5, val_size=5), tmp_path)
    split = dataset.split("train")
    return dataset.collate([split[i] for i in range(count)])[0], [split[i][0] for i in range(count)]


def _reference_forward(model: MPNN, batch) -> torch.Tensor:
    """Nash-MTL's Net.forward: NNConv runs its filter MLP in every round."""
    conv = NNConv(model.config.dim, model.config.dim, torch.nn.Identity(), aggr="mean")
    # share the model's parameters (NNConv's constructor would re-initialise a module passed to it)
    conv.nn, conv.lin, conv.bias = model.edge_net, model.conv.lin, model.conv.bias
    out = F.relu(model.lin0(batch.x))
    h = out.unsqueeze(0)
    for _ in range(3):
        m = F.relu(conv(out, batch.edge_index, batch.edge_attr))
        out, h = model.gru(m.unsqueeze(0), h)
        out = out.squeeze(0)
    return F.relu(model.lin1(model.set2set(out, batch.batch)))


def test_output_is_one_embedding_per_graph(small_source, tmp_path):
    torch.manual_seed(0)
    model = MPNN(MPNN.Config(dim=16), (11,))
    assert model.out_shape == (16,)
    batch, graphs = _batch(small_source, tmp_path)
    z = model(batch)
    assert z.shape == (3, 16)
    single = torch.stack([model(batch.__class__.from_data_list([g]))[0] for g in graphs])
    torch.testing.assert_close(z, single, atol=1e-5, rtol=1e-5)


def test_filters_computed_once_equal_the_reference_in_value_and_gradient(small_source, tmp_path):
    torch.manual_seed(1)
    model = MPNN(MPNN.Config(dim=8, edge_hidden=16), (11,))
    batch, _ = _batch(small_source, tmp_path, count=4)
    weights = torch.randn(4, 8)
    ours = model(batch)
    (ours * weights).sum().backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    reference = _reference_forward(model, batch)
    (reference * weights).sum().backward()
    torch.testing.assert_close(ours, reference)
    for name, p in model.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, msg=name)
