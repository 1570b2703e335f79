"""What a build's weight memories must hold: the checkpoint's weights packed by this version, for the
folding the build recorded. ``bnn2fpga sim`` compares them with the build's ``.mem`` files before the
first image, so a changed weight file is caught by name, not as a mismatch deep in a simulation."""

from __future__ import annotations

from typing import Any

from ..checkpoint import Checkpoint
from ..hw.generate import memory_files
from ..ir.pipeline import HARDWARE_STEPS, lower
from .folding import Folding, FoldingError
from .lowering import layer_shapes, pixel_stream, samples_per_frame, to_spec

__all__ = ["expected_memories", "differing_memories"]


def expected_memories(checkpoint: Checkpoint, folding: dict[str, Any]) -> dict[str, str]:
    """The ``.mem`` files, by name, that a build of ``checkpoint`` with ``folding`` (its manifest's) writes."""
    graph = lower(checkpoint, HARDWARE_STEPS)
    pixel = graph.input.channels if pixel_stream(graph) else None
    fold = Folding.from_json(folding, layer_shapes(graph), samples_per_frame(graph), "manifest.json folding", pixel)
    return memory_files(to_spec(graph, fold))


def differing_memories(checkpoint: Checkpoint, folding: dict[str, Any], files: dict[str, str]) -> list[str]:
    """Each ``.mem`` of ``files`` (name -> text) that is not what ``checkpoint`` packs to, or that the build
    should hold and does not, with the first line that differs."""
    try:
        expected = expected_memories(checkpoint, folding)
    except FoldingError as e:
        return [f"the recorded folding does not fit the checkpoint ({e})"]
    problems = []
    for name in sorted(set(expected) | set(files)):
        want, have = expected.get(name), files.get(name)
        if want is None:
            problems.append(f"{name} (the checkpoint has no such ROM)")
        elif have is None:
            problems.append(f"{name} (not in the build)")
        elif want != have:
            pairs = zip(want.splitlines(), have.splitlines(), strict=False)
            line = next((i for i, (a, b) in enumerate(pairs, 1) if a != b),
                        min(len(want.splitlines()), len(have.splitlines())) + 1)
            problems.append(f"{name} (line {line})")
    return problems
