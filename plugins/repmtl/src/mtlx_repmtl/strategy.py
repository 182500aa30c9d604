"""Rep-MTL: representation-level task saliency regularisation.

Wang, Li, Xu, "Rep-MTL: Unleashing the Power of Representation-level Task
Saliency for Multi-Task Learning", ICCV 2025, arXiv 2507.21049 (Eq. 10):

    L = Σ_t w_t L_t + λ_tsr · L_tsr(S) + λ_csa · L_csa(S),   S_t = ∂L_t/∂Z,

one backward pass, the saliencies taken with ``create_graph`` so that both
regularisers are differentiated through them (into the heads and, through Z,
into the encoder). ``w`` comes from any installed loss-weighting strategy
(``base``, EW by default, the paper's choice); the saliency is always that of
the unweighted (engine-transformed) ``L_t``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from mtlx import ConfigError, LossWeighting, MTOStrategy, Need, StepContext, StepResult, distributed
from mtlx.config import build_component_config
from mtlx.gradients import per_task_grads
from mtlx.phases import phase
from mtlx.registry import Registries

from .balance import flat_grad, gradient_balance
from .config import RepMTLConfig
from .gather import all_gather_with_grad
from .losses import csa_terms, full_precision, stack_saliencies, tsr_loss

__all__ = ["RepMTL", "build_base"]


def build_base(config: RepMTLConfig, tasks: Sequence[str], registries: Registries) -> LossWeighting:
    """The loss-weighting strategy named ``config.base`` in ``registries``, built with ``config.base_options``."""
    strategies = registries.strategies
    cls = strategies.get(config.base)
    if not issubclass(cls, LossWeighting):
        usable = [e.name for e in strategies.entries() if issubclass(e.obj, LossWeighting)]
        raise ConfigError(
            f"rep-mtl base {config.base!r} ({cls.__name__}) is not a loss-weighting strategy: Rep-MTL adds its "
            f"regularisers to a weighted sum of losses, so the base must implement LossWeighting.combine; "
            f"set strategy.base to one of: {', '.join(usable) or 'none installed'}"
        )
    base_config = build_component_config(cls.Config, config.base_options, where=f"rep-mtl base {config.base!r}")
    return cls.from_registries(base_config, tasks=tasks, registries=registries)


class RepMTL(MTOStrategy):
    """Rep-MTL (ICCV 2025): entropy (TSR) and contrastive (CSA) regularisers on task saliencies ∂L_t/∂Z."""

    Config = RepMTLConfig
    needs = Need.REPRESENTATION
    #: ``--preset paper``: the printed objective at a fixed λ, 0.9 unless set (the anchor of the paper's sensitivity
    #: study; the paper never reports the λ it chose), with the dataset's paper recipe where it has one
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {"paper": {"strategy.mode": "paper"}}

    def __init__(self, config: RepMTLConfig, *, tasks: Sequence[str], base: LossWeighting):
        """``base``: the built base weighting (:meth:`from_registries` builds ``config.base`` from the run's
        registries; Rep-MTL never looks a strategy up by itself)."""
        super().__init__(config, tasks=tasks)
        if len(self.tasks) < 2:
            raise ConfigError(
                f"Rep-MTL needs >= 2 tasks (its regularisers compare task saliencies); got {list(self.tasks)}; "
                "use a loss-weighting strategy such as 'ew' for a single task"
            )
        self.base = base
        #: balanced mode's current weights {regulariser: λ} (empty until the first estimate)
        self.lambdas: dict[str, float] = {}
        self._last_estimate = 0
        self._warned_single_sample = False
        self._checked_balance = False
        self._warned_outweighed = False

    @classmethod
    def from_registries(cls, config: RepMTLConfig, *, tasks: Sequence[str], registries: Registries) -> RepMTL:
        """The base weighting comes from the run's registries (``mtlx run --no-plugin`` and tests honour it)."""
        return cls(config, tasks=tasks, base=build_base(config, tasks, registries))

    # -- the step ---------------------------------------------------------
    def backward(self, step: StepContext) -> StepResult:
        if step.representation is None:
            raise ConfigError(
                "rep-mtl needs the shared representation Z, but this step has none: the architecture exposes no "
                "single shared representation (has_shared_representation = False); use one with a shared encoder "
                "(e.g. --arch hps)"
            )
        total, weights = self.base.combine(step.loss_vector(), step)
        diagnostics: dict[str, float] = {}
        if not (self.config.use_tsr or self.config.use_csa):
            step.backward(total)
            return StepResult(weights=self._named(weights), diagnostics=diagnostics)
        with full_precision(total.device):
            with phase("rep-mtl/saliency"):
                saliencies = self._saliencies(step)
            with phase("rep-mtl/regularisers"):
                raw = self._regularisers(saliencies, diagnostics)
            if self.config.mode == "balanced" and self._estimates(step):
                with phase("rep-mtl/estimate"):
                    self.lambdas = _balanced_lambdas(total, raw, step, self.config, self.lambdas)
                    self._last_estimate = step.iteration
            lambdas = self.lambdas if self.config.mode == "balanced" else self.config.fixed_lambdas()
            regularisers = {name: lambdas[name] * value for name, value in raw.items()}
            diagnostics.update({f"lambda_{name}": float(lambdas[name]) for name in raw})
            if self._measures_balance(step):
                ratios = gradient_balance(total, regularisers, _parameter_groups(step))
                diagnostics.update(ratios)
                self._warn_if_outweighed(ratios)
        norms = torch.linalg.vector_norm(saliencies.detach().flatten(1), dim=1)
        diagnostics.update({f"saliency_norm.{t}": float(n) for t, n in zip(self.tasks, norms, strict=True)})
        with phase("rep-mtl/backward"):
            if self.config.reg_params == "all":
                step.backward(total + sum(regularisers.values()))
            else:  # the regularisers reach the encoder only (not the heads)
                step.backward(total, inputs=[*step.shared_parameters(), *step.task_parameters(),
                                             *self.extra_parameters()], retain_graph=True)
                step.backward(sum(regularisers.values()), inputs=step.shared_parameters())
        return StepResult(weights=self._named(weights), diagnostics=diagnostics)

    def _named(self, weights: torch.Tensor) -> dict[str, float]:
        return dict(zip(self.tasks, weights.detach().tolist(), strict=True))

    def _estimates(self, step: StepContext) -> bool:
        """Balanced mode re-estimates its weights on the first step it sees, then every ``estimate_every``."""
        return not self.lambdas or step.iteration - self._last_estimate >= self.config.estimate_every

    def _saliencies(self, step: StepContext) -> torch.Tensor:
        """``[T, B, C, N]`` (fp32, or fp64 for an fp64 model): S_t = ∂L_t/∂Z with the graph kept (second order).

        The losses are multiplied by the AMP loss scale first, as in the
        backward, so that fp16 saliencies do not underflow; the result is
        unscaled after the upcast.
        """
        z = step.representation
        scale = step.loss_scale
        if isinstance(z, Mapping):
            raw = _multi_input_saliencies(step, z)
        else:  # each task from its own loss: head t is traversed (and double-backpropagated) for task t only
            (raw,) = per_task_grads(step.scaled_losses(), [z], create_graph=True)
        saliencies = stack_saliencies(raw)
        return saliencies / scale if scale != 1.0 else saliencies  # skips two passes over [T, B, C, N]

    def _measures_balance(self, step: StepContext) -> bool:
        """On ``balance_every`` steps; in paper mode, until it has warned, also on the first step it sees and
        on steps 1, 2, 4, 8, ...: the regularisers' pull grows in training (on digits it overtakes the tasks'
        at step 2), and doubling catches that within twice its step for log2(n) measurements over n steps."""
        every = self.config.balance_every
        step_number = step.iteration + 1  # 1-based, as the logs count steps
        if self.config.mode == "paper" and not self._warned_outweighed:
            first, self._checked_balance = not self._checked_balance, True
            if first or step_number & (step_number - 1) == 0:
                return True
        return every > 0 and step_number % every == 0  # steps k·every

    def _warn_if_outweighed(self, ratios: Mapping[str, float]) -> None:
        """Paper mode: say once when a regulariser's gradient exceeds the task losses' on the encoder or the heads."""
        if self.config.mode != "paper" or self._warned_outweighed:
            return
        worst = {k: v for k, v in ratios.items() if v > 1.0}
        if worst:
            self._warned_outweighed = True
            listed = ", ".join(f"{k} = {v:.3g}" for k, v in worst.items())
            warnings.warn(
                f"rep-mtl (mode=paper): the regularisers' gradient outweighs the task losses' ({listed}; "
                "‖∇λR‖ / ‖∇Σw_tL_t‖ > 1 on the shared or the task-specific parameters): they will dominate "
                "training. Lower strategy.lambda_tsr / strategy.lambda_csa, or use the default strategy.mode=balanced",
                RuntimeWarning,
                stacklevel=3,
            )

    def _regularisers(self, saliencies: torch.Tensor, diagnostics: dict[str, float]) -> dict[str, torch.Tensor]:
        """``{"tsr": L_tsr, "csa": L_csa}`` (enabled ones, unweighted) of ``[T, B, C, N]`` saliencies."""
        cfg = self.config
        regularisers: dict[str, torch.Tensor] = {}
        if cfg.use_tsr:
            tsr = tsr_loss(saliencies, eps=cfg.eps)
            regularisers["tsr"] = tsr
            diagnostics["tsr"] = _scalar(tsr)  # mean entropy, nats
            diagnostics["entropy_normalized"] = _scalar(tsr) / math.log(len(self.tasks))
        if cfg.use_csa:
            batch = saliencies.shape[1]
            if batch * distributed.world_size() < 2:
                self._warn_single_sample()
            parallel = distributed.is_distributed()  # negatives come from the global batch
            terms = csa_terms(
                saliencies, temperature=cfg.temperature, eps=cfg.eps, denominator=cfg.csa_denominator,
                gather=all_gather_with_grad if parallel else None,
                offset=distributed.rank() * batch, task_reduction=cfg.csa_tasks,
            )
            regularisers["csa"] = terms.loss
            diagnostics["csa"] = _scalar(terms.loss)
            diagnostics["positive_sim"] = _scalar(terms.positive.mean())
            if terms.anchor.shape[1] > 1:
                local = torch.arange(batch, device=terms.anchor.device)
                off_diagonal = torch.ones_like(terms.anchor, dtype=torch.bool)
                off_diagonal[local, local + distributed.rank() * batch] = False
                diagnostics["negative_sim"] = _scalar(terms.anchor[off_diagonal].mean())
        return regularisers

    def _warn_single_sample(self) -> None:
        if not self._warned_single_sample:
            self._warned_single_sample = True
            warnings.warn(
                "rep-mtl: a batch of 1 sample has no negatives for cross-task saliency alignment, so CSA "
                "contributes 0 on such batches (TSR still applies); use train.batch_size >= 2",
                RuntimeWarning,
                stacklevel=3,
            )

    # -- delegated to the base weighting ---------------------------------------
    def extra_parameters(self) -> Iterable[nn.Parameter]:
        return self.base.extra_parameters()

    def after_step(self, step: StepContext) -> None:
        self.base.after_step(step)

    def on_epoch_end(self, epoch: int, mean_losses: Mapping[str, float]) -> None:
        self.base.on_epoch_end(epoch, mean_losses)

    @property
    def uses_epoch_end(self) -> bool:
        return self.base.uses_epoch_end

    def state_dict(self) -> dict[str, Any]:
        return {"base": self.base.state_dict(), "lambdas": dict(self.lambdas), "last_estimate": self._last_estimate}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.base.load_state_dict(state["base"])
        self.lambdas = dict(state.get("lambdas", {}))
        self._last_estimate = int(state.get("last_estimate", 0))


def _balanced_lambdas(
    task_total: torch.Tensor, raw: Mapping[str, torch.Tensor], step: StepContext, cfg: RepMTLConfig,
    previous: Mapping[str, float],
) -> dict[str, float]:
    """λ_r = ρ · min_g ‖∇_g Σ w_t L_t‖ / ‖∇_g R_r‖ over the groups g the regularisers reach, EMA-smoothed.

    The groups are the shared parameters and, with ``reg_params=all``, the heads: with the estimate,
    each regulariser pulls on each of them with at most ρ times the task losses' force on this step's
    batch (balancing the encoder alone let TSR outweigh the task losses on QM9's one-layer heads,
    README). The bound holds for the estimate, not between estimates: the returned weight is the EMA
    of the estimates (exactly the estimate on the first one), and later batches move the ratio. Under
    data parallelism the gradients (not their norms) are averaged across processes before the norms are
    taken: the norms of the global batch's gradients, so every process uses the same λ.
    """
    groups = _parameter_groups(step)
    if cfg.reg_params == "shared":
        del groups["heads"]
    groups = {name: [p for p in params if p.requires_grad] for name, params in groups.items()}
    params = [p for group in groups.values() for p in group]
    grads = torch.stack([flat_grad(task_total, params), *(flat_grad(r, params) for r in raw.values())])
    grads = step.average_across_processes(grads)
    sizes = [sum(p.numel() for p in group) for group in groups.values()]
    norms = torch.stack([torch.linalg.vector_norm(g, dim=1) for g in grads.split(sizes, dim=1)], dim=1)  # [1+R, G]
    reached = norms[0] > 0  # a group the task losses do not reach has no ratio
    out: dict[str, float] = {}
    for name, reg_norms in zip(raw, norms[1:], strict=True):
        usable = reached & (reg_norms > 0) & torch.isfinite(reg_norms)
        if not bool(usable.any()):  # no gradient to balance: keep the last weight
            out[name] = previous.get(name, 0.0)
            continue
        estimate = cfg.rho * float((norms[0][usable] / reg_norms[usable]).min())
        out[name] = estimate if name not in previous else cfg.ema * previous[name] + (1.0 - cfg.ema) * estimate
    return out


def _parameter_groups(step: StepContext) -> dict[str, list[nn.Parameter]]:
    """Shared (encoder) and task-specific (heads) parameters, the two places the regularisers act."""
    return {"shared": step.shared_parameters(), "heads": step.task_parameters()}


def _scalar(value: torch.Tensor) -> float:
    return float(value.detach())


def _multi_input_saliencies(step: StepContext, reps: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Multi-input data: row t is ∂(scale·L_t)/∂Z_t (each task's own input), aligned by batch index.

    Tasks whose batches differ in size (the last batch of a shorter loader)
    are aligned on the first ``min_t B_t`` samples.
    """
    rows = [
        per_task_grads([loss], [reps[t]], create_graph=True)[0][0]
        for t, loss in zip(step.tasks, step.scaled_losses(), strict=True)
    ]
    shapes = {tuple(r.shape[1:]) for r in rows}
    if len(shapes) != 1:
        raise ConfigError(
            f"rep-mtl on multi-input data needs every task's representation to have one per-sample shape; "
            f"got {sorted(shapes)} for tasks {list(step.tasks)}; give all tasks the same input size"
        )
    batch = min(r.shape[0] for r in rows)
    return torch.stack([r[:batch] for r in rows])
