"""Private random streams for the randomised strategies (RLW, PCGrad, GradVac, GradDrop).

Each such strategy owns a ``torch.Generator`` whose state is part of its
``state_dict``, so a resumed run draws exactly the numbers the uninterrupted
run would have drawn, whatever else consumes the global RNG.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch

__all__ = ["Seeded", "drawing_from", "new_generator"]


def new_generator(seed: int | None) -> torch.Generator:
    """A CPU generator seeded with ``seed``, or from the global RNG (so ``train.seed`` decides) when None."""
    if seed is None:
        seed = int(torch.randint(0, 2**62, ()).item())
    return torch.Generator().manual_seed(seed)


@contextmanager
def drawing_from(generator: torch.Generator) -> Iterator[None]:
    """Make code that draws from torch's global CPU RNG (torchjd's PCGrad) draw from ``generator``.

    The global RNG is restored afterwards and ``generator`` advances by what was drawn.
    """
    with torch.random.fork_rng(devices=[]):
        torch.set_rng_state(generator.get_state())
        yield
        generator.set_state(torch.get_rng_state())


class Seeded:
    """Mixin for strategies with a ``Config.seed``: ``self.generator``, saved in ``state_dict``."""

    generator: torch.Generator

    def _init_generator(self, seed: int | None) -> None:
        self.generator = new_generator(seed)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()  # type: ignore[misc]
        state["generator"] = self.generator.get_state()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)  # type: ignore[misc]
        self.generator.set_state(state["generator"])
