"""tsr_loss / csa_loss: equal to the naive formulas, differentiable, fp32 under AMP, no C×C maps."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mtlx_repmtl.losses import csa_loss, csa_terms, tsr_loss

# (T, B, per-sample shape): vectors [B, C], N < C (Sᵀ S Gram) and N > C (S Sᵀ Gram).
SHAPES = [
    (2, 2, (3,)),
    (3, 4, (5,)),
    (5, 6, (4, 2, 3)),
    (4, 3, (6, 2, 2)),
    (2, 5, (3, 4, 4)),
    (3, 2, (7, 1, 1)),
    (5, 3, (2, 3, 1)),
]


def _saliencies(num_tasks: int, batch: int, shape: tuple[int, ...], seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    # different scales per task, like real saliencies
    return [torch.randn(batch, *shape, generator=g, dtype=torch.float64) * 10.0 ** (-t) for t in range(num_tasks)]


@pytest.mark.parametrize(("num_tasks", "batch", "shape"), SHAPES)
def test_tsr_equals_naive(num_tasks, batch, shape, naive):
    """The batched entropy equals Eqs. 4–6 evaluated position by position, and so do its gradients."""
    sal = [s.requires_grad_() for s in _saliencies(num_tasks, batch, shape)]
    fast, slow = tsr_loss(sal), naive.tsr(sal)
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-12)
    for g_fast, g_slow in zip(torch.autograd.grad(fast, sal), torch.autograd.grad(slow, sal), strict=True):
        torch.testing.assert_close(g_fast, g_slow, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("denominator", ["paper", "infonce"])
@pytest.mark.parametrize(("num_tasks", "batch", "shape"), SHAPES)
def test_csa_equals_naive(num_tasks, batch, shape, denominator, naive):
    """The Gram-identity CSA equals Eqs. 7–9 with materialised C×C maps, and so do its gradients."""
    sal = [s.requires_grad_() for s in _saliencies(num_tasks, batch, shape, seed=1)]
    fast = csa_loss(sal, temperature=0.3, denominator=denominator)
    slow = naive.csa(sal, temperature=0.3, denominator=denominator)
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-12)
    for g_fast, g_slow in zip(torch.autograd.grad(fast, sal), torch.autograd.grad(slow, sal), strict=True):
        torch.testing.assert_close(g_fast, g_slow, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("denominator", ["paper", "infonce"])
@pytest.mark.parametrize(("num_tasks", "batch", "shape"), SHAPES)
def test_csa_summed_over_tasks_equals_naive(num_tasks, batch, shape, denominator, naive):
    """``task_reduction="sum"`` (Eq. 9 summed over t, averaged over b) equals the naive sum, values and gradients,
    and is T times the default mean."""
    sal = [s.requires_grad_() for s in _saliencies(num_tasks, batch, shape, seed=2)]
    fast = csa_loss(sal, temperature=0.3, denominator=denominator, task_reduction="sum")
    slow = naive.csa(sal, temperature=0.3, denominator=denominator, task_reduction="sum")
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-12)
    for g_fast, g_slow in zip(torch.autograd.grad(fast, sal), torch.autograd.grad(slow, sal), strict=True):
        torch.testing.assert_close(g_fast, g_slow, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(fast, num_tasks * csa_loss(sal, temperature=0.3, denominator=denominator))


@pytest.mark.parametrize(("task_reduction", "expected"), [("mean", (2**-0.5 - 1) / 2), ("sum", 2**-0.5 - 1)])
def test_csa_task_reduction_on_a_hand_example(task_reduction, expected):
    """T = 2, B = 2, C = 2 vectors, τ = 1. Sample 0: tasks e1, e2, so Â_0 = I and each task map e_t e_tᵀ has
    cosine 1/√2 with it; sample 1: both tasks e1, so Â_1 = 2 e1 e1ᵀ and the cosines are 1. The only
    negative of either sample is cos(Â_0, Â_1) = 1/√2. Per (b, t): −log(exp(pos)/exp(1/√2)) = 1/√2 − pos,
    i.e. 0, 0 for sample 0 and 1/√2 − 1 twice for sample 1: mean over b and t (1/√2 − 1)/2, sum over t
    (then mean over b) 1/√2 − 1, T = 2 times more."""
    e1, e2 = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64)
    saliencies = [torch.stack([e1, e1]), torch.stack([e2, e1])]  # task t: [B, C]
    loss = csa_loss(saliencies, temperature=1.0, task_reduction=task_reduction)
    torch.testing.assert_close(loss, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=1e-12)


def test_denominators_differ_by_the_positive_term(naive):
    """infonce adds exp(pos/τ) to the denominator, so it is strictly larger than the paper's value."""
    sal = _saliencies(3, 4, (5, 2, 2))
    assert csa_loss(sal, denominator="infonce") > csa_loss(sal, denominator="paper")


@pytest.mark.parametrize("denominator", ["paper", "infonce"])
def test_gradcheck(denominator):
    """Both losses pass finite-difference gradient checks (float64, small shapes)."""
    stacked = torch.randn(3, 3, 4, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: tsr_loss(s.unbind(0)), (stacked,))
    assert torch.autograd.gradcheck(lambda s: csa_loss(s.unbind(0), 0.5, denominator=denominator), (stacked,))
    vectors = torch.randn(2, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: csa_loss(s, denominator=denominator), (vectors,))
    assert torch.autograd.gradcheck(tsr_loss, (vectors,))


def test_zero_saliency_is_finite(naive):
    """A task with zero saliency everywhere, or a sample where all are zero, gives finite values and gradients."""
    sal = _saliencies(3, 4, (3, 2, 2))
    sal[1] = torch.zeros_like(sal[1])
    for t in (0, 2):  # sample 2: every task's saliency is zero
        sal[t][2] = 0.0
    sal = [s.requires_grad_() for s in sal]
    for fast, slow in ((tsr_loss(sal), naive.tsr(sal)), (csa_loss(sal), naive.csa(sal))):
        torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-12)
        grads = torch.autograd.grad(fast, sal)
        assert all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("scale", [1e-7, 1e-3, 1e4])
def test_losses_do_not_depend_on_the_saliency_scale(scale):
    """Real saliencies are tiny (RMS ≈ 3e-6 per element on digits): values are scale-free, gradients scale 1/c.

    Each anchor map has cosine 1 with itself at every scale, i.e. no norm was clamped at eps.
    """
    sal = torch.stack(_saliencies(3, 5, (6, 3, 3))).requires_grad_()
    small = (sal * scale).detach().requires_grad_()
    for loss in (tsr_loss, csa_loss):
        value, (grad,) = loss(sal), torch.autograd.grad(loss(sal), sal)
        small_value, (small_grad,) = loss(small), torch.autograd.grad(loss(small), small)
        torch.testing.assert_close(small_value, value, rtol=1e-9, atol=0)
        torch.testing.assert_close(small_grad * scale, grad, rtol=1e-7, atol=1e-12)
    torch.testing.assert_close(csa_terms(small).anchor.diagonal(), torch.ones(5, dtype=torch.float64))


def test_single_sample_has_no_csa():
    """B = 1: no negatives, CSA is exactly 0 (the strategy warns); TSR is still defined."""
    sal = _saliencies(3, 1, (4, 2, 2))
    assert csa_loss(sal).item() == 0.0
    assert torch.isfinite(tsr_loss(sal)) and tsr_loss(sal) > 0


def test_similarities_are_cosines():
    """Positive and anchor similarities lie in [-1, 1] and each anchor map has cosine 1 with itself."""
    terms = csa_terms(_saliencies(4, 5, (6, 3, 3)))
    assert terms.positive.shape == (4, 5) and terms.anchor.shape == (5, 5)
    assert (terms.positive.abs() <= 1 + 1e-12).all() and (terms.anchor.abs() <= 1 + 1e-12).all()
    torch.testing.assert_close(terms.anchor.diagonal(), torch.ones(5, dtype=torch.float64))


def test_tsr_extremes():
    """TSR is log T when all tasks are equally salient everywhere, and 0 when one task owns each position."""
    same = [torch.ones(2, 3, 2, 2)] * 4
    torch.testing.assert_close(tsr_loss(same), torch.tensor(4.0).log())
    owner = torch.zeros(4, 2, 3, 2, 2)
    owner[0, :, :, 0], owner[1, :, :, 1] = 1.0, -2.0  # one task per position, signs irrelevant
    assert tsr_loss(owner).abs() < 1e-6


def test_fp32_under_bf16_autocast():
    """bf16 saliencies are upcast and the regularisers run in fp32 even inside CPU autocast."""
    sal = [s.float() for s in _saliencies(3, 4, (5, 3, 3))]
    low = [s.bfloat16() for s in sal]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        tsr, csa = tsr_loss(low), csa_loss(low)
    assert tsr.dtype == torch.float32 and csa.dtype == torch.float32
    upcast = [s.float() for s in low]
    torch.testing.assert_close(tsr, tsr_loss(upcast))
    torch.testing.assert_close(csa, csa_loss(upcast))


class _MaxNumel(TorchDispatchMode):
    """Records the largest tensor any op produces (forward and backward)."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("shape", [(512, 4, 4), (512,)])
def test_no_channel_by_channel_map(shape):
    """With C = 512 ≫ N, no op (forward or backward) produces anything near a C×C map.

    The largest tensors are the saliencies themselves and the [T, B, C, T] gradient of the anchors.
    """
    num_tasks, batch, channels = 3, 4, 512
    stacked = torch.randn(num_tasks, batch, *shape, requires_grad=True)
    with _MaxNumel() as spy:
        loss = csa_loss(stacked.unbind(0)) + tsr_loss(stacked.unbind(0))
        loss.backward()
    assert spy.largest <= max(stacked.numel(), num_tasks**2 * batch * channels) < channels**2  # one C×C map


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="denominator must be 'paper' or 'infonce'"):
        csa_loss(_saliencies(2, 2, (3,)), denominator="nce")
    with pytest.raises(ValueError, match="task reduction must be 'mean' or 'sum'"):
        csa_loss(_saliencies(2, 2, (3,)), task_reduction="max")
    with pytest.raises(ValueError, match=r"saliencies must be T tensors \[B, C\]"):
        tsr_loss([torch.randn(4)])


@pytest.mark.parametrize("task_reduction", ["mean", "sum"])
def test_csa_with_gathered_anchors_splits_the_global_batch_exactly(task_reduction):
    """Two simulated processes (halves of the batch, each with its own saliency scale) whose
    CSA uses the gathered anchors: their mean loss and its gradient equal the one-process CSA
    (the loss is a mean over the local samples whether the tasks are averaged or summed)."""
    from mtlx_repmtl.losses import csa_terms, unit_rms

    torch.manual_seed(0)
    saliencies = torch.randn(3, 6, 4, 5, dtype=torch.float64, requires_grad=True)
    (reference,) = torch.autograd.grad(csa_terms(saliencies, task_reduction=task_reduction).loss, saliencies)
    halves = [saliencies[:, :3] * 3.0, saliencies[:, 3:] * 0.5]  # per-process loss normalisation differs

    def anchors_of(part):
        part = unit_rms(part)
        return (part.sum(-1) / part.shape[-1]).transpose(0, 1)

    total = 0.0
    for rank, part in enumerate(halves):
        others = [anchors_of(h) for h in halves]

        def gather(local, rank=rank, others=others):
            return torch.cat([local if q == rank else others[q] for q in range(2)])

        total = total + csa_terms(part, gather=gather, offset=3 * rank, task_reduction=task_reduction).loss
    (split,) = torch.autograd.grad(total / 2, saliencies)
    assert torch.allclose(split, reference, atol=1e-12)
