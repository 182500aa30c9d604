"""Rep-MTL's two saliency regularisers, exact and without C×C maps.

Both take the task saliencies ``S_t = ∂L_t/∂Z`` (``T`` tensors ``[B, C, H, W]``
or ``[B, C]``) and are pure functions of them. The contrastive term works on
the C×C maps ``S Sᵀ`` and ``A Aᵀ`` only through Frobenius inner products, so it
uses the Gram identities of shared/spec/rep-mtl.md instead:

- ``⟨A Aᵀ, S Sᵀ⟩ = ‖Aᵀ S‖²``  (T×N),  ``‖A Aᵀ‖ = ‖Aᵀ A‖``  (T×T),
- ``‖S Sᵀ‖ = ‖Sᵀ S‖``  (the Gram on the smaller of C and N),
- ``⟨A_b A_bᵀ, A_k A_kᵀ⟩ = ‖A_bᵀ A_k‖²``  (T×T),

batched over samples and tasks. Everything runs in fp32 (fp64 inputs stay fp64)
with autocast off, because the entropies and cosines of small saliencies lose
all precision in bf16/fp16.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs
import torch
from torch.autograd.function import once_differentiable

__all__ = [
    "CSATerms",
    "anchor_similarity",
    "csa_loss",
    "csa_terms",
    "full_precision",
    "stack_saliencies",
    "tsr_loss",
    "unit_rms",
]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


@contextlib.contextmanager
def full_precision(device: torch.device) -> Iterator[None]:
    """Autocast off on ``device``: the regularisers (and saliencies) must not run in bf16/fp16."""
    with torch.autocast(device_type=device.type, enabled=False):
        yield


def stack_saliencies(saliencies: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """``T`` saliencies ``[B, C, *spatial]`` (or a ``[T, B, C, *spatial]`` tensor) as ``[T, B, C, N]``.

    Vector representations ``[B, C]`` get ``N = 1``; bf16/fp16 inputs are upcast to fp32.
    """
    stacked = saliencies if isinstance(saliencies, torch.Tensor) else torch.stack(list(saliencies))
    if stacked.dim() < 3:
        raise ValueError(
            f"saliencies must be T tensors [B, C] or [B, C, H, W]; got a stack of shape {tuple(stacked.shape)}"
        )
    if stacked.dtype in _LOW_PRECISION:
        stacked = stacked.float()
    num_tasks, batch, channels = stacked.shape[:3]
    return stacked.reshape(num_tasks, batch, channels, -1)


def unit_rms(stacked: torch.Tensor) -> torch.Tensor:
    """``S / rms(S)`` over all tasks and samples, the rms detached (S = 0 stays 0).

    Both losses are invariant to one global scale of all saliencies, so this
    changes nothing but where ``eps`` bites: relative to the saliencies rather
    than at an absolute 1e-8. Saliencies of a batch-mean loss are small per
    sample (RMS ≈ 3e-6 on digits at batch 64, where ``‖A_b A_bᵀ‖ ≈ 1e-9``), so an
    absolute eps would clamp CSA's norms and shrink every cosine about 10×.
    Detaching the scale is exact: the derivative of a scale-invariant function
    along the scale is zero.
    """
    rms = torch.linalg.vector_norm(stacked.detach()) / math.sqrt(stacked.numel())
    return stacked / torch.where(rms > 0, rms, torch.ones_like(rms))


def tsr_loss(saliencies: Sequence[torch.Tensor] | torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Task-specific saliency regulation (Eqs. 4–6): mean entropy of the per-position task distributions.

    ``Ŝ_t`` is the signed channel mean of ``S_t``; at each of the ``B·N``
    positions ``P[i, t] = |Ŝ_t[i]| / (Σ_k |Ŝ_k[i]| + eps)`` and the loss is
    ``mean_i −Σ_t P[i, t] log(P[i, t] + eps)``. Minimising it makes each position
    salient for few tasks. A position where every saliency is zero has P = 0
    and contributes 0 (no NaN). ``eps`` applies to the saliencies divided by
    their global RMS (:func:`unit_rms`).
    """
    stacked = stack_saliencies(saliencies)
    with full_precision(stacked.device):
        stacked = unit_rms(stacked)
        # sum then scale (not mean): the backward then expands a view instead of dividing all of [T, B, C, N]
        magnitude = (stacked.sum(dim=2) / stacked.shape[2]).abs()  # |Ŝ_t|, [T, B, N]
        prob = magnitude / (magnitude.sum(dim=0, keepdim=True) + eps)
        entropy = -(prob * torch.log(prob + eps)).sum(dim=0)  # [B, N]
        return entropy.mean()


@attrs.frozen
class CSATerms:
    """The contrastive loss and the similarities it is made of (for diagnostics).

    Attributes:
        loss: the scalar L_csa (0 when the batch has one sample: no negatives).
        positive: ``[T, B]`` cosine between ``vec(A_b A_bᵀ)`` and ``vec(S_{t,b} S_{t,b}ᵀ)``.
        anchor: ``[B, B]`` cosine between the samples' anchor maps ``vec(A_b A_bᵀ)``.
    """

    loss: torch.Tensor
    positive: torch.Tensor
    anchor: torch.Tensor


def anchor_similarity(anchors: torch.Tensor, others: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Cosines ``[B, K]`` between the anchor maps ``A_b A_bᵀ`` of ``anchors`` and those of ``others``.

    Both are ``[T, B, C]`` / ``[T, K, C]`` (``a_{b,t}`` = spatial mean of ``S_{t,b}``).
    ``others`` is a separate argument so that a distributed run can pass the
    anchors of the global batch (gathered with gradient) while ``anchors``
    stay the local ones.
    """
    cross = torch.einsum("tbc,skc->bkts", anchors, others)  # A_bᵀ A_k, [B, K, T, T]
    inner = cross.square().sum(dim=(-2, -1))
    norm_local = _anchor_norm(anchors, eps)
    norm_other = _anchor_norm(others, eps)
    return inner / (norm_local[:, None] * norm_other[None, :])


def _anchor_norm(anchors: torch.Tensor, eps: float) -> torch.Tensor:
    """``max(‖A_b A_bᵀ‖_F, eps) = max(‖A_bᵀ A_b‖_F, eps)`` per sample, ``[B]``."""
    gram = torch.einsum("tbc,sbc->bts", anchors, anchors)
    return torch.linalg.vector_norm(gram, dim=(-2, -1)).clamp_min(eps)


class _GramNorm(torch.autograd.Function):
    """``‖S Sᵀ‖_F`` of each ``[..., C, N]`` matrix, via the Gram on the smaller of C and N.

    Autograd's backward of ``vector_norm(S @ Sᵀ)`` spends two Gram-sized
    matmuls (one per operand); the gradient is ``2·W·S`` (or ``2·S·W``) with
    ``W = G/‖G‖`` symmetric, one matmul. This is the dominant cost of CSA for
    wide representations (C·N·min(C, N) per sample and task). Only first
    derivatives are needed: the second-order part of Rep-MTL is in the
    saliency graph, not here.
    """

    @staticmethod
    def forward(ctx: Any, stacked: torch.Tensor) -> torch.Tensor:
        positions_side = stacked.shape[-1] <= stacked.shape[-2]
        gram = stacked.mT @ stacked if positions_side else stacked @ stacked.mT
        norm = torch.linalg.vector_norm(gram, dim=(-2, -1))
        ctx.positions_side = positions_side
        ctx.save_for_backward(stacked, gram, norm)
        return norm

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        stacked, gram, norm = ctx.saved_tensors
        scale = torch.where(norm > 0, grad / norm, torch.zeros_like(norm))  # subgradient 0 at S = 0
        weight = gram * (2 * scale)[..., None, None]
        return stacked @ weight if ctx.positions_side else weight @ stacked


def _saliency_map_norm(stacked: torch.Tensor, eps: float) -> torch.Tensor:
    """``max(‖S Sᵀ‖_F, eps)`` per task and sample, ``[T, B]``, without forming S Sᵀ when C > N."""
    return _GramNorm.apply(stacked).clamp_min(eps)


def csa_terms(
    saliencies: Sequence[torch.Tensor] | torch.Tensor,
    temperature: float = 0.1,
    eps: float = 1e-8,
    denominator: str = "paper",
    gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
    offset: int = 0,
    task_reduction: str = "mean",
) -> CSATerms:
    """Cross-task saliency alignment (Eqs. 7–9) with its similarities; see :func:`csa_loss`.

    Under data parallelism ``gather`` concatenates every process's ``[B, T, C]``
    anchors (with gradient) so the negatives are the other samples of the
    global batch; ``offset`` is this process's first index in it. The loss is
    the mean over the local samples (of the mean or the sum over tasks), so
    its mean over processes is the single-process loss of the global batch.
    """
    if denominator not in ("paper", "infonce"):
        raise ValueError(f"csa denominator must be 'paper' or 'infonce', got {denominator!r}")
    if task_reduction not in ("mean", "sum"):
        raise ValueError(f"csa task reduction must be 'mean' or 'sum', got {task_reduction!r}")
    stacked = stack_saliencies(saliencies)
    with full_precision(stacked.device):
        stacked = unit_rms(stacked)
        anchors = stacked.sum(dim=-1) / stacked.shape[-1]  # a_{b,t}, [T, B, C] (sum: see tsr_loss)
        projected = anchors.transpose(0, 1).unsqueeze(0) @ stacked  # A_bᵀ S_{t,b}, [T, B, T, N], no copy of S
        inner = projected.square().sum(dim=(-2, -1))  # ⟨A_b A_bᵀ, S Sᵀ⟩, [T, B]
        positive = inner / (_anchor_norm(anchors, eps)[None, :] * _saliency_map_norm(stacked, eps))
        others = anchors if gather is None else gather(anchors.transpose(0, 1).contiguous()).transpose(0, 1)
        anchor = anchor_similarity(anchors, others, eps)  # [B, B_global]
        batch, global_batch = anchor.shape
        if global_batch < 2:
            return CSATerms(loss=stacked.new_zeros(()), positive=positive, anchor=anchor)
        self_pair = torch.zeros(batch, global_batch, dtype=torch.bool, device=stacked.device)
        local = torch.arange(batch, device=stacked.device)
        self_pair[local, local + offset] = True
        negatives = torch.logsumexp((anchor / temperature).masked_fill(self_pair, -math.inf), dim=1)  # [B]
        logits = positive / temperature
        if denominator == "infonce":
            log_denominator = torch.logaddexp(logits, negatives[None, :])
        else:
            log_denominator = negatives[None, :].expand_as(logits)
        per_pair = log_denominator - logits  # [T, B]
        loss = per_pair.mean() if task_reduction == "mean" else per_pair.sum(dim=0).mean()
        return CSATerms(loss=loss, positive=positive, anchor=anchor)


def csa_loss(
    saliencies: Sequence[torch.Tensor] | torch.Tensor,
    temperature: float = 0.1,
    eps: float = 1e-8,
    denominator: str = "paper",
    task_reduction: str = "mean",
) -> torch.Tensor:
    """Cross-task saliency alignment (Eqs. 7–9), averaged over samples and averaged or summed over tasks.

    Per sample b, the anchor ``A_b = [a_{b,1} … a_{b,T}]`` (C×T, ``a_{b,t}`` the
    spatial mean of ``S_{t,b}``) gives ``Â_b = A_b A_bᵀ``; each task's map is
    ``M_{t,b} = S_{t,b} S_{t,b}ᵀ``. With cosines ``sim`` of the vectorised maps
    (norms clamped at ``eps``, as ``F.normalize``, after dividing all saliencies
    by their global RMS, :func:`unit_rms`):

    ``L = mean_b mean_t −log[ exp(sim(Â_b, M_{t,b})/τ) / D_b ]``,
    ``D_b = Σ_{k≠b} exp(sim(Â_b, Â_k)/τ)`` (``paper``: Eq. 9 as printed) or
    ``D_b + exp(sim(Â_b, M_{t,b})/τ)`` (``infonce``).

    Eq. 9 leaves t free: ``task_reduction="mean"`` (the default) averages over
    the tasks, ``"sum"`` sums them (``mean_b Σ_t``), which is T times larger,
    so at the same λ the sum weighs CSA T times more.

    A batch of one sample has no negatives: the loss is 0 (callers warn).
    Differentiable once (all Rep-MTL needs: its second-order part is in the
    saliency graph); asking for a second derivative raises.
    """
    return csa_terms(
        saliencies, temperature=temperature, eps=eps, denominator=denominator, task_reduction=task_reduction
    ).loss
