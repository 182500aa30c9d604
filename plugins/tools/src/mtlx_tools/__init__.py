"""mtlx-tools: research tooling on top of mtlx, added to the CLI through the ``mtlx_commands`` hook.

``mtlx report`` (tables and plots across runs), ``mtlx analyze powerlaw``
(HT-SR exponents of trained weights) and ``mtlx profile`` (parameters, FLOPs,
time per engine step, memory); :func:`count_flops` for use in code.
"""

from .flops import FlopReport, count_flops

__all__ = ["FlopReport", "count_flops"]
