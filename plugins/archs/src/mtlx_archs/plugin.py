"""Entry point of mtlx-archs: registers every backbone, head and architecture by name."""

from __future__ import annotations

import mtlx

from .archs.cgc import CGC
from .archs.cross_stitch import CrossStitch
from .archs.dselect_k import DSelectK
from .archs.hps import HardParameterSharing
from .archs.ltb import BranchingSchedule, LearningToBranch
from .archs.mmoe import MMoE
from .archs.mtan import MTAN
from .archs.ple import PLE
from .archs.saliency_decoder import SaliencyDecoder
from .backbones.digits_cnn import DigitsCNN
from .backbones.mlp import MLP
from .backbones.resnet import ResNet18, ResNet50, ResNet50Dilated
from .heads.aspp import ASPPHead
from .heads.conv import ConvHead
from .heads.linear import LinearHead

BACKBONES = {
    "digits-cnn": DigitsCNN,
    "mlp": MLP,
    "resnet18": ResNet18,
    "resnet50": ResNet50,
    "resnet50-dilated": ResNet50Dilated,
}
HEADS = {"conv": ConvHead, "linear": LinearHead, "deeplab-aspp": ASPPHead}
ARCHS = {
    "hps": HardParameterSharing,
    "mtan": MTAN,
    "cross-stitch": CrossStitch,
    "mmoe": MMoE,
    "saliency-decoder": SaliencyDecoder,
    "cgc": CGC,
    "ple": PLE,
    "dselect-k": DSelectK,
    "ltb": LearningToBranch,
}


@mtlx.hookimpl
def mtlx_register(registry) -> None:
    for name, cls in BACKBONES.items():
        registry.backbones.register(name, cls)
    for name, cls in HEADS.items():
        registry.heads.register(name, cls)
    for name, cls in ARCHS.items():
        registry.archs.register(name, cls)


@mtlx.hookimpl
def mtlx_engine_created(engine, config) -> None:
    """LTB's temperature schedule follows the epochs of the run."""
    if isinstance(engine.model, LearningToBranch):
        engine.attach(BranchingSchedule())
