"""The accelerator behind the UART host bridge: what an open-toolchain board's top level holds.

Pins, clock (PLL) and reset belong to the board's platform file; this component is everything
between the FTDI serial lines and the accelerator, and the unit a board-level simulation runs.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..contract.wire import wire_planes
from .accelerator import Accelerator
from .spec import AcceleratorSpec
from .stream import Deserializer
from .uart import BridgeSpec, FrameBridge

__all__ = ["UartBoard", "bridge_spec"]


def bridge_spec(spec: AcceleratorSpec, divisor: int, timeout_bytes: int = 4) -> BridgeSpec:
    """The bridge for ``spec``: one request carries one frame of samples (HWC; only the planes the
    accelerator reads, packed when at most four are kept), one reply its classes.

    The bridge hands on one sample per beat; an accelerator that reads several per beat (a
    multi-channel pixel of a conv network) gets them gathered by :class:`UartBoard`. With an input
    table the planes are those of the table's codes, and the table reads whole pixels: the request
    then carries all eight bits of each."""
    return BridgeSpec(pixels=spec.samples_per_frame, classes=spec.classes, divisor=divisor,
                      timeout_bytes=timeout_bytes, planes=wire_planes(spec.planes, spec.input_table is not None))


class UartBoard(wiring.Component):
    """``rx``/``tx``: the serial lines (idle high); ``busy``: a request is being handled (a status
    LED); ``errors``: broken requests so far."""

    def __init__(self, spec: AcceleratorSpec, divisor: int, *, timeout_bytes: int = 4, rom: str = "memory",
                 rom_module: str | None = None) -> None:
        self.spec = spec
        self.bridge_spec = bridge_spec(spec, divisor, timeout_bytes)
        self.rom, self.rom_module = rom, rom_module
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "busy": Out(1), "errors": Out(16)})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.submodules.bridge = bridge = FrameBridge(self.bridge_spec)
        m.submodules.accelerator = accelerator = Accelerator(self.spec, rom=self.rom, rom_module=self.rom_module)
        m.d.comb += [bridge.rx.eq(self.rx), self.tx.eq(bridge.tx), self.busy.eq(bridge.busy),
                     self.errors.eq(bridge.errors)]
        if self.spec.pixels_per_beat == 1:
            wiring.connect(m, bridge.pixels, accelerator.sink)
        else:
            # C samples of a pixel, one per bridge beat, first in the low byte (the stream's order).
            m.submodules.pixel = gather = Deserializer(8, self.spec.pixels_per_beat)
            wiring.connect(m, bridge.pixels, gather.sink)
            wiring.connect(m, gather.source, accelerator.sink)
        m.d.comb += [bridge.scores.payload.data.eq(accelerator.source.payload.data),
                     bridge.scores.payload.last.eq(accelerator.source.payload.last),
                     bridge.scores.valid.eq(accelerator.source.valid),
                     accelerator.source.ready.eq(bridge.scores.ready)]
        return m
