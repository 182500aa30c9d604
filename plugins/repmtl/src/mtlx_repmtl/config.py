"""Options of the ``rep-mtl`` strategy (``-o strategy.<field>=value``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["CSA_DENOMINATORS", "RepMTLConfig"]

#: ``paper``: Eq. 9 as printed (positive not in the denominator); ``infonce``: positive added.
CSA_DENOMINATORS = ("paper", "infonce")

_ge0 = attrs.validators.ge(0.0)
_gt0 = attrs.validators.gt(0.0)


def _options(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(value or {})


@attrs.frozen(kw_only=True)
class RepMTLConfig:
    """Rep-MTL hyper-parameters; defaults are the decisions of shared/spec/rep-mtl.md.

    Attributes:
        lambda_tsr: weight of the task-specific saliency regulariser (entropy, Eq. 6).
        lambda_csa: weight of the cross-task saliency alignment (contrastive, Eq. 9).
        temperature: τ of Eq. 9 (not reported by the paper).
        csa_denominator: ``paper`` (positive excluded) or ``infonce`` (positive included).
        eps: guards the L1 normalisation and the log of TSR and the norms of CSA.
        base: name of the installed loss-weighting strategy that combines the task losses.
        base_options: options of ``base`` (its own ``Config`` fields).
        use_tsr, use_csa: switch each regulariser off (the paper's ablation).
        balance_every: on steps k, 2k, ... (1-based, as logged; 0: never), log ``grad_ratio.<tsr|csa>.<shared|heads>``,
            ‖∇ λR‖ / ‖∇ Σ w_t L_t‖ over the shared and the task-specific parameters: the gauge for
            choosing λ (costs 2-3 extra backward passes through the saliency graph on those steps).
    """

    lambda_tsr: float = attrs.field(default=0.9, converter=float, validator=_ge0)
    lambda_csa: float = attrs.field(default=0.9, converter=float, validator=_ge0)
    temperature: float = attrs.field(default=0.1, converter=float, validator=_gt0)
    csa_denominator: str = attrs.field(default="paper", validator=attrs.validators.in_(CSA_DENOMINATORS))
    eps: float = attrs.field(default=1e-8, converter=float, validator=_gt0)
    base: str = attrs.field(default="ew", validator=attrs.validators.instance_of(str))
    base_options: dict[str, Any] = attrs.field(factory=dict, converter=_options)
    use_tsr: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    use_csa: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))
    balance_every: int = attrs.field(default=0, converter=int, validator=attrs.validators.ge(0))
