"""Shared fixtures: the naive Rep-MTL formulas (materialised C×C maps, loops) and a test loss weighting.

The naive versions follow the paper's equations literally so that the Gram
identities of ``mtlx_repmtl.losses`` are checked against an independent
computation.
"""

from __future__ import annotations

import types
from collections.abc import Sequence

import attrs
import pytest
import torch
from torch import nn

import mtlx
from mtlx.registry import Registries
from mtlx_repmtl import RepMTL, RepMTLConfig


def _unit_rms(saliencies: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """All saliencies divided by their joint root-mean-square (a constant): where eps applies."""
    squares = sum(float((s.detach() ** 2).sum()) for s in saliencies)
    count = sum(s.numel() for s in saliencies)
    rms = (squares / count) ** 0.5 or 1.0
    return [s / rms for s in saliencies]


def naive_tsr(saliencies: Sequence[torch.Tensor], eps: float = 1e-8) -> torch.Tensor:
    """Eqs. 4–6 sample by sample and task by task (positions as a vector)."""
    saliencies = _unit_rms(saliencies)
    num_tasks, batch = len(saliencies), saliencies[0].shape[0]
    total = saliencies[0].new_zeros(())
    positions = 1
    for b in range(batch):
        maps = [s[b].reshape(s.shape[1], -1) for s in saliencies]  # C×N per task
        positions = maps[0].shape[1]
        magnitudes = [maps[t].mean(dim=0).abs() for t in range(num_tasks)]  # |Ŝ_t| over positions
        denominator = sum(magnitudes) + eps
        for t in range(num_tasks):
            p = magnitudes[t] / denominator
            total = total - (p * torch.log(p + eps)).sum()
    return total / (batch * positions)


def _unit(matrix: torch.Tensor, eps: float) -> torch.Tensor:
    vector = matrix.reshape(-1)
    return vector / torch.clamp_min(vector.norm(), eps)


def naive_csa(
    saliencies: Sequence[torch.Tensor], temperature: float = 0.1, eps: float = 1e-8, denominator: str = "paper",
    task_reduction: str = "mean",
) -> torch.Tensor:
    """Eqs. 7–9 with every C×C map materialised, averaged over b and averaged (``mean``) or summed over t."""
    saliencies = _unit_rms(saliencies)
    num_tasks, batch = len(saliencies), saliencies[0].shape[0]
    if batch < 2:
        return saliencies[0].new_zeros(())
    per_sample = [[s[b].reshape(s.shape[1], -1) for b in range(batch)] for s in saliencies]  # [t][b] C×N
    anchor_maps = []
    for b in range(batch):
        a = torch.stack([per_sample[t][b].mean(dim=1) for t in range(num_tasks)], dim=1)  # C×T
        anchor_maps.append(_unit(a @ a.T, eps))
    total = saliencies[0].new_zeros(())
    for b in range(batch):
        negatives = sum(
            torch.exp(torch.dot(anchor_maps[b], anchor_maps[k]) / temperature) for k in range(batch) if k != b
        )
        for t in range(num_tasks):
            s = per_sample[t][b]
            positive = torch.dot(anchor_maps[b], _unit(s @ s.T, eps)) / temperature
            denom = negatives + torch.exp(positive) if denominator == "infonce" else negatives
            total = total - (positive - torch.log(denom))
    return total / (batch * num_tasks if task_reduction == "mean" else batch)


@pytest.fixture
def naive() -> types.SimpleNamespace:
    return types.SimpleNamespace(tsr=naive_tsr, csa=naive_csa)


class ScaledWeighting(mtlx.LossWeighting):
    """Test base: learnable log-weights, non-uniform from the start; records the hooks it receives."""

    @attrs.frozen(kw_only=True)
    class Config:
        log_weights: tuple[float, ...] = (0.4, -0.3, 0.2, 0.1, -0.2)

    def __init__(self, config: Config, *, tasks: Sequence[str]):
        super().__init__(config, tasks=tasks)
        self.log_w = nn.Parameter(torch.tensor(config.log_weights[: len(self.tasks)]))
        self.calls: list[str] = []

    def combine(self, losses: torch.Tensor, step: mtlx.StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        weights = self.log_w.exp()
        return (weights * losses).sum(), weights

    def extra_parameters(self) -> list[nn.Parameter]:
        return [self.log_w]

    def after_step(self, step: mtlx.StepContext) -> None:
        self.calls.append("after_step")

    def on_epoch_end(self, epoch: int, mean_losses: dict[str, float]) -> None:
        self.calls.append(f"epoch_end:{epoch}")


@mtlx.hookimpl
def _register_scaled(registry) -> None:
    registry.strategies.register("scaled-test", ScaledWeighting)


#: the installed plugins' registries: where a run looks up Rep-MTL's base weighting
INSTALLED = mtlx.PluginManager().registries


def rep_mtl(config: RepMTLConfig, *, tasks: Sequence[str], registries: Registries = INSTALLED) -> RepMTL:
    """Rep-MTL built as a run builds it: its base weighting from ``registries``."""
    return RepMTL.from_registries(config, tasks=tasks, registries=registries)


@pytest.fixture
def scaled_base() -> Registries:
    """The installed plugins' registries with ``scaled-test`` too (a manager of the test's own)."""
    manager = mtlx.PluginManager()
    manager.register_object(types.SimpleNamespace(mtlx_register=_register_scaled), "scaled-test")
    return manager.registries
