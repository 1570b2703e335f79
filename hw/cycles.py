"""Cycle-level composition of engine models: the exact timing of any engine chain.

Every engine owns a small cycle model (:class:`CycleModel`) that mirrors its
control registers and handshake logic, but not its data. The chain is evaluated
one clock cycle at a time with the same discipline as the hardware:

1. each engine's ``out_valid`` comes from its registers only (no engine's valid
   depends combinationally on its input), so valids are known first;
2. ``ready`` flows upstream: engine k's ``in_ready`` may depend on its own
   ``out_ready``, which is engine k+1's ``in_ready`` (the last engine's is the
   output port's tready);
3. a beat moves where valid and ready meet, then every model takes the clock.

With ``s_axis_tvalid`` and ``m_axis_tready`` always high this gives, for every
frame, the cycle of its first input handshake and of its first output
handshake: the simulators must measure exactly these numbers. Dense chains
also have a closed form (``timing.predict``); conv chains, whose engines
exchange pixels with row-dependent gaps, are evaluated here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["CycleModel", "ChainTimes", "chain_readies", "clock_chain", "run_chain"]


class CycleModel(Protocol):
    def out_valid(self) -> bool:
        """Whether the engine offers an output beat this cycle (from registers only)."""

    def in_ready(self, out_ready: bool) -> bool:
        """Whether the engine takes an input beat this cycle, given its consumer's ready."""

    def clock(self, in_valid: bool, in_fire: bool, out_fire: bool) -> None:
        """Advance one clock edge after this cycle's handshakes (``in_valid``: the producer's valid)."""


@dataclass(frozen=True)
class ChainTimes:
    """Handshake cycles of the first input beat and the first output beat of every frame."""

    first_in: tuple[int, ...]
    first_out: tuple[int, ...]

    @property
    def latency(self) -> int:
        return self.first_out[0] - self.first_in[0]

    @property
    def intervals(self) -> tuple[int, ...]:
        return tuple(b - a for a, b in zip(self.first_out, self.first_out[1:], strict=False))


def chain_readies(models: Sequence[CycleModel], out_ready: bool) -> list[bool]:
    """Each model's ``in_ready`` this cycle, from the last (given ``out_ready``) back to the first."""
    readies = [False] * len(models)
    ready = out_ready
    for k in range(len(models) - 1, -1, -1):
        readies[k] = ready = models[k].in_ready(ready)
    return readies


def clock_chain(models: Sequence[CycleModel], in_valid: bool, readies: Sequence[bool], out_fire: bool) -> bool:
    """Clock every model of a chain after this cycle's handshakes (``readies`` from :func:`chain_readies`,
    ``out_fire``: the last model's beat leaves); whether a beat entered the chain."""
    valids = [in_valid] + [m.out_valid() for m in models]
    # fires[k]: the beat from producer k-1 (k = 0: the chain's input) into model k; fires[n]: the output.
    fires = [valids[k] and readies[k] for k in range(len(models))] + [out_fire]
    for k, model in enumerate(models):
        model.clock(valids[k], fires[k], fires[k + 1])
    return fires[0]


def run_chain(models: Sequence[CycleModel], in_beats: int, out_beats: int, frames: int,
              max_cycles: int = 50_000_000) -> ChainTimes:
    """Feed ``frames`` frames of ``in_beats`` beats into the chain, always valid and always ready."""
    models = list(models)
    total_in, total_out = frames * in_beats, frames * out_beats
    sent = received = 0
    first_in: list[int] = []
    first_out: list[int] = []
    cycle = 0
    while received < total_out:
        if cycle >= max_cycles:
            raise RuntimeError(f"cycle model made no progress: {received} of {total_out} output beats after "
                               f"{max_cycles} cycles")
        out_fire = models[-1].out_valid()  # m_axis_tready always high
        readies = chain_readies(models, True)
        if clock_chain(models, sent < total_in, readies, out_fire):
            if sent % in_beats == 0:
                first_in.append(cycle)
            sent += 1
        if out_fire:
            if received % out_beats == 0:
                first_out.append(cycle)
            received += 1
        cycle += 1
    return ChainTimes(tuple(first_in), tuple(first_out))
