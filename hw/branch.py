"""A branch: one pixel stream forked into parallel paths of engines and joined again.

The fork offers each pixel to every path at once and hands it over when all of them take it; each
path starts with a pixel FIFO, sized so that a path which emits its first pixel late (a window unit
waits for K-1 rows) never holds the others up for good; the join waits for a pixel from every path
and puts their concatenation (path 0 in the low bits) into a skid buffer. The paths are ordinary
engine chains, so a branch nests inside another branch's path, and a join of another kind (an add)
is one more engine of the same shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from amaranth.hdl import Cat, Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .cycles import CycleModel, chain_readies, clock_chain
from .spec import check_identifier, check_int
from .stream import FifoModel, FifoSpec, SkidBuffer

__all__ = ["BranchSpec", "Branch", "BranchModel", "estimate_branch"]


@dataclass(frozen=True, eq=False)
class BranchSpec:
    """``beats`` pixels of ``width`` bits a frame, forked into ``paths``, joined by concatenation.

    Each path is a chain of engine specs starting with its :class:`~.stream.FifoSpec` (the pixels
    pass the fork into it); every path ends in the same number of pixels a frame, and the joined
    pixel holds the paths' pixels in path order, path 0 in the low bits."""

    name: str
    width: int
    beats: int
    paths: tuple[tuple[Any, ...], ...]

    def __post_init__(self) -> None:
        check_identifier("Branch name", self.name)
        check_int(f"Branch {self.name}: width", self.width, 1)
        check_int(f"Branch {self.name}: beats", self.beats, 1)
        paths = tuple(tuple(path) for path in self.paths)
        object.__setattr__(self, "paths", paths)
        if len(paths) < 2:
            raise ValueError(f"Branch {self.name}: needs at least two paths, not {len(paths)}")
        for i, path in enumerate(paths):
            if not path or not isinstance(path[0], FifoSpec):
                raise ValueError(f"Branch {self.name}: path {i} must start with its FifoSpec")
            stream_in = (self.width, self.beats)
            for engine in path:
                if (engine.sink_bits, engine.sink_beats) != stream_in:
                    raise ValueError(f"Branch {self.name}, path {i}: {engine.name} takes {engine.sink_beats} beats "
                                     f"of {engine.sink_bits} bits per frame, it is given {stream_in[1]} of "
                                     f"{stream_in[0]}")
                stream_in = (engine.source_bits, engine.source_beats)
        ends = {path[-1].source_beats for path in paths}
        if len(ends) != 1:
            raise ValueError(f"Branch {self.name}: its paths end in {sorted(ends)} pixels a frame; the join "
                             "needs one pixel from every path")

    @property
    def sink_bits(self) -> int:
        return self.width

    @property
    def sink_beats(self) -> int:
        return self.beats

    @property
    def source_bits(self) -> int:
        return sum(path[-1].source_bits for path in self.paths)

    @property
    def source_beats(self) -> int:
        return self.paths[0][-1].source_beats


class Branch(wiring.Component):
    """The fork, the paths' engines and the join of a :class:`BranchSpec`.

    Ports
    -----
    ``sink``:   In(stream.Signature(width)) -- ready when every path's FIFO has room (registers).
    ``source``: Out(stream.Signature(source_bits)) -- the joined pixel, from a skid buffer:
                ``valid`` and ``payload`` are registers, and ``ready`` reaches no path.

    ``paths``: per path, (submodule name, component) of each engine, in the spec's order.
    """

    def __init__(self, spec: BranchSpec, paths: Sequence[Sequence[tuple[str, wiring.Component]]]) -> None:
        if not isinstance(spec, BranchSpec):
            raise TypeError(f"Branch spec must be a BranchSpec, not {spec!r}")
        if [len(path) for path in paths] != [len(path) for path in spec.paths]:
            raise ValueError(f"Branch {spec.name}: give one component per engine of every path")
        self.spec = spec
        self.paths = [list(path) for path in paths]
        super().__init__({
            "sink": In(stream.Signature(spec.width)),
            "source": Out(stream.Signature(spec.source_bits)),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        heads = [path[0][1] for path in self.paths]
        tails = [path[-1][1] for path in self.paths]
        for i, path in enumerate(self.paths):
            for name, engine in path:
                m.submodules[f"path{i}_{name}"] = engine
            for (_, producer), (_, consumer) in zip(path, path[1:], strict=False):
                wiring.connect(m, producer.source, consumer.sink)
        # Fork: a pixel goes into every path in the same cycle. Each head's valid excludes its own
        # ready, so no ready depends on a valid (the heads are FIFOs whose ready is a register).
        for i, head in enumerate(heads):
            others = [h.sink.ready for j, h in enumerate(heads) if j != i]
            m.d.comb += [head.sink.payload.eq(self.sink.payload),
                         head.sink.valid.eq(self.sink.valid & Cat(*others).all())]
        m.d.comb += self.sink.ready.eq(Cat(*(h.sink.ready for h in heads)).all())
        # Join: one pixel from every path into a skid buffer, whose ready is a register: no consumer's
        # ready reaches into the paths (a pool behind the join put its window logic in front of
        # every path's last engine: seven LUT levels in Yosys).
        m.submodules.join = join = SkidBuffer(self.spec.source_bits)
        all_valid = Cat(*(t.source.valid for t in tails)).all()
        m.d.comb += [
            join.sink.valid.eq(all_valid),
            join.sink.payload.eq(Cat(*(t.source.payload for t in tails))),
        ]
        for tail in tails:
            m.d.comb += tail.source.ready.eq(all_valid & join.sink.ready)
        wiring.connect(m, join.source, wiring.flipped(self.source))
        return m


class BranchModel:
    """The branch's handshakes clock for clock: the fork, each path's chain of models, the join's
    skid buffer (a two-entry FIFO, :func:`~.stream.skid_model`)."""

    def __init__(self, paths: Sequence[Sequence[CycleModel]]) -> None:
        self.paths = [list(path) for path in paths]
        self.join = FifoModel(2)
        self._readies: list[list[bool]] = []
        self._take = False

    def out_valid(self) -> bool:
        return self.join.out_valid()

    def in_ready(self, out_ready: bool) -> bool:
        self._take = all(path[-1].out_valid() for path in self.paths) and self.join.in_ready(out_ready)
        self._readies = [chain_readies(path, self._take) for path in self.paths]
        return all(readies[0] for readies in self._readies)

    def clock(self, in_valid: bool, in_fire: bool, out_fire: bool) -> None:
        heads = [readies[0] for readies in self._readies]
        for i, (path, readies) in enumerate(zip(self.paths, self._readies, strict=True)):
            head_valid = in_valid and all(r for j, r in enumerate(heads) if j != i)
            clock_chain(path, head_valid, readies, self._take)
        self.join.clock(self._take, self._take, out_fire)


def estimate_branch(spec: BranchSpec, paths: Sequence[Sequence[dict[str, Any]]]) -> dict[str, Any]:
    """The paths' engines (their estimates in ``paths``, kept under ``"paths"`` for the report) and
    the fork and join: the join's skid buffer and an AND of the readies or valids per path."""
    engines = [e for path in paths for e in path]
    total: dict[str, Any] = {key: sum(e[key] for e in engines) for key in ("lut", "ff", "bram18", "bram36")}
    # The join's skid buffer: two registers and a 2:1 multiplexer per bit, two flags.
    total["lut"] += spec.source_bits + 2 * len(spec.paths) + 2
    total["ff"] += 2 * spec.source_bits + 2
    total["paths"] = [list(path) for path in paths]
    return total
