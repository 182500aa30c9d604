"""Model analysis: FLOP counting (fvcore, made complete with extra op handles).

fvcore is an optional dependency (``pip install mtlx[profile]``); it is
imported only when a count is requested.
"""

from .flops import FlopReport, count_flops

__all__ = ["FlopReport", "count_flops"]
