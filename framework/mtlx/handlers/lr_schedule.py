"""Steps an epoch-based LR scheduler."""

from __future__ import annotations

from ..engine import Engine, Handler

__all__ = ["LRSchedulerHandler"]


class LRSchedulerHandler(Handler):
    """Calls ``engine.scheduler.step()`` at EPOCH_COMPLETED (StepLR, cosine: per-epoch schedules)."""

    def epoch_completed(self, engine: Engine) -> None:
        if engine.scheduler is not None:
            engine.scheduler.step()
