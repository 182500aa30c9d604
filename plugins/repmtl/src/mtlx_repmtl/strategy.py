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
from typing import Any

import torch
from torch import nn
from torch.profiler import record_function

from mtlx import ConfigError, LossWeighting, MTOStrategy, Need, StepContext, StepResult, distributed, get_plugin_manager
from mtlx.config import build_component_config
from mtlx.gradients import per_task_grads

from .balance import gradient_balance
from .config import RepMTLConfig
from .losses import csa_terms, full_precision, stack_saliencies, tsr_loss

__all__ = ["RepMTL", "build_base"]


def build_base(config: RepMTLConfig, tasks: Sequence[str]) -> LossWeighting:
    """The loss-weighting strategy named ``config.base``, built with ``config.base_options``."""
    strategies = get_plugin_manager().registries.strategies
    cls = strategies.get(config.base)
    if not issubclass(cls, LossWeighting):
        usable = [e.name for e in strategies.entries() if issubclass(e.obj, LossWeighting)]
        raise ConfigError(
            f"rep-mtl base {config.base!r} ({cls.__name__}) is not a loss-weighting strategy: Rep-MTL adds its "
            f"regularisers to a weighted sum of losses, so the base must implement LossWeighting.combine; "
            f"set strategy.base to one of: {', '.join(usable) or 'none installed'}"
        )
    base_config = build_component_config(cls.Config, config.base_options, where=f"rep-mtl base {config.base!r}")
    return cls(base_config, tasks=tasks)


class RepMTL(MTOStrategy):
    """Rep-MTL (ICCV 2025): entropy (TSR) and contrastive (CSA) regularisers on task saliencies ∂L_t/∂Z."""

    Config = RepMTLConfig
    needs = Need.REPRESENTATION

    def __init__(self, config: RepMTLConfig, *, tasks: Sequence[str]):
        super().__init__(config, tasks=tasks)
        if len(self.tasks) < 2:
            raise ConfigError(
                f"Rep-MTL needs >= 2 tasks (its regularisers compare task saliencies); got {list(self.tasks)}; "
                "use a loss-weighting strategy such as 'ew' for a single task"
            )
        self.base = build_base(config, self.tasks)
        self._warned_single_sample = False

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
        if self.config.use_tsr or self.config.use_csa:
            with full_precision(total.device):
                with record_function("rep-mtl/saliency"):
                    saliencies = self._saliencies(step)
                with record_function("rep-mtl/regularisers"):
                    regularisers = self._regularisers(saliencies, diagnostics)
                if self._measures_balance(step):
                    diagnostics.update(gradient_balance(total, regularisers, _parameter_groups(step)))
                total = total + sum(regularisers.values())
            norms = torch.linalg.vector_norm(saliencies.detach().flatten(1), dim=1)
            diagnostics.update({f"saliency_norm.{t}": float(n) for t, n in zip(self.tasks, norms, strict=True)})
        with record_function("rep-mtl/backward"):
            step.backward(total)
        return StepResult(weights=dict(zip(self.tasks, weights.detach().tolist(), strict=True)), diagnostics=diagnostics)

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
        every = self.config.balance_every
        return every > 0 and (step.iteration + 1) % every == 0  # steps k·every, 1-based as the logs count them

    def _regularisers(self, saliencies: torch.Tensor, diagnostics: dict[str, float]) -> dict[str, torch.Tensor]:
        """``{"tsr": λ_tsr·L_tsr, "csa": λ_csa·L_csa}`` (enabled ones) of ``[T, B, C, N]`` saliencies."""
        cfg = self.config
        regularisers: dict[str, torch.Tensor] = {}
        if cfg.use_tsr:
            tsr = tsr_loss(saliencies, eps=cfg.eps)
            regularisers["tsr"] = cfg.lambda_tsr * tsr
            diagnostics["tsr"] = _scalar(tsr)  # mean entropy, nats
            diagnostics["entropy_normalized"] = _scalar(tsr) / math.log(len(self.tasks))
        if cfg.use_csa:
            batch = saliencies.shape[1]
            if batch * distributed.world_size() < 2:
                self._warn_single_sample()
            parallel = distributed.is_distributed()  # negatives come from the global batch
            terms = csa_terms(
                saliencies, temperature=cfg.temperature, eps=cfg.eps, denominator=cfg.csa_denominator,
                gather=distributed.all_gather_with_grad if parallel else None,
                offset=distributed.rank() * batch,
            )
            regularisers["csa"] = cfg.lambda_csa * terms.loss
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

    def state_dict(self) -> dict[str, Any]:
        return {"base": self.base.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.base.load_state_dict(state["base"])


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
