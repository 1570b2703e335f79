"""AXI4-Stream packets around the accelerator: one input packet in, exactly one output packet out.

An AXI DMA (PG021) in direct-register mode ends a stream-to-memory (S2MM) transfer at the first
``tlast`` it sees and sends ``tlast`` once, on the last beat of each memory-to-stream (MM2S)
transfer. A host therefore sends a batch of frames as one packet and expects the batch's class
scores back as one packet. The engines count frames and know nothing of packets; the
:class:`PacketFramer` here carries the boundaries across them:

* a frame whose last input beat carries ``last`` ends a packet: the output beat of its last
  class carries ``last``; the outputs of every other frame carry none;
* ``last`` on any other beat (a packet that is not whole frames, e.g. an aborted transfer)
  ends the packet early: the framer completes that frame with zero pixels, taking no more input
  for it, and ends the output packet after it, so the next packet starts on a frame boundary.

The framer adds no register on the data path and no cycle to latency or interval. It remembers one
bit per frame between the frame's last input beat and its last output beat, in a ``depth``-entry
ring; the engines can hold only so many frames in flight (:func:`framer_depth` sizes the ring from
the cycle model with margin), and should the ring ever be full, input waits instead of a flag
being lost. A frame's flag is written in the cycle its last input beat is taken and read from the
next: every engine chain takes more than one cycle from a frame's last input beat to its last output
beat, so the flag is always there in time.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .accelerator import Accelerator
from .reset import reset_parts
from .spec import AcceleratorSpec, check_int
from .stream import OUTPUT_LAYOUT
from .timing import predict

__all__ = ["PacketFramer", "PacketAccelerator", "framer_depth", "input_layout"]


def input_layout(tdata_bits: int) -> data.StructLayout:
    """Payload of the packet-level input stream: ``data`` (the AXI ``tdata``) and ``last``."""
    return data.StructLayout({"data": unsigned(tdata_bits), "last": unsigned(1)})


def framer_depth(spec: AcceleratorSpec) -> int:
    """Entries of the packet-flag ring: a power of two above the frames a free-flowing pipeline
    holds between a frame's last input beat and its last output beat.

    Frame k's input ends about ``k * II + NB`` cycles in and its output ``k * II + latency + C``;
    so at most ``ceil((latency + C) / II) + 1`` frames are in between. Two more for margin; a full
    ring only makes the input wait, so the bound guards the cycle model, not correctness."""
    timing = predict(spec)
    in_flight = -(-(timing.latency + spec.classes) // timing.initiation_interval) + 3
    return max(4, 1 << (in_flight - 1).bit_length())


class PacketFramer(wiring.Component):
    """Packet boundaries across the engines (see the module docstring for the rules).

    Ports
    -----
    ``sink``:        In(stream.Signature(input_layout(tdata_bits))) -- the AXI input stream.
    ``core_sink``:   Out(stream.Signature(tdata_bits)) -- to the accelerator's input.
    ``core_source``: In(stream.Signature(OUTPUT_LAYOUT)) -- the accelerator's output, ``last`` on
                     the last class of every frame.
    ``source``:      Out(stream.Signature(OUTPUT_LAYOUT)) -- the AXI output stream, ``last`` on the
                     last class of each packet's last frame.

    Handshakes pass straight through (``core_sink`` is offered while ``sink`` is, ``source`` while
    ``core_source`` is), except that input waits while the flag ring is full, and that padding
    beats go to ``core_sink`` without touching ``sink``.
    """

    def __init__(self, tdata_bits: int, beats_per_frame: int, depth: int) -> None:
        check_int("PacketFramer tdata_bits", tdata_bits, 1)
        check_int("PacketFramer beats_per_frame", beats_per_frame, 1)
        check_int("PacketFramer depth", depth, 2)
        if depth & (depth - 1):
            raise ValueError(f"PacketFramer depth must be a power of two, not {depth}")
        self.tdata_bits, self.beats_per_frame, self.depth = tdata_bits, beats_per_frame, depth
        super().__init__({
            "sink": In(stream.Signature(input_layout(tdata_bits))),
            "core_sink": Out(stream.Signature(tdata_bits)),
            "core_source": In(stream.Signature(OUTPUT_LAYOUT)),
            "source": Out(stream.Signature(OUTPUT_LAYOUT)),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        beat = Signal(range(max(2, self.beats_per_frame)))  # never zero bits wide: Verilog has no [-1:0]
        padding = Signal()  # the packet ended mid-frame: fill the frame with zero pixels
        flags = Signal(self.depth)  # per frame in flight: does its output end a packet?
        write = Signal(range(self.depth))
        read = Signal(range(self.depth))
        held = Signal(range(self.depth + 1))
        # room == (held != depth), a register (computed from held's next value): the compare in front
        # of the input's valid, and from it the input skid buffer's enables, was the ECP5 proxy's
        # critical path.
        room = Signal(init=1)

        with m.If(padding):
            m.d.comb += self.core_sink.valid.eq(room)
        with m.Else():
            m.d.comb += [
                self.core_sink.valid.eq(self.sink.valid & room),
                self.core_sink.payload.eq(self.sink.payload.data),
                self.sink.ready.eq(self.core_sink.ready & room),
            ]
        taken = Signal()
        frame_in = Signal()
        m.d.comb += [
            taken.eq(self.core_sink.valid & self.core_sink.ready),
            frame_in.eq(taken & (beat == self.beats_per_frame - 1)),
        ]
        with m.If(taken):
            with m.If(beat == self.beats_per_frame - 1):
                m.d.sync += [
                    beat.eq(0),
                    padding.eq(0),
                    flags.bit_select(write, 1).eq(padding | self.sink.payload.last),
                    write.eq(write + 1),
                ]
            with m.Else():
                m.d.sync += beat.eq(beat + 1)
                with m.If(~padding & self.sink.payload.last):
                    m.d.sync += padding.eq(1)

        frame_out = Signal()
        m.d.comb += [
            self.source.valid.eq(self.core_source.valid),
            self.core_source.ready.eq(self.source.ready),
            self.source.payload.data.eq(self.core_source.payload.data),
            self.source.payload.last.eq(self.core_source.payload.last & flags.bit_select(read, 1)),
            frame_out.eq(self.core_source.valid & self.source.ready & self.core_source.payload.last),
        ]
        with m.If(frame_out):
            m.d.sync += read.eq(read + 1)
        held_next = Signal.like(held)
        m.d.comb += held_next.eq(held + frame_in - frame_out)
        m.d.sync += [held.eq(held_next), room.eq(held_next != self.depth)]
        return m


class PacketAccelerator(wiring.Component):
    """The :class:`Accelerator` behind a :class:`PacketFramer`: what the AXI4-Stream top wraps.

    Ports
    -----
    ``sink``:   In(stream.Signature(input_layout(spec.tdata_bits))) -- pixels and ``tlast``.
    ``source``: Out(stream.Signature(OUTPUT_LAYOUT)) -- class popcounts, ``last`` per packet.
    ``rst``:    In(1), only with ``reset_tree``: the synchronous reset (high), distributed through
                registers (``hw/reset.py``). The gain needs a reset-less ``sync`` domain above it
                (``generate.py``'s top); with the usual domain the two resets simply add up.
    """

    def __init__(self, spec: AcceleratorSpec, *, rom: str = "memory", rom_module: str | None = None,
                 reset_tree: bool = False) -> None:
        self.reset_tree = reset_tree
        members = {
            "sink": In(stream.Signature(input_layout(spec.tdata_bits))),
            "source": Out(stream.Signature(OUTPUT_LAYOUT)),
        }
        if reset_tree:
            members["rst"] = In(1)
        super().__init__(members)
        self.core = Accelerator(spec, rom=rom, rom_module=rom_module, reset=self.rst if reset_tree else None)
        self.framer = PacketFramer(spec.tdata_bits, spec.input_beats, framer_depth(spec))

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.submodules.core = self.core
        # The framer faces the input port (its `ready` passes through): reset with the input.
        reset_parts(m, {"framer": self.framer}, self.rst if self.reset_tree else None, direct=frozenset({"framer"}))
        wiring.connect(m, wiring.flipped(self.sink), self.framer.sink)
        wiring.connect(m, self.framer.core_sink, self.core.sink)
        wiring.connect(m, self.core.source, self.framer.core_source)
        wiring.connect(m, self.framer.source, wiring.flipped(self.source))
        return m
