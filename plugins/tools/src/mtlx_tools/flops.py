"""Forward FLOPs of a model with fvcore, counting the ops fvcore skips.

fvcore's ``FlopCountAnalysis`` counts convolutions, matmuls, norms and a few
resizes (one multiply-add = one flop); elementwise ops (residual adds,
attention masks, sigmoid, softmax), poolings and reductions are either
unsupported (logged, counted as zero) or on its ignore list (ReLU). Here
they get handles, so architectures that differ mostly in such ops (MTAN's
masks, cross-stitch mixing) are compared fairly. Whatever still has no
handle is returned in :attr:`FlopReport.uncounted`, never dropped silently;
fvcore's own log warnings are turned off only because the report lists
the same ops.

Counting convention for the added handles: one flop per output element for
elementwise ops (three for softmax: exp, sum, divide), one per input
element for reductions and adaptive pooling, kernel-area per output element
for max/avg pooling.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import torch
from torch import nn

from mtlx.errors import ConfigError

__all__ = ["EXTRA_HANDLES", "TOP_LEVEL", "FlopReport", "count_flops"]

#: ``by_module`` key of the ops a model runs in its own ``forward`` (outside any child module).
TOP_LEVEL = "(own forward)"

#: fvcore's handle signature: (jit input values, jit output values) -> flops.
Handle = Callable[[list[Any], list[Any]], float]


def _shape(value: Any) -> list[int] | None:
    kind = value.type()
    return kind.sizes() if isinstance(kind, torch._C.TensorType) else None


def _numel(value: Any) -> int:
    shape = _shape(value)
    return math.prod(shape) if shape is not None else 0


def _per_output(scale: float = 1.0) -> Handle:
    def handle(inputs: list[Any], outputs: list[Any]) -> float:
        return scale * _numel(outputs[0])

    return handle


def _per_input(inputs: list[Any], outputs: list[Any]) -> float:
    return float(_numel(inputs[0]))


def _int_list(value: Any) -> list[int]:
    """A constant int or int-list argument of a traced op (lists are built by ``prim::ListConstruct``)."""
    constant = value.toIValue()
    if constant is None and value.node().kind() == "prim::ListConstruct":
        constant = [v.toIValue() for v in value.node().inputs()]
    return [int(v) for v in constant] if isinstance(constant, Sequence) else [int(constant)]


def _pool(inputs: list[Any], outputs: list[Any]) -> float:
    """max/avg pool: kernel-area comparisons or additions per output element."""
    kernel = _int_list(inputs[1])
    area = kernel[0] ** 2 if len(kernel) == 1 else math.prod(kernel)
    return float(area * _numel(outputs[0]))


_ELEMENTWISE = (
    "add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "neg", "abs", "pow", "sqrt", "rsqrt",
    "exp", "log", "relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "gelu", "silu", "silu_",
    "hardtanh", "hardtanh_", "leaky_relu", "leaky_relu_", "elu", "clamp", "clamp_", "clamp_min", "clamp_min_",
    "where", "maximum", "minimum",
)  # fmt: skip

#: Handles added on top of fvcore's defaults (``aten::`` op name -> handle).
EXTRA_HANDLES: dict[str, Handle] = {
    **{f"aten::{op}": _per_output() for op in _ELEMENTWISE},
    "aten::softmax": _per_output(3.0),
    "aten::log_softmax": _per_output(3.0),
    "aten::mean": _per_input,
    "aten::sum": _per_input,
    "aten::adaptive_max_pool2d": _per_input,
    "aten::adaptive_avg_pool1d": _per_input,
    "aten::max_pool2d": _pool,
    "aten::avg_pool2d": _pool,
}


@attrs.frozen
class FlopReport:
    """Forward FLOPs of one model on one input (one multiply-add = one flop).

    Attributes:
        total: flops counted for the whole forward.
        by_operator: flops per operator (``conv``, ``batch_norm``, ``mul``, ...).
        by_module: flops per direct child module of the model (``backbone``, ``heads``, ...) that
            computes anything, plus :data:`TOP_LEVEL` for ops in the model's own forward; sums to ``total``.
        uncounted: operators with no handle and how often each ran; their cost is NOT in ``total``.
        uncalled_modules: submodules that the forward never ran (e.g. unused heads).
    """

    total: int
    by_operator: dict[str, int]
    by_module: dict[str, int]
    uncounted: dict[str, int]
    uncalled_modules: tuple[str, ...] = ()

    @property
    def gflops(self) -> float:
        return self.total / 1e9

    @property
    def complete(self) -> bool:
        """True when every operator that ran was counted (or is pure data movement)."""
        return not self.uncounted


class _TupleForward(nn.Module):
    """Tracing wrapper: tensors in, a flat tuple of tensors out (jit cannot trace dict inputs)."""

    def __init__(self, model: nn.Module, input_keys: tuple[str, ...] | None):
        super().__init__()
        self.model = model
        self.input_keys = input_keys

    def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.input_keys is None:
            out = self.model(*xs)
        else:
            from mtlx.engine.step import forward  # multi-input: encode each task's input, as the engine does

            out, _ = forward(self.model, dict(zip(self.input_keys, xs, strict=True)), multi_input=True)
        if isinstance(out, torch.Tensor):
            return (out,)
        if isinstance(out, Mapping):
            return tuple(out.values())
        return tuple(out)


def _import_fvcore() -> Any:
    try:
        with warnings.catch_warnings():
            # fvcore scripts two losses at import time, which torch reports as deprecated; not our concern.
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=DeprecationWarning)
            from fvcore.nn import FlopCountAnalysis
    except ImportError:
        raise ConfigError("FLOP counting needs fvcore: pip install fvcore (a dependency of mtlx-tools)") from None
    return FlopCountAnalysis


def _module_prefix(name: str) -> str:
    return name.removeprefix("model.") if name != "model" else ""


def _runs_code(module: nn.Module | None) -> bool:
    """False for parameter holders and containers (no forward of their own), which are never "called"."""
    forward = getattr(type(module), "forward", None)
    return module is not None and forward is not nn.Module.forward and not isinstance(module, nn.Identity)


def count_flops(
    model: nn.Module, inputs: torch.Tensor | tuple[torch.Tensor, ...] | Mapping[str, torch.Tensor]
) -> FlopReport:
    """Count the forward FLOPs of ``model`` in eval mode, without gradients.

    Args:
        model: any module; a dict or tuple output is fine.
        inputs: a tensor, a tuple of positional tensors, or ``{task: tensor}``
            for a multi-input :class:`~mtlx.MultiTaskModel` (each task's input
            is encoded and decoded as the engine does).

    The model's train/eval mode is restored afterwards.
    """
    flop_count_analysis = _import_fvcore()
    if isinstance(inputs, Mapping):
        wrapper, args = _TupleForward(model, tuple(inputs)), tuple(inputs.values())
    else:
        wrapper, args = _TupleForward(model, None), (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            analysis = flop_count_analysis(wrapper, args).set_op_handle(**EXTRA_HANDLES)
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)  # reported below instead
            total = int(analysis.total())
            by_operator = {op: int(n) for op, n in analysis.by_operator().most_common()}
            by_module = {
                _module_prefix(name): int(n)
                for name, n in analysis.by_module().items()
                if name.count(".") == 1 and name.startswith("model.") and n
            }
            if total - sum(by_module.values()):
                by_module[TOP_LEVEL] = total - sum(by_module.values())
            uncounted = dict(Counter(analysis.unsupported_ops()).most_common())
            modules = dict(wrapper.named_modules())
            uncalled = tuple(
                sorted(_module_prefix(m) for m in analysis.uncalled_modules() if _runs_code(modules.get(m)))
            )
    finally:
        model.train(was_training)
    return FlopReport(
        total=total, by_operator=by_operator, by_module=by_module, uncounted=uncounted, uncalled_modules=uncalled
    )
