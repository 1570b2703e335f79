"""The candidates `explore` trains: one architecture each (hidden widths, kept input planes), by method.

Seed methods and controls, all derived from the input checkpoint's architecture:

* ``uniform``: every hidden width scaled by one multiplier (the control at equal cost);
* ``flip``: weight-flipping frequency (Li & Ren): per-layer widths from the input's flip fractions
  ``p_l``, scaled to keep a fraction of its binary operations;
* ``bitslice``: the ``k`` most significant input planes kept (CBNN), full widths;
* ``flip+bitslice``: both;
* ``random``: per-layer widths from random fractions at the same binop targets as flip (the
  control flip must beat);
* ``hardware`` (ours): per-layer widths chosen by the engines' resource and cycle models, within a
  given budget (each uniform candidate's cost: equal hardware cost). Two searches, and the one whose
  widths keep more of the network wins, counted as the sum of the layers' log widths (so giving up
  the same share of any layer's width counts the same):

  - *descent* from the input: narrow one layer at a time by an eighth, always the one whose narrowing
    saves the most LUT and block RAM (at the target frame rate, the cheapest folding) per share of
    its width, until the design costs no more than the budget; the greedy choice is the layer the
    rate makes most expensive. (Counting the step's loss in binary operations instead, as a first
    version did, starved the small layers: a layer of 7 channels loses few binops, so it was cut
    first.)
  - *exchange* from the uniform control at the same cost: widen one layer by an eighth, narrowing
    another where the budget needs it, while the sum of log widths grows. The descent alone is
    myopic where costs are products of neighbouring widths: cutting a middle layer saves on both
    sides while the wide first layer is still to be narrowed, and it cannot undo the cut. sfc at
    uniform x0.25's cost went to 64, 10, 10 (75.5 % against uniform's 83.6 %); the exchange found
    56, 256, 256 (84.0 %).

  No layer is narrowed below the number of classes: a binary layer narrower than that is a
  bottleneck the output cannot rank the classes through (sfc at uniform x0.25's cost went to widths
  64, 1, 1 and 18.7 % without this floor).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..nn.models import binops, classes, hidden_widths
from ..prune.bitslice import msb_planes, shrink
from ..prune.flip import widths_for_target, with_widths

__all__ = ["Candidate", "METHODS", "SEED_METHODS", "uniform", "flip", "bitslice", "flip_bitslice", "random_widths",
           "hardware_aware", "capacity", "content_key"]

#: Every method, in the order the table lists them.
METHODS = ("base", "uniform", "flip", "bitslice", "flip+bitslice", "random", "hardware")
#: The two papers' methods (marked in the plots).
SEED_METHODS = ("flip", "bitslice", "flip+bitslice")

Architecture = dict[str, Any]


def content_key(value: object) -> str:
    """A short digest of ``value``'s canonical JSON: the same content, the same key, in any run."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Candidate:
    method: str
    label: str
    arch: Architecture = field(compare=False, hash=False)

    @property
    def key(self) -> str:
        return content_key(self.arch)

    @property
    def widths(self) -> list[int]:
        return hidden_widths(self.arch)

    @property
    def planes(self) -> list[int]:
        return list(self.arch["input"]["planes"])


def uniform(arch: Architecture, multiplier: float) -> Candidate:
    return Candidate("uniform", f"uniform x{multiplier:g}", shrink(arch, arch["input"]["planes"], multiplier))


def flip(arch: Architecture, p: Sequence[float], fraction: float) -> Candidate:
    widths, _ = widths_for_target(arch, p, fraction * binops(arch))
    return Candidate("flip", f"flip {fraction:.0%} binops", with_widths(arch, widths))


def bitslice(arch: Architecture, keep: int) -> Candidate:
    planes = msb_planes(arch["input"]["planes"], keep)
    return Candidate("bitslice", f"bitslice {keep} plane{'s' if keep > 1 else ''}", shrink(arch, planes, 1.0))


def flip_bitslice(arch: Architecture, p: Sequence[float], fraction: float, keep: int) -> Candidate:
    """Planes first, then flip's widths at ``fraction`` of the *input's* binops."""
    sliced = bitslice(arch, keep).arch
    widths, _ = widths_for_target(sliced, p, fraction * binops(arch))
    return Candidate("flip+bitslice", f"flip {fraction:.0%} + {keep} plane{'s' if keep > 1 else ''}",
                     with_widths(sliced, widths))


def random_widths(arch: Architecture, fraction: float, seed: int) -> Candidate:
    """Widths from uniformly random per-layer fractions, scaled (as flip's are) to ``fraction`` of the binops."""
    rng = random.Random(f"{seed}:{fraction}")
    p = [rng.random() for _ in hidden_widths(arch)]
    widths, _ = widths_for_target(arch, p, fraction * binops(arch))
    return Candidate("random", f"random {fraction:.0%} binops", with_widths(arch, widths))


def hardware_aware(arch: Architecture, budget: float, cost: Callable[[Architecture], float], *,
                   label: str, start: Sequence[int] | None = None, step: float = 0.125,
                   max_steps: int = 400) -> Candidate | None:
    """Width allocation under a hardware budget (the module's docstring): the better of the descent
    from ``arch`` and the exchange from ``start`` (the uniform control's widths, costing no more than
    ``budget``); None when even the narrowest widths (as many channels as classes) cost more.
    ``cost`` is the design's cost at the target rate, ``inf`` where no folding reaches it."""
    found = [w for w in (_descend(arch, budget, cost, step, max_steps),
                         _exchange(arch, start, budget, cost, step, max_steps) if start is not None else None)
             if w is not None]
    if not found:
        return None
    widths = max(found, key=capacity)  # the descent first: it wins a tie
    return Candidate("hardware", label, with_widths(arch, widths))


def capacity(widths: Sequence[int]) -> float:
    """What the hardware-aware searches keep: the sum of the layers' log widths."""
    return sum(math.log(w) for w in widths)


def _narrowed(width: int, narrowest: int, step: float) -> int:
    """One step narrower (a ``step`` share of the width), never below ``narrowest``."""
    return max(narrowest, math.floor(width * (1 - step)))


def _descend(arch: Architecture, budget: float, cost: Callable[[Architecture], float], step: float,
             max_steps: int) -> list[int] | None:
    widths = hidden_widths(arch)
    narrowest = classes(arch)
    current = cost(arch)
    for _ in range(max_steps):
        if current <= budget:
            return widths
        best: tuple[float, list[int], float] | None = None
        for layer, width in enumerate(widths):
            if width <= narrowest:
                continue
            trial = list(widths)
            trial[layer] = _narrowed(width, narrowest, step)
            trial_cost = cost(with_widths(arch, trial))
            if math.isinf(current):  # nothing fits yet: any step towards fitting, the cheapest first
                score = -trial_cost if math.isfinite(trial_cost) else -math.inf
            else:  # cost saved per share of the layer's width given up
                score = (current - trial_cost) / math.log(width / trial[layer])
            if best is None or score > best[0]:
                best = (score, trial, trial_cost)
        if best is None:
            return None
        _, widths, current = best
    return None


def _exchange(arch: Architecture, start: Sequence[int], budget: float, cost: Callable[[Architecture], float],
              step: float, max_steps: int) -> list[int] | None:
    widths = list(start)
    if cost(with_widths(arch, widths)) > budget:
        return None
    full = hidden_widths(arch)
    narrowest = classes(arch)
    for _ in range(max_steps):
        best: tuple[float, list[int]] | None = None
        for wider in range(len(widths)):
            grown = min(full[wider], math.ceil(widths[wider] / (1 - step)))
            if grown == widths[wider]:
                continue
            for narrower in [None, *range(len(widths))]:  # widen alone, or pay with another layer
                trial = list(widths)
                trial[wider] = grown
                if narrower is not None:
                    if narrower == wider or widths[narrower] <= narrowest:
                        continue
                    trial[narrower] = _narrowed(widths[narrower], narrowest, step)
                gain = capacity(trial) - capacity(widths)
                if gain > 1e-9 and (best is None or gain > best[0]) and cost(with_widths(arch, trial)) <= budget:
                    best = (gain, trial)
        if best is None:
            return widths
        widths = best[1]
    return widths
