"""Periodic evaluation and best-model tracking."""

from __future__ import annotations

import math
from typing import Any

from ..engine import Engine, Handler, State
from ..engine.evaluation import summarize

__all__ = ["EvaluationHandler", "evaluation_due"]


def evaluation_due(state: State, every: int) -> bool:
    """Whether the epoch that just completed is evaluated: every ``every`` epochs and the last one."""
    last = state.epoch + 1 >= state.max_epochs or state.steps_done
    return last or (state.epoch + 1) % every == 0


class EvaluationHandler(Handler):
    """Evaluates ``split`` every ``every`` epochs and after the last one; tracks the best.

    Schedule: EPOCH_COMPLETED every ``every`` epochs and the final one. The selection
    score is ``delta_m_task`` against the dataset's single-task baseline; without
    one, Delta_m against the first evaluation (LibMTL's fallback, used for
    selection only). ``state.best`` holds the best epoch, step, score and metrics.
    """

    def __init__(self, split: str, every: int = 1):
        self.split = split
        self.every_n = every
        self._reference: dict[str, dict[str, float]] | None = None

    def epoch_completed(self, engine: Engine) -> None:
        state = engine.state
        if not evaluation_due(state, self.every_n):
            return
        metrics = engine.evaluate(self.split)
        score = self.score(engine, metrics)
        if state.best is None or score > state.best["score"] or math.isnan(state.best["score"]):
            state.best = {"epoch": state.epoch, "iteration": state.iteration, "score": score, "metrics": metrics}

    def score(self, engine: Engine, metrics: dict[str, dict[str, float]]) -> float:
        summary = engine.state.summary.get(self.split, {})
        if "delta_m_task" in summary:
            return summary["delta_m_task"]
        if self._reference is None:
            self._reference = {t: dict(m) for t, m in metrics.items()}
        ref = {t: {k: v for k, v in m.items() if v not in (0.0,) and not math.isnan(v)} for t, m in self._reference.items()}
        return summarize(metrics, {t: m for t, m in ref.items() if m}, engine.tasks).get("delta_m_task", 0.0)

    def state_dict(self) -> dict[str, Any] | None:
        return {"reference": self._reference}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._reference = state["reference"]

