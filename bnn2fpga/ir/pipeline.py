"""The lowering pipeline as one ordered list of named steps, verified after each."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..checkpoint import Checkpoint
from .frontend import from_checkpoint
from .graph import Graph
from .normalize import normalize_thresholds
from .thresholds import fold_batchnorm
from .verify import IRError, verify

Pass = Callable[[Graph], Graph]

# The integer model that reference.py executes.
INTEGER_STEPS: tuple[tuple[str, Pass], ...] = (
    ("fold_batchnorm", fold_batchnorm),
)
# What the hardware sees: one comparison direction.
HARDWARE_STEPS: tuple[tuple[str, Pass], ...] = INTEGER_STEPS + (
    ("normalize_thresholds", normalize_thresholds),
)


def run(graph: Graph, steps: Sequence[tuple[str, Pass]]) -> Graph:
    verify(graph)
    for name, step in steps:
        try:
            graph = verify(step(graph))
        except IRError as e:
            raise IRError(f"after step {name}: {e}") from None
    return graph


def lower(ckpt: Checkpoint, steps: Sequence[tuple[str, Pass]] = INTEGER_STEPS) -> Graph:
    return run(from_checkpoint(ckpt), steps)
