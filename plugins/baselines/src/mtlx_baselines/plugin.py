"""Entry point of mtlx-baselines: registers every baseline strategy by name."""

from __future__ import annotations

import mtlx
from mtlx import MTOStrategy

from .strategies.aligned_mtl import AlignedMTL
from .strategies.auto_lambda import AutoLambda
from .strategies.cagrad import CAGrad
from .strategies.conflict_free import ConFIG
from .strategies.db_mtl import DBMTL
from .strategies.dualproj import DualProj
from .strategies.dwa import DynamicWeightAverage
from .strategies.ew import EqualWeighting
from .strategies.excess_mtl import ExcessMTL
from .strategies.fairgrad import FairGrad
from .strategies.famo import FAMO
from .strategies.fixed import FixedWeights
from .strategies.forum import FORUM
from .strategies.gls import GeometricLossStrategy
from .strategies.graddrop import GradDrop
from .strategies.gradnorm import GradNorm
from .strategies.gradvac import GradVac
from .strategies.igb import IGBv1, IGBv2
from .strategies.imtl import IMTL
from .strategies.ldc_mtl import LDCMTL
from .strategies.metabalance import MetaBalance
from .strategies.mgda import MGDA
from .strategies.moco import MoCo
from .strategies.modo import MoDo
from .strategies.moml import MOML
from .strategies.mtadam import MTAdam
from .strategies.nash_mtl import NashMTL
from .strategies.pcgrad import PCGrad
from .strategies.rlw import RandomLossWeighting
from .strategies.sdmgrad import SDMGrad
from .strategies.stch import STCH
from .strategies.upgrad import UPGrad
from .strategies.uw import UncertaintyWeighting

#: name -> strategy class, in the order of baselines.md.
STRATEGIES: dict[str, type[MTOStrategy]] = {
    "ew": EqualWeighting,
    "uw": UncertaintyWeighting,
    "dwa": DynamicWeightAverage,
    "rlw": RandomLossWeighting,
    "gls": GeometricLossStrategy,
    "gradnorm": GradNorm,
    "mgda": MGDA,
    "pcgrad": PCGrad,
    "graddrop": GradDrop,
    "gradvac": GradVac,
    "imtl": IMTL,
    "cagrad": CAGrad,
    "nash-mtl": NashMTL,
    "aligned-mtl": AlignedMTL,
    "db-mtl": DBMTL,
    "famo": FAMO,
    "fairgrad": FairGrad,
    "stch": STCH,
    "moco": MoCo,
    "upgrad": UPGrad,
    "excess-mtl": ExcessMTL,
    "config": ConFIG,
    "dualproj": DualProj,
    "fixed": FixedWeights,
    "modo": MoDo,
    "sdmgrad": SDMGrad,
    "igbv1": IGBv1,
    "igbv2": IGBv2,
    "auto-lambda": AutoLambda,
    "moml": MOML,
    "forum": FORUM,
    "metabalance": MetaBalance,
    "ldc-mtl": LDCMTL,
    "mtadam": MTAdam,
}


@mtlx.hookimpl
def mtlx_register(registry) -> None:
    for name, cls in STRATEGIES.items():
        registry.strategies.register(name, cls)
