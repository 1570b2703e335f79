"""The accelerator behind the UART host bridge: what an open-toolchain board's top level holds.

Pins, clock (PLL) and reset belong to the board's platform file; this component is everything
between the FTDI serial lines and the accelerator, and the unit a board-level simulation runs.
"""

from __future__ import annotations

from amaranth.hdl import Elaboratable, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..contract.wire import wire_planes
from .accelerator import Accelerator
from .reset import reset_parts
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
    LED); ``errors``: broken requests so far. With ``reset_tree``, ``rst`` (In(1)): the synchronous
    reset (high), distributed through registers (``hw/reset.py``; the bridge takes it directly);
    the ``sync`` domain above should then be reset-less (``generate.convert_reset_tree``,
    ``BoardTop``)."""

    def __init__(self, spec: AcceleratorSpec, divisor: int, *, timeout_bytes: int = 4, rom: str = "memory",
                 rom_module: str | None = None, reset_tree: bool = False) -> None:
        self.spec = spec
        self.bridge_spec = bridge_spec(spec, divisor, timeout_bytes)
        self.rom, self.rom_module = rom, rom_module
        self.reset_tree = reset_tree
        members = {"rx": In(1, init=1), "tx": Out(1, init=1), "busy": Out(1), "errors": Out(16)}
        if reset_tree:
            members["rst"] = In(1)
        super().__init__(members)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        reset = self.rst if self.reset_tree else None
        bridge = FrameBridge(self.bridge_spec)
        accelerator = Accelerator(self.spec, rom=self.rom, rom_module=self.rom_module, reset=reset)
        m.submodules.accelerator = accelerator
        parts: dict[str, Elaboratable] = {"bridge": bridge}
        m.d.comb += [bridge.rx.eq(self.rx), self.tx.eq(bridge.tx), self.busy.eq(bridge.busy),
                     self.errors.eq(bridge.errors)]
        if self.spec.pixels_per_beat == 1:
            wiring.connect(m, bridge.pixels, accelerator.sink)
        else:
            # C samples of a pixel, one per bridge beat, first in the low byte (the stream's order).
            parts["pixel"] = gather = Deserializer(8, self.spec.pixels_per_beat)
            wiring.connect(m, bridge.pixels, gather.sink)
            wiring.connect(m, gather.source, accelerator.sink)
        m.d.comb += [bridge.scores.payload.data.eq(accelerator.source.payload.data),
                     bridge.scores.payload.last.eq(accelerator.source.payload.last),
                     bridge.scores.valid.eq(accelerator.source.valid),
                     accelerator.source.ready.eq(bridge.scores.ready)]
        # The bridge and the pixel gatherer face the serial line: reset with it.
        reset_parts(m, parts, reset, direct=frozenset(parts))
        return m
