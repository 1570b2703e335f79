"""Input bit slicer: keep the surviving bit planes of raw uint8 samples."""

from __future__ import annotations

from amaranth.hdl import Cat, Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..contract.planes import Planes

__all__ = ["BitSlicer"]


class BitSlicer(wiring.Component):
    """Pure wiring from PPB uint8 samples to PPB*P plane bits.

    Ports
    -----
    ``sink``:   In(stream.Signature(8 * PPB)) -- sample j of the beat in bits 8j..8j+7.
    ``source``: Out(stream.Signature(P * PPB)) -- bit ``j*P + i`` = bit ``planes[i]`` of sample j.

    So sample s of a frame lands at feature ``s*P + i`` once beats are
    concatenated LSB first (docs/hardware-contract.md, "Input order").
    valid and ready pass straight through.
    """

    def __init__(self, planes: tuple[int, ...], pixels_per_beat: int) -> None:
        planes = Planes(planes)
        if isinstance(pixels_per_beat, bool) or not isinstance(pixels_per_beat, int) or pixels_per_beat < 1:
            raise ValueError(f"pixels_per_beat must be a positive integer, not {pixels_per_beat!r}")
        self.planes = planes
        self.pixels_per_beat = pixels_per_beat
        super().__init__({
            "sink": In(stream.Signature(8 * pixels_per_beat)),
            "source": Out(stream.Signature(len(planes) * pixels_per_beat)),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        data = self.sink.payload
        m.d.comb += [
            self.source.payload.eq(Cat(*[data[8 * j + p] for j in range(self.pixels_per_beat)
                                         for p in self.planes])),
            self.source.valid.eq(self.sink.valid),
            self.sink.ready.eq(self.source.ready),
        ]
        return m
