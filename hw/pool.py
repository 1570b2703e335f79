"""Binary max-pool: OR over SxS windows at stride S, one pixel stream in and one out.

Engine module: :class:`PoolSpec`, :class:`MaxPool` (component), :class:`PoolModel`
(cycle model), :func:`estimate_pool` (resources).

Input pixels arrive in raster order, one per beat; pixels beyond the last whole
window (row >= OH*S or column >= OW*S, OH = H // S, OW = W // S) are taken and
dropped, the floor PyTorch's ``max_pool2d`` applies. Within a window row the unit
ORs S pixels into a register; a row memory of OW words (one per output column)
ORs the S window rows; the last pixel of a window emits the pooled pixel. Every
input pixel takes one cycle, so the pool never sets the pace.

Ports
-----
``sink``:   In(stream.Signature(C)) -- one pixel per beat, channel c in bit c.
``source``: Out(stream.Signature(C)) -- one pooled pixel per beat, raster order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .spec import bits_for, check_identifier, check_int
from .window import lutram_luts

__all__ = ["PoolSpec", "MaxPool", "PoolModel", "estimate_pool"]


@dataclass(frozen=True)
class PoolSpec:
    """SxS binary max-pool of an (H, W, C) bit map (S >= 2, at most the map)."""

    name: str
    height: int
    width: int
    channels: int
    size: int

    def __post_init__(self) -> None:
        check_identifier("Pool name", self.name)
        for key in ("height", "width", "channels"):
            check_int(f"Pool {self.name}: {key}", getattr(self, key), 1)
        check_int(f"Pool {self.name}: size", self.size, 2, min(self.height, self.width))

    @property
    def out_height(self) -> int:
        return self.height // self.size

    @property
    def out_width(self) -> int:
        return self.width // self.size

    @property
    def sink_bits(self) -> int:
        return self.channels

    @property
    def sink_beats(self) -> int:
        return self.height * self.width

    @property
    def source_bits(self) -> int:
        return self.channels

    @property
    def source_beats(self) -> int:
        return self.out_height * self.out_width


class MaxPool(wiring.Component):
    """The pool of a :class:`PoolSpec` (see the module docstring for ports and timing)."""

    def __init__(self, spec: PoolSpec) -> None:
        if not isinstance(spec, PoolSpec):
            raise TypeError(f"MaxPool spec must be a PoolSpec, not {spec!r}")
        self.spec = spec
        super().__init__({
            "sink": In(stream.Signature(spec.channels)),
            "source": Out(stream.Signature(spec.channels)),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        s = self.spec
        size, c = s.size, s.channels
        row = Signal(range(s.height))
        col = Signal(range(s.width))
        kx = Signal(range(size))             # column inside the window
        ky = Signal(range(size))             # row inside the window
        j = Signal(range(s.out_width + 1))   # output column; OW past the last whole window
        row_in = Signal(init=1)              # row < OH*S (registered with the position)
        across = Signal(c)                   # OR of the window row so far
        out = Signal(c)
        out_valid = Signal()

        lines = Memory(shape=c, depth=max(2, s.out_width), init=[], attrs={"ram_style": "distributed"})
        m.submodules.lines = lines
        rd = lines.read_port(domain="sync")
        wr = lines.write_port()

        in_window = row_in & (j < s.out_width)
        closes = in_window & (kx == size - 1)     # last pixel of a window row
        emits = closes & (ky == size - 1)         # last pixel of the window
        take = Signal()
        m.d.comb += [
            self.sink.ready.eq(~emits | ~out_valid | self.source.ready),
            take.eq(self.sink.valid & self.sink.ready),
            self.source.valid.eq(out_valid),
            self.source.payload.eq(out),
        ]
        # The row word of window j is addressed from the window's first pixel on, so it is
        # there (one cycle later) by its last pixel: S >= 2 pixels, at least one cycle apart.
        m.d.comb += rd.addr.eq(j)
        pooled = Mux(kx == 0, 0, across) | self.sink.payload
        with_rows = Mux(ky == 0, 0, rd.data) | pooled
        m.d.comb += [wr.addr.eq(j), wr.data.eq(with_rows), wr.en.eq(take & closes & (ky != size - 1))]

        with m.If(take):
            m.d.sync += across.eq(pooled)
            last_col = col == s.width - 1
            with m.If(last_col):
                m.d.sync += [col.eq(0), kx.eq(0), j.eq(0)]
                last_row = row == s.height - 1
                m.d.sync += [
                    row.eq(Mux(last_row, 0, row + 1)),
                    ky.eq(Mux(last_row | (ky == size - 1), 0, ky + 1)),
                    row_in.eq(last_row | (row + 1 < s.out_height * size)),
                ]
            with m.Else():
                m.d.sync += [col.eq(col + 1), kx.eq(Mux(kx == size - 1, 0, kx + 1))]
                with m.If(kx == size - 1):
                    m.d.sync += j.eq(j + 1)
            with m.If(emits):
                m.d.sync += [out.eq(with_rows), out_valid.eq(1)]
            with m.Elif(self.source.ready):
                m.d.sync += out_valid.eq(0)
        with m.Elif(self.source.ready):
            m.d.sync += out_valid.eq(0)
        return m


class PoolModel:
    """The pool's control, clock for clock (see :mod:`bnn2fpga.hw.cycles`)."""

    def __init__(self, spec: PoolSpec) -> None:
        self.spec = spec
        self.row = self.col = 0
        self.out = False

    def _emits(self) -> bool:
        s = self.spec
        return (self.row < s.out_height * s.size and self.col < s.out_width * s.size
                and self.row % s.size == s.size - 1 and self.col % s.size == s.size - 1)

    def out_valid(self) -> bool:
        return self.out

    def in_ready(self, out_ready: bool) -> bool:
        return not self._emits() or not self.out or out_ready

    def clock(self, in_valid: bool, in_fire: bool, out_fire: bool) -> None:
        if in_fire and self._emits():
            self.out = True
        elif out_fire:
            self.out = False
        if in_fire:
            self.col += 1
            if self.col == self.spec.width:
                self.col = 0
                self.row = (self.row + 1) % self.spec.height


def estimate_pool(spec: PoolSpec) -> dict[str, float]:
    """LUT6 / FF / BRAM of one pool (calibrated against Yosys synth_xilinx)."""
    c = spec.channels
    counters = bits_for(spec.height) + bits_for(spec.width) + 2 * bits_for(spec.size) + bits_for(spec.out_width)
    ff = 3 * c + counters + 2
    # OR logic, output and row-memory write data (~2.5 LUT per channel including the LUTRAM rows
    # while OW <= 32), counters and handshake; wider rows need more LUTRAM.
    lut = math.ceil(2.5 * c) + 24 + (lutram_luts(spec.out_width, c) if spec.out_width > 32 else 0)
    return {"lut": lut, "ff": ff, "bram18": 0, "bram36": 0.0, "line_buffer": "distributed"}
