"""Options of the ``rep-mtl`` strategy (``-o strategy.<field>=value``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["CSA_DENOMINATORS", "CSA_TASKS", "MODES", "REG_PARAMS", "SENSITIVITY_ANCHOR_LAMBDA", "RepMTLConfig"]

#: ``paper``: Eq. 9 as printed (positive not in the denominator); ``infonce``: positive added.
CSA_DENOMINATORS = ("paper", "infonce")
#: How CSA combines the tasks, which Eq. 9 leaves free: ``mean`` (1/(B·T) Σ_b Σ_t) or ``sum`` (1/B Σ_b Σ_t, T times
#: larger: at the same λ_csa the sum weighs CSA T times more).
CSA_TASKS = ("mean", "sum")
#: ``paper``: Eq. 10 with fixed λ (``SENSITIVITY_ANCHOR_LAMBDA`` unless set); ``balanced`` (not in the paper): each
#: λ estimated so that, on the estimate's batch, the regulariser's gradient is at most ``rho`` times the task
#: losses' on the encoder and on the heads (a bound at each estimate, not between estimates).
MODES = ("balanced", "paper")
#: Where the regularisers' gradients go: heads and encoder (``all``, the paper) or the encoder only (not in the paper).
REG_PARAMS = ("all", "shared")
#: ``paper`` mode's λ_tsr = λ_csa when unset: the value the paper holds fixed while sweeping the other λ over its
#: grid {0.7, 0.9, …, 1.5} (sensitivity study, Fig. 7, App. D.1). The paper never reports the λ it chose.
SENSITIVITY_ANCHOR_LAMBDA = 0.9

_ge0 = attrs.validators.ge(0.0)
_gt0 = attrs.validators.gt(0.0)


def _options(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(value or {})


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


@attrs.frozen(kw_only=True)
class RepMTLConfig:
    """Rep-MTL hyper-parameters; the paper's are in shared/spec/rep-mtl.md, the rest marked "not in the paper".

    Attributes:
        mode: ``balanced`` (default, not in the paper): each regulariser's weight is estimated on steps 1, 1+k,
            ... (k = ``estimate_every``) as ``rho`` · min_g ‖∇_g Σ w_t L_t‖ / ‖∇_g R‖ over the groups g it reaches
            (the shared parameters and, with ``reg_params=all``, the heads), so that on that step's batch
            ‖∇_g λR‖ ≤ ``rho`` · ‖∇_g Σ w_t L_t‖ on every group, with equality on the binding one; the weight in
            use is an EMA of the estimates (``ema``), so the bound is exact on the first step (on every estimate's
            step with ``ema=0``) and between estimates the ratio drifts with the batches (README); ``paper``:
            fixed ``lambda_tsr``/``lambda_csa`` (Eq. 10 as printed).
        lambda_tsr: ``paper`` mode: weight of the task-specific saliency regulariser (entropy, Eq. 6); unset: 0.9,
            the anchor of the paper's sensitivity study (the paper does not report the λ it chose).
        lambda_csa: ``paper`` mode: weight of the cross-task saliency alignment (contrastive, Eq. 9); unset: 0.9,
            the anchor of the paper's sensitivity study.
        rho: ``balanced`` mode: the bound of each estimate, the ratio of each regulariser's gradient norm to the
            task losses' on the encoder and on the heads on the estimate's batch (not a bound between estimates;
            0.001: of the values measured, 0.01 and 0.001, the one not worse than EW beyond seed noise on four
            digits settings and QM9; README).
        estimate_every: ``balanced`` mode: re-estimate the weights on steps 1, 1+k, 1+2k, ... (k ≥ 1).
        ema: ``balanced`` mode: weight = ema · previous + (1 − ema) · new estimate (0: no smoothing).
        reg_params: ``all`` (heads and encoder, the paper) or ``shared`` (encoder only; not in the paper:
            stops TSR's shortcut of zeroing a head's channel-mean saliency through the head's weights).
        temperature: τ of Eq. 9 (not reported by the paper).
        csa_denominator: ``paper`` (positive excluded) or ``infonce`` (positive included).
        csa_tasks: CSA over the tasks, which Eq. 9 leaves free: ``mean`` (averaged) or ``sum`` (summed: T times
            larger, so the same ``lambda_csa`` weighs CSA T times more; ``balanced`` mode's λ absorbs the factor).
        eps: guards the L1 normalisation and the log of TSR and the norms of CSA.
        base: name of the installed loss-weighting strategy that combines the task losses.
        base_options: options of ``base`` (its own ``Config`` fields).
        use_tsr, use_csa: switch each regulariser off (the paper's ablation).
        balance_every: on steps k, 2k, ... (1-based, as logged; 0: never), log ``grad_ratio.<tsr|csa>.<shared|heads>``,
            ‖∇ λR‖ / ‖∇ Σ w_t L_t‖ over the shared and the task-specific parameters: the gauge for
            choosing λ (costs 2-3 extra backward passes through the saliency graph on those steps).
            ``mode=paper`` also measures steps 1, 2, 4, 8, ... until it warns that a regulariser outweighs
            the tasks.
    """

    mode: str = attrs.field(default="balanced", validator=attrs.validators.in_(MODES))
    lambda_tsr: float | None = attrs.field(
        default=None, converter=_optional_float, validator=attrs.validators.optional(_ge0)
    )
    lambda_csa: float | None = attrs.field(
        default=None, converter=_optional_float, validator=attrs.validators.optional(_ge0)
    )
    rho: float = attrs.field(default=0.001, converter=float, validator=_gt0)
    estimate_every: int = attrs.field(default=50, converter=int, validator=attrs.validators.ge(1))
    ema: float = attrs.field(default=0.9, converter=float, validator=[_ge0, attrs.validators.lt(1.0)])
    reg_params: str = attrs.field(default="all", validator=attrs.validators.in_(REG_PARAMS))
    temperature: float = attrs.field(default=0.1, converter=float, validator=_gt0)
    csa_denominator: str = attrs.field(default="paper", validator=attrs.validators.in_(CSA_DENOMINATORS))
    csa_tasks: str = attrs.field(default="mean", validator=attrs.validators.in_(CSA_TASKS))
    eps: float = attrs.field(default=1e-8, converter=float, validator=_gt0)
    base: str = attrs.field(default="ew", validator=attrs.validators.instance_of(str))
    base_options: dict[str, Any] = attrs.field(factory=dict, converter=_options)
    use_tsr: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    use_csa: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    balance_every: int = attrs.field(default=0, converter=int, validator=attrs.validators.ge(0))

    def __attrs_post_init__(self) -> None:
        if self.mode == "balanced":
            fixed = [name for name in ("lambda_tsr", "lambda_csa") if getattr(self, name) is not None]
            if fixed:
                raise ValueError(
                    f"{', '.join(fixed)} fix(es) the weight of mode=paper, but mode=balanced sets the weights from "
                    f"rho={self.rho}: add -o strategy.mode=paper to fix λ, or set strategy.rho instead"
                )

    def fixed_lambdas(self) -> dict[str, float]:
        """``paper`` mode's weights (unset ones are the anchor of the paper's sensitivity study, 0.9)."""
        return {
            "tsr": SENSITIVITY_ANCHOR_LAMBDA if self.lambda_tsr is None else self.lambda_tsr,
            "csa": SENSITIVITY_ANCHOR_LAMBDA if self.lambda_csa is None else self.lambda_csa,
        }
