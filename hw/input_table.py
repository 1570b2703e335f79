"""Input table: each uint8 sample becomes its 8-bit code, ``table[channel][sample]``.

An imported network's input quantiser (``2x - 1`` rounded to Q1.7, a driver's own rounding) is a
function of the pixel that no selection of its bits gives; the checkpoint carries it as a table of
256 codes per colour channel, and the slicer behind this engine takes its planes from the codes.

Combinational: one 256-entry ROM per lane and channel, read asynchronously (LUTs: on a 6-input
LUT part about five per code bit, fewer for the bits the slicer drops, which synthesis removes),
so it adds no cycle and the cycle model is unchanged. It sits between the input skid buffer's
registers and the slicer, so the lookup has the whole clock period to itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["InputTable", "lane_channels", "table_luts"]


def lane_channels(channels: int, pixels_per_beat: int) -> list[int] | None:
    """The fixed colour channel of each lane of a beat, or None when it moves from beat to beat
    (``pixels_per_beat`` not a multiple of ``channels``: samples run HWC across beats)."""
    if pixels_per_beat % channels:
        return None
    return [j % channels for j in range(pixels_per_beat)]


def table_luts(channels: int, pixels_per_beat: int, kept_bits: int) -> int:
    """LUT6 estimate: per lane and code bit kept, a 256-entry ROM (4 LUT6, the muxes in the slice's
    MUXF7/F8) per table the lane may read."""
    per_lane = 1 if lane_channels(channels, pixels_per_beat) is not None else channels
    return pixels_per_beat * kept_bits * 4 * per_lane


class InputTable(wiring.Component):
    """Ports
    -----
    ``sink``:   In(stream.Signature(8 * PPB)) -- uint8 samples, sample j of a beat in bits 8j..8j+7.
    ``source``: Out(stream.Signature(8 * PPB)) -- their codes, same layout; valid and ready pass
                straight through.
    """

    def __init__(self, table: Sequence[Sequence[int]], pixels_per_beat: int) -> None:
        self.table = tuple(tuple(int(v) for v in row) for row in table)
        if not self.table or any(len(row) != 256 or not all(0 <= v <= 255 for v in row) for row in self.table):
            raise ValueError("InputTable needs one row of 256 codes in 0..255 per colour channel")
        if isinstance(pixels_per_beat, bool) or not isinstance(pixels_per_beat, int) or pixels_per_beat < 1:
            raise ValueError(f"pixels_per_beat must be a positive integer, not {pixels_per_beat!r}")
        self.pixels_per_beat = pixels_per_beat
        super().__init__({
            "sink": In(stream.Signature(8 * pixels_per_beat)),
            "source": Out(stream.Signature(8 * pixels_per_beat)),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        channels, ppb = len(self.table), self.pixels_per_beat
        fixed = lane_channels(channels, ppb)
        m.d.comb += [self.source.valid.eq(self.sink.valid), self.sink.ready.eq(self.source.ready)]
        if fixed is None:
            # The channel of lane 0 this beat: samples are HWC, so it advances by PPB mod C a beat.
            phase = Signal(range(channels), name="phase")
            with m.If(self.sink.valid & self.sink.ready):
                m.d.sync += phase.eq((phase + ppb % channels) % channels)
        codes = []
        for j in range(ppb):
            sample = self.sink.payload[8 * j:8 * j + 8]
            if fixed is not None:
                rom = Memory(shape=8, depth=256, init=self.table[fixed[j]])
                addr = sample
            else:
                # One ROM over every channel's table, indexed by (channel of this lane, sample).
                rom = Memory(shape=8, depth=256 * channels, init=[v for row in self.table for v in row])
                lane_channel = Signal(range(channels), name=f"channel{j}")
                m.d.comb += lane_channel.eq((phase + j) % channels)
                addr = Cat(sample, lane_channel)
            m.submodules[f"table{j}"] = rom
            port = rom.read_port(domain="comb")
            m.d.comb += port.addr.eq(addr)
            codes.append(port.data)
        m.d.comb += self.source.payload.eq(Cat(*codes))
        return m
