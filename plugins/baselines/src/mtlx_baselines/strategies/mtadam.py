"""MTAdam (Malkiel & Wolf, EMNLP 2021, arXiv 2006.14683): Adam with one set of moments per loss term.

Per step t, for each task's gradient ``g_i`` and each layer l (a parameter tensor, as the original code):

- ``n_il = β3 n_il + (1 - β3) ‖g_il‖`` (``‖g_il‖`` itself at the first step, as the original code);
- ``g̃_il = (n_al / n_il) g_il``, the anchor a being the first term with ``n_al > 1e-10`` (the first task,
  unless its gradient does not reach the layer); a term with ``n_il <= 1e-10`` is left as it is;
- per term, Adam's moments of ``g̃_i``: ``m_i``, ``v_i``, bias-corrected ``m̂_i``, ``v̂_i``;
- ``θ ← θ - lr Σ_i m̂_i / (max_i √v̂_i + ε)``: the largest second moment of any term sets the step size.

The strategy owns the optimiser step (``owns_optimizer_step``): the engine and ``mtlx.MTL`` call
:meth:`MTAdam.optimizer_step` in place of ``optimizer.step()``. From the run's optimiser (Adam or AdamW;
SGD is refused) it reads each param group's ``lr`` (so an LR scheduler is followed), ``betas``, ``eps`` and
``weight_decay``; the optimiser keeps no state. Weight decay is decoupled (``θ ← θ(1 - lr·wd)``, as AdamW)
for Adam and AdamW alike: the original adds ``wd·θ`` to every term's gradient, T times the decay, fed
through every term's moments. fp16 (GradScaler) and ``train.max_grad_norm`` are refused before training
(exit 2): the step is taken from per-task gradients that neither acts on. The per-term ranks λ_i of the
paper are 1 (it has no option for them); AMSGrad is refused.

Per-task gradients of the shared parameters come from the core (``StepContext.shared_grads``: the floor
method, all-reduced under DDP). Task-specific parameters receive only their own task's gradient, so their
anchor is that task itself: each head, and any other parameter outside the shared ones, is stepped by plain
Adam on its ``.grad`` (one term; the engine has averaged it across processes). ``.grad`` of the shared
parameters holds ``Σ_i g̃_i``, what the finiteness guard checks; the moments change only in the optimiser
step, so a skipped step leaves them as they were. Weights: none (the balance is per layer).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import torch

from mtlx import ConfigError, MTOStrategy, StepContext, StepResult

from ._state import WithAggregatorState

__all__ = ["MTAdam", "MTAdamState", "adam_direction", "balance"]

#: a layer's gradient-norm average at or below this counts as no gradient (the original code's threshold)
NO_GRADIENT = 1e-10


@attrs.define
class MTAdamState:
    step: int = 0
    norms: torch.Tensor | None = None  # [T, L]: n per task and shared layer
    exp_avg: torch.Tensor | None = None  # [T, P]: m per task, shared parameters
    exp_avg_sq: torch.Tensor | None = None  # [T, P]
    own_exp_avg: torch.Tensor | None = None  # [1, Q]: the other parameters' (heads'), one term
    own_exp_avg_sq: torch.Tensor | None = None


def balance(grads: torch.Tensor, layer_of: torch.Tensor, norms: torch.Tensor | None, beta3: float, *,
            num_layers: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(g̃ [T, P], n [T, L])``: each task's per-layer gradient scaled to its anchor's average norm.

    ``layer_of`` ([P], long) gives each column's layer (``num_layers`` of them: pass it to spare a host sync);
    ``norms`` are the previous step's averages (None at the first step, where n is the step's own norm).
    """
    if num_layers is None:
        num_layers = int(layer_of.max()) + 1 if layer_of.numel() else 0
    squares = grads.new_zeros(grads.shape[0], num_layers).index_add_(1, layer_of, grads.square())
    current = squares.sqrt()
    new = current if norms is None else beta3 * norms + (1 - beta3) * current
    alive = new > NO_GRADIENT
    anchor = new.gather(0, alive.int().argmax(0, keepdim=True))  # the first term with a gradient, per layer
    scale = torch.where(alive, anchor / torch.where(alive, new, 1.0), 1.0)
    return grads * scale[:, layer_of], new


def adam_direction(grads: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor, step: int,
                   betas: tuple[float, float], eps: float) -> torch.Tensor:
    """``Σ_i m̂_i / (max_i √v̂_i + ε)`` ([P]; the update is ``-lr`` times it), the moments of the ``[T, P]``
    ``grads`` updated in place at ``step`` (1-based)."""
    beta1, beta2 = betas
    exp_avg.mul_(beta1).add_(grads, alpha=1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grads, grads, value=1 - beta2)
    denominator = exp_avg_sq.amax(0).sqrt_().div_(math.sqrt(1 - beta2**step)).add_(eps)
    return exp_avg.sum(0).div_(1 - beta1**step).div_(denominator)


class MTAdam(WithAggregatorState, MTOStrategy):
    """MTAdam (Malkiel & Wolf, EMNLP 2021): per-task Adam moments, each layer's gradients balanced to the first task's."""

    @attrs.frozen(kw_only=True)
    class Config:
        """Options of ``-o strategy.KEY=VALUE``.

        Attributes:
            beta3: decay of each task's per-layer gradient-norm average (the paper's β3), in [0, 1)
        """

        beta3: float = attrs.field(default=0.9, validator=[attrs.validators.ge(0), attrs.validators.lt(1)])

    owns_optimizer_step = (torch.optim.Adam, torch.optim.AdamW)

    def __init__(self, config: Config, *, tasks: Sequence[str]):
        super().__init__(config, tasks=tasks)
        self.state = MTAdamState()
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None  # this step's (g̃, n), until the step
        self._layers: tuple[tuple[int, ...], torch.Tensor] | None = None  # (sizes, layer_of), cached

    def state_bytes(self, shared: Sequence[torch.nn.Parameter], others: Sequence[torch.nn.Parameter]) -> int:
        """Two fp32 moments per task of every shared parameter, two of every other one (the optimiser keeps none)."""
        return 2 * 4 * (len(self.tasks) * sum(p.numel() for p in shared) + sum(p.numel() for p in others))

    def _layer_of(self, params: Sequence[torch.Tensor], device: torch.device) -> torch.Tensor:
        sizes = tuple(p.numel() for p in params)
        if self._layers is None or self._layers[0] != sizes or self._layers[1].device != device:
            counts = torch.tensor(sizes, device=device)
            self._layers = sizes, torch.repeat_interleave(torch.arange(len(sizes), device=device), counts)
        return self._layers[1]

    def backward(self, step: StepContext) -> StepResult:
        grads, shared = step.shared_grads(), step.shared_parameters()
        balanced, norms = balance(grads, self._layer_of(shared, grads.device), self.state.norms, self.config.beta3,
                                  num_layers=len(shared))
        step.set_shared_grad(balanced.sum(0))
        step.backward_heads()
        self._pending = balanced, norms
        return StepResult()

    def optimizer_step(self, step: StepContext, optimizer: torch.optim.Optimizer) -> None:
        if self._pending is None:
            raise RuntimeError("MTAdam.optimizer_step without a backward of this step")
        balanced, norms = self._pending
        self._pending = None
        betas, eps = _adam_settings(optimizer)
        shared = step.shared_parameters()
        shared_ids = {id(p) for p in shared}
        group_of = {id(p): group for group in optimizer.param_groups for p in group["params"]}
        if missing := [i for i, p in enumerate(shared) if id(p) not in group_of]:
            raise ConfigError(f"mtadam: shared parameter {missing[0]} is not in the optimiser's param groups; "
                              "give the optimiser every trainable parameter")
        own = [p for group in optimizer.param_groups for p in group["params"] if id(p) not in shared_ids]
        own_grads = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in own]
                              ) if own else balanced.new_zeros(0)
        s = self.state
        s.step += 1
        s.norms = norms
        if s.exp_avg is None:
            s.exp_avg, s.exp_avg_sq = torch.zeros_like(balanced), torch.zeros_like(balanced)
            s.own_exp_avg = own_grads.new_zeros(1, own_grads.numel())
            s.own_exp_avg_sq = own_grads.new_zeros(1, own_grads.numel())
        assert s.exp_avg_sq is not None and s.own_exp_avg is not None and s.own_exp_avg_sq is not None
        with torch.no_grad():
            shared_dir = adam_direction(balanced, s.exp_avg, s.exp_avg_sq, s.step, betas, eps)
            own_dir = adam_direction(own_grads[None], s.own_exp_avg, s.own_exp_avg_sq, s.step, betas, eps)
            for params, direction in ((shared, shared_dir), (own, own_dir)):
                for p, d in zip(params, direction.split([p.numel() for p in params]), strict=True):
                    group = group_of[id(p)]
                    lr, decay = float(group["lr"]), float(group.get("weight_decay", 0.0))
                    if decay:
                        p.mul_(1 - lr * decay)
                    p.add_(d.view_as(p).to(p.dtype), alpha=-lr)


def _adam_settings(optimizer: torch.optim.Optimizer) -> tuple[tuple[float, float], float]:
    """The optimiser's ``betas`` and ``eps``, one for all param groups (MTAdam's moments span the groups)."""
    settings = {(tuple(g["betas"]), float(g["eps"])) for g in optimizer.param_groups}
    if len(settings) != 1:
        raise ConfigError(f"mtadam takes betas and eps from the optimiser, whose param groups differ: {settings}")
    if any(g.get("amsgrad") or g.get("maximize") for g in optimizer.param_groups):
        raise ConfigError("mtadam takes the optimiser step itself; the optimiser's amsgrad and maximize are not "
                          "supported: leave them False")
    (betas, eps), = settings
    return (float(betas[0]), float(betas[1])), eps
