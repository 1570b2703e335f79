"""Stream glue: narrow beats to whole vectors, and the class-popcount output stage."""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .spec import check_identifier, check_int

__all__ = ["FifoSpec", "PixelFifo", "FifoModel", "FlattenSpec", "Deserializer", "DeserializerModel", "OutputSerializer",
           "OutputModel", "SkidBuffer", "skid_model", "OUTPUT_LAYOUT"]

#: Payload of the accelerator's output stream: one class popcount per beat.
OUTPUT_LAYOUT = data.StructLayout({"data": unsigned(32), "last": unsigned(1)})


def _check_positive(what: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, not {value!r}")


@dataclass(frozen=True)
class FlattenSpec:
    """The conv-to-dense hand-off: ``beats`` pixels of ``width`` bits become one vector.

    Pixel k lands in bits ``k*width ..``, so an (H, W, C) map becomes the HWC-flattened
    vector a dense layer's weight columns are indexed by. Engine of :class:`Deserializer`.
    """

    name: str
    width: int
    beats: int

    def __post_init__(self) -> None:
        check_identifier("Flatten name", self.name)
        check_int(f"Flatten {self.name}: width", self.width, 1)
        check_int(f"Flatten {self.name}: beats", self.beats, 1)

    @property
    def sink_bits(self) -> int:
        return self.width

    @property
    def sink_beats(self) -> int:
        return self.beats

    @property
    def source_bits(self) -> int:
        return self.width * self.beats

    @property
    def source_beats(self) -> int:
        return 1


class Deserializer(wiring.Component):
    """Collect ``beats`` beats of ``width`` bits into one vector, first beat in the low bits.

    Ports
    -----
    ``sink``:   In(stream.Signature(width)).
    ``source``: Out(stream.Signature(width * beats)), valid once all beats are in.

    The shift register is also the output payload, so it holds the vector
    while the consumer computes the previous one (the consumer's buffer is the
    other half of the double buffer). A beat is accepted in the very cycle the
    full vector is taken: frame n+1 starts at the handshake of frame n.
    """

    def __init__(self, width: int, beats: int) -> None:
        _check_positive("Deserializer width", width)
        _check_positive("Deserializer beat count", beats)
        self.width = width
        self.beats = beats
        super().__init__({
            "sink": In(stream.Signature(width)),
            "source": Out(stream.Signature(width * beats)),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        w, beats = self.width, self.beats
        shift = Signal(w * beats, reset_less=True)  # data: valid with `full`, no reset (popcount_tree)
        count = Signal(range(beats + 1))
        full = Signal()
        take = self.sink.valid & self.sink.ready
        give = self.source.valid & self.source.ready
        m.d.comb += [
            full.eq(count == beats),
            self.source.payload.eq(shift),
            self.source.valid.eq(full),
            self.sink.ready.eq(~full | self.source.ready),
        ]
        with m.If(take):
            m.d.sync += shift.eq(self.sink.payload if beats == 1 else Cat(shift[w:], self.sink.payload))
            with m.If(give):
                m.d.sync += count.eq(1)
            with m.Else():
                m.d.sync += count.eq(count + 1)
        with m.Elif(give):
            m.d.sync += count.eq(0)
        return m


class DeserializerModel:
    """The deserializer's control, clock for clock (see :mod:`bnn2fpga.hw.cycles`)."""

    def __init__(self, beats: int) -> None:
        self.beats = beats
        self.count = 0

    def out_valid(self) -> bool:
        return self.count == self.beats

    def in_ready(self, out_ready: bool) -> bool:
        return self.count != self.beats or out_ready

    def clock(self, in_valid: bool, in_fire: bool, out_fire: bool) -> None:
        if in_fire:
            self.count = 1 if out_fire else self.count + 1
        elif out_fire:
            self.count = 0


class SkidBuffer(wiring.Component):
    """A two-entry register slice: no combinational path crosses it in either direction.

    Ports
    -----
    ``sink``:   In(stream.Signature(width)) -- ``ready`` is a register (the spare entry is empty).
    ``source``: Out(stream.Signature(width)) -- ``valid`` and ``payload`` are registers.
    ``width``: a bit count, or a data layout (the output port's beat, :data:`OUTPUT_LAYOUT`).

    The producer's ``valid``/``payload`` reach one register and the consumer's ``ready`` another,
    so the two ends may sit far apart on the die with a whole clock period for the wire. A beat
    taken in cycle t can leave in cycle t+1 (one cycle of latency); with a free consumer it passes
    one beat per cycle. Its cycle model is a two-entry FIFO (:func:`skid_model`).
    """

    def __init__(self, width: int | data.Layout) -> None:
        if not isinstance(width, data.Layout):
            _check_positive("SkidBuffer width", width)
        self.width = width
        super().__init__({
            "sink": In(stream.Signature(width)),
            "source": Out(stream.Signature(width)),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        main = Signal(self.width, reset_less=True)  # the beat offered downstream (data: no reset)
        main_full = Signal()
        spare = Signal(self.width, reset_less=True)  # a beat taken while the consumer stalled
        spare_full = Signal()
        put = self.sink.valid & self.sink.ready
        m.d.comb += [
            self.sink.ready.eq(~spare_full),
            self.source.valid.eq(main_full),
            self.source.payload.eq(main),
        ]
        with m.If(~main_full | self.source.ready):  # the main entry is free after this cycle
            with m.If(spare_full):
                m.d.sync += [main.eq(spare), spare_full.eq(0)]
            with m.Else():
                m.d.sync += [main.eq(self.sink.payload), main_full.eq(put)]
        with m.Elif(put):
            m.d.sync += [spare.eq(self.sink.payload), spare_full.eq(1)]
        return m


def skid_model() -> FifoModel:
    """The skid buffer's control, clock for clock: a two-entry FIFO (valid while it holds a beat,
    ready while it holds fewer than two, both from registers)."""
    return FifoModel(2)


class OutputSerializer(wiring.Component):
    """Emit a vector of ``count`` words of ``width`` bits as ``count`` beats, word 0 first.

    Ports
    -----
    ``sink``:   In(stream.Signature(count * width)) -- the output layer's class popcounts.
    ``source``: Out(stream.Signature(OUTPUT_LAYOUT)) -- ``data`` zero-extended to 32 bits,
                ``last`` on the final word of each vector.

    Loads the next vector in the cycle its last word is taken, so a frame
    costs exactly ``count`` cycles when the output is always ready.
    """

    def __init__(self, count: int, width: int) -> None:
        _check_positive("OutputSerializer word count", count)
        _check_positive("OutputSerializer word width", width)
        if width > 32:
            raise ValueError(f"OutputSerializer word width must be at most 32, not {width!r}")
        self.count = count
        self.width = width
        super().__init__({
            "sink": In(stream.Signature(count * width)),
            "source": Out(stream.Signature(OUTPUT_LAYOUT)),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        n, w = self.count, self.width
        words = Signal(n * w, reset_less=True)
        left = Signal(range(n + 1))
        # some == (left != 0) and one == (left == 1), registers computed from left's next value: the
        # compares in front of the consumer's handshake and back into `left`'s enable were the
        # iCE40 board's critical path (output stage -> UART bridge -> output stage).
        some, one = Signal(), Signal()
        left_next = Signal.like(left)
        give = self.source.valid & self.source.ready
        take = self.sink.valid & self.sink.ready
        m.d.comb += [
            self.source.valid.eq(some),
            self.source.payload.data.eq(words[:w]),
            self.source.payload.last.eq(one),
            self.sink.ready.eq(~some | (one & self.source.ready)),
            left_next.eq(Mux(take, n, Mux(give, left - 1, left))),
        ]
        m.d.sync += [left.eq(left_next), some.eq(left_next != 0), one.eq(left_next == 1)]
        with m.If(take):
            m.d.sync += words.eq(self.sink.payload)
        with m.Elif(give):
            m.d.sync += words.eq(words[w:])
        return m


class OutputModel:
    """The output stage's control, clock for clock (see :mod:`bnn2fpga.hw.cycles`)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.left = 0

    def out_valid(self) -> bool:
        return self.left != 0

    def in_ready(self, out_ready: bool) -> bool:
        return self.left == 0 or (self.left == 1 and out_ready)

    def clock(self, in_valid: bool, in_fire: bool, out_fire: bool) -> None:
        if in_fire:
            self.left = self.count
        elif out_fire:
            self.left -= 1


@dataclass(frozen=True)
class FifoSpec:
    """A pixel FIFO of ``depth`` beats of ``width`` bits in front of a window unit.

    It lets the producer run into the next frame while the window unit still emits the last
    rows of this one: a window unit needs K-1 rows and K pixels of a frame before its first
    window, and without the FIFO its consumer would wait for them at every frame boundary.
    """

    name: str
    width: int
    depth: int
    beats: int  # beats per frame (passed through)

    def __post_init__(self) -> None:
        check_identifier("FIFO name", self.name)
        check_int(f"FIFO {self.name}: width", self.width, 1)
        check_int(f"FIFO {self.name}: depth", self.depth, 2)
        check_int(f"FIFO {self.name}: beats", self.beats, 1)

    @property
    def sink_bits(self) -> int:
        return self.width

    @property
    def sink_beats(self) -> int:
        return self.beats

    @property
    def source_bits(self) -> int:
        return self.width

    @property
    def source_beats(self) -> int:
        return self.beats


class PixelFifo(wiring.Component):
    """First-word-fall-through FIFO: distributed RAM behind an output register.

    Ports
    -----
    ``sink``:   In(stream.Signature(width)) -- ready while fewer than ``depth`` beats are held
                (a register: no ready path crosses the FIFO).
    ``source``: Out(stream.Signature(width)) -- valid while a beat is held; a beat written in
                cycle t can leave in cycle t+1. ``valid`` and ``payload`` are registers.

    The head of the FIFO is a register of its own (``out``), and the RAM holds the beats behind
    it: a beat put while ``out`` is (or is about to be) empty and the RAM holds none goes straight
    into ``out``; otherwise it is written to the RAM, and ``out`` is refilled from the RAM's head
    when taken. The RAM is read asynchronously at a register (``head``) into ``out``, beside it.
    Read straight out of the RAM, the head's address fanned out to every LUT-RAM cell and the
    read went on to the window unit's registers: the FINN-shape CNV's ECP5 critical path (12.2 ns,
    conv3's FIFO). Cycle for cycle the same as a FIFO of ``depth`` beats read from its RAM.
    """

    def __init__(self, spec: FifoSpec) -> None:
        if not isinstance(spec, FifoSpec):
            raise TypeError(f"PixelFifo spec must be a FifoSpec, not {spec!r}")
        self.spec = spec
        super().__init__({
            "sink": In(stream.Signature(spec.width)),
            "source": Out(stream.Signature(spec.width)),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        depth = self.spec.depth
        ram_depth = depth - 1  # one beat lives in `out`
        mem = Memory(shape=self.spec.width, depth=max(2, ram_depth), init=[], attrs={"ram_style": "distributed"})
        m.submodules.mem = mem
        wr = mem.write_port()
        rd = mem.read_port(domain="comb")
        head = Signal(range(max(2, ram_depth)))
        tail = Signal(range(max(2, ram_depth)))
        level = Signal(range(depth + 1))          # beats held, `out` included
        in_ram = Signal(range(depth))             # beats held in the RAM
        out = Signal(self.spec.width, reset_less=True)  # data: no reset
        out_full = Signal()
        ram_nonempty = Signal()
        # `level != depth` and `in_ram != 0` as registers. Each is stepped from its own value, the
        # handshakes and a compare of the counter's present value (never its next one): with the
        # compare after the counter's adder, the consumer's `ready` ran through the adder's carry
        # chain into the flag (conv3's FIFO of the FINN-shape CNV, after its window's `real`).
        room = Signal(init=1)
        put = self.sink.valid & self.sink.ready
        take = out_full & self.source.ready
        out_free = ~out_full | take                # `out` may load this cycle
        refill = out_free & ram_nonempty           # from the RAM's head
        bypass = out_free & ~ram_nonempty & put    # the beat put goes straight to `out`
        write = put & ~bypass
        level_next = Signal.like(level)
        in_ram_next = Signal.like(in_ram)
        m.d.comb += [
            self.sink.ready.eq(room),
            self.source.valid.eq(out_full),
            self.source.payload.eq(out),
            wr.addr.eq(tail), wr.data.eq(self.sink.payload), wr.en.eq(write),
            rd.addr.eq(head),
            level_next.eq(level + put - take),
            in_ram_next.eq(in_ram + write - refill),
        ]
        m.d.sync += [level.eq(level_next), in_ram.eq(in_ram_next)]
        with m.If(put & ~take):
            m.d.sync += room.eq(level < depth - 1)
        with m.Elif(take & ~put):
            m.d.sync += room.eq(1)
        with m.If(write & ~refill):
            m.d.sync += ram_nonempty.eq(1)
        with m.Elif(refill & ~write):
            # A RAM of one beat (depth 2) is empty after any refill; the compare would be constant.
            m.d.sync += ram_nonempty.eq(in_ram > 1 if ram_depth > 1 else 0)
        with m.If(out_free):
            m.d.sync += out_full.eq(ram_nonempty | put)
            with m.If(ram_nonempty):
                m.d.sync += out.eq(rd.data)
            with m.Else():
                m.d.sync += out.eq(self.sink.payload)
        with m.If(write):
            m.d.sync += tail.eq(Mux(tail == ram_depth - 1, 0, tail + 1))
        with m.If(refill):
            m.d.sync += head.eq(Mux(head == ram_depth - 1, 0, head + 1))
        return m


class FifoModel:
    """The FIFO's control, clock for clock (see :mod:`bnn2fpga.hw.cycles`)."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.level = 0

    def out_valid(self) -> bool:
        return self.level > 0

    def in_ready(self, out_ready: bool) -> bool:
        return self.level < self.depth

    def clock(self, in_valid: bool, in_fire: bool, out_fire: bool) -> None:
        self.level += int(in_fire) - int(out_fire)
