"""Property harnesses for the stream glue: each is a component whose input ports are free (the solver
drives them, any value in any cycle) and whose ``Assume``/``Assert`` statements state the rules.

Common to all:

* reset is never asserted (registers start at their reset values, the state after reset);
* AXI-Stream rules are *assumed* on every stream the environment drives (a producer that raised
  ``valid`` holds it, with its payload, until ``ready``) and *asserted* on every stream the design
  drives;
* beats are checked against a reference: either lock-step (the framer's input side has no storage,
  so its output beat is the input beat of the same cycle or a padding zero) or a tracked beat (an
  arbitrary, solver-chosen index ``tag`` of the input stream with an arbitrary value; it must leave
  at the same index with the same value: a beat lost, duplicated or reordered shifts or changes it).

The ``invariants`` switch adds assertions relating the design's internal registers to the
harness's counters. They are true in every reachable state (BMC checks them like the rest) and are
what lets k-induction (sby ``prove``) close: without them an induction step may start from a state
no reset sequence reaches (say, a flag ring that disagrees with the frames in flight).
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Assert, Assume, Cat, Cover, Module, Mux, ResetSignal, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from bnn2fpga.hw.packets import PacketFramer
from bnn2fpga.hw.stream import Deserializer, FifoSpec, OutputSerializer, PixelFifo, SkidBuffer

__all__ = ["FramerHarness", "FifoHarness", "SkidHarness", "DeserializerHarness", "SerializerHarness",
           "VectorBufferHarness", "fifo", "internals", "probe", "hold_rule"]


def internals(m: Module, *names: str) -> dict[str, Signal]:
    """The named internal signals of an elaborated module (the signals its statements assign).

    The components keep their state in locals of ``elaborate``; the harness needs a few of them for
    induction invariants (and the broken variants to break them), and hw/ must not grow ports for
    the tests' sake."""
    m._flush_ctrl()  # the last If/Elif chain only becomes a statement on flush
    found: dict[str, Signal] = {}
    for stmts in m._statements.values():
        for stmt in stmts:
            for sig in stmt._lhs_signals():
                found.setdefault(sig.name, sig)
    missing = [n for n in names if n not in found]
    if missing:
        raise LookupError(f"no internal signal {missing} in the design: update tests/formal/harnesses.py")
    return {n: found[n] for n in names}


def probe(component: wiring.Component, *names: str) -> tuple[Module, dict[str, Signal]]:
    """Elaborate ``component`` by hand and return its module with the named internal signals."""
    m = component.elaborate(None)
    assert isinstance(m, Module)
    component._MustUse__silence = True  # elaborated here: not an unused component
    return m, internals(m, *names)


def hold_rule(m: Module, valid: Value, ready: Value, payload: Value, *, assume: bool) -> None:
    """AXI-Stream: once ``valid`` is high without ``ready``, next cycle ``valid`` is still high and
    ``payload`` unchanged. Assumed on streams the environment drives, asserted on the design's."""
    waiting = Signal()  # last cycle: valid and not ready
    held = Signal(len(payload))
    m.d.sync += [waiting.eq(valid & ~ready), held.eq(payload)]
    rule = Assume if assume else Assert
    with m.If(waiting):
        m.d.comb += [rule(valid, "valid dropped before ready"), rule(payload == held, "payload changed before ready")]


def _free_const(m: Module, value: Value) -> None:
    """Make a free input behave like an arbitrary constant (sby's anyconst), with public Amaranth API."""
    first = Signal(init=1)
    prev = Signal(len(value))
    m.d.sync += [first.eq(0), prev.eq(value)]
    with m.If(~first):
        m.d.comb += Assume(value == prev)


class FramerHarness(wiring.Component):
    """:class:`PacketFramer` between a free AXI producer and consumer, with a model core behind it.

    The model core takes beats from ``core_sink`` whenever the free ``core_ready`` says so (while it
    holds fewer than ``capacity`` finished frames), and for each finished frame emits ``classes``
    beats, ``last`` on the final one, whenever the free ``core_go`` says so. ``capacity`` above
    ``depth`` lets the core hold more frames than the framer's flag ring, so the ring can fill.

    Properties (all asserted every cycle):

    * core side, lock-step with a reference framing of the input: every input beat goes to the
      core in the same cycle, unchanged; after a mid-frame ``last`` exactly the frame's remaining
      beats are zero padding, during which input is not accepted; so each frame is exactly
      ``beats_per_frame`` core beats;
    * output side: a scoreboard queue holds each frame's expected packet flag (``last`` on its
      final beat, or a mid-frame ``last``); the k-th output frame's final beat carries ``last``
      exactly when the k-th flag is set, no other output beat carries ``last``, and data, valid
      and ready pass through;
    * frames between their last core beat and their last output beat never exceed ``depth`` (the
      framer's ``held``; a full ring must stop input);
    * ``core_sink`` and ``source`` obey the AXI hold rule.
    """

    def __init__(self, framer: PacketFramer, classes: int = 1, capacity: int | None = None,
                 invariants: bool = True) -> None:
        self.framer, self.classes, self.invariants = framer, classes, invariants
        self.capacity = capacity if capacity is not None else framer.depth + 1
        w = framer.tdata_bits
        super().__init__({
            "in_valid": In(1), "in_data": In(w), "in_last": In(1),
            "core_ready": In(1), "core_go": In(1), "out_ready": In(1),
        })

    def elaborate(self, platform: object) -> Module:
        f = self.framer
        B, D, C, P = f.beats_per_frame, f.depth, self.classes, self.capacity
        fm, internal = probe(f, *(("held", "beat", "padding", "flags", "read", "write") if self.invariants else ()))
        m = Module()
        m.submodules.framer = fm
        m.d.comb += Assume(~ResetSignal())

        # The AXI producer: free, but it holds what it offered.
        m.d.comb += [f.sink.valid.eq(self.in_valid), f.sink.payload.data.eq(self.in_data),
                     f.sink.payload.last.eq(self.in_last)]
        hold_rule(m, f.sink.valid, f.sink.ready, f.sink.payload.as_value(), assume=True)
        hold_rule(m, f.core_sink.valid, f.core_sink.ready, f.core_sink.payload, assume=False)

        # Reference framing of the input, lock-step with core_sink.
        sink_fire = f.sink.valid & f.sink.ready
        core_fire = f.core_sink.valid & f.core_sink.ready
        pos = Signal(range(max(2, B)))  # core beats of the current frame so far
        owed = Signal(range(B + 1))  # padding beats the current frame still needs
        acc = Signal()  # the current frame has seen a `last`
        frame_end = core_fire & (pos == B - 1)
        flag_now = acc | (sink_fire & f.sink.payload.last)
        m.d.comb += [
            Assert(~sink_fire | core_fire, "an input beat was taken but not passed to the core"),
            Assert((owed == 0) | ~f.sink.ready, "input accepted while padding"),
        ]
        with m.If(core_fire):
            with m.If(owed == 0):
                m.d.comb += [Assert(sink_fire, "a core beat that is neither input nor owed padding"),
                             Assert(f.core_sink.payload == f.sink.payload.data, "core beat differs from input")]
            with m.Else():
                m.d.comb += Assert(f.core_sink.payload == 0, "padding beat not zero")
            m.d.sync += pos.eq(Mux(pos == B - 1, 0, pos + 1))
            with m.If(owed != 0):
                m.d.sync += owed.eq(owed - 1)
            with m.Elif(sink_fire & f.sink.payload.last & (pos != B - 1)):
                m.d.sync += owed.eq(B - 1 - pos)
            m.d.sync += acc.eq(Mux(pos == B - 1, 0, flag_now))

        # Scoreboard of packet flags, one per frame in flight (room for one more than the ring, so an
        # overfull framer shows as a failed bound rather than a wrapped queue).
        Q = 2 * D
        expect = Signal(Q)
        wr, rd = Signal(range(Q)), Signal(range(Q))
        in_flight = Signal(range(Q + 1))

        # The model core.
        pending = Signal(range(P + 1))  # finished frames not yet fully emitted
        ob = Signal(range(max(2, C)))  # output beat of the frame being emitted
        out_frames = Signal(8)  # frames emitted (mod 256): makes the data beats distinct
        offering = Signal()
        core_valid = (pending != 0) & (self.core_go | offering)
        core_take = f.core_source.valid & f.core_source.ready
        out_end = core_take & (ob == C - 1)
        m.d.comb += [
            f.core_sink.ready.eq(self.core_ready & (pending != P)),
            f.core_source.valid.eq(core_valid),
            f.core_source.payload.data.eq(Cat(ob, out_frames)),
            f.core_source.payload.last.eq(ob == C - 1),
            f.source.ready.eq(self.out_ready),
        ]
        m.d.sync += offering.eq(core_valid & ~f.core_source.ready)
        with m.If(core_take):
            m.d.sync += ob.eq(Mux(ob == C - 1, 0, ob + 1))
        with m.If(out_end):
            m.d.sync += out_frames.eq(out_frames + 1)
        m.d.sync += pending.eq(pending + frame_end - out_end)

        with m.If(frame_end):
            m.d.sync += [expect.bit_select(wr, 1).eq(flag_now), wr.eq(Mux(wr == Q - 1, 0, wr + 1))]
        with m.If(out_end):
            m.d.sync += rd.eq(Mux(rd == Q - 1, 0, rd + 1))
        m.d.sync += in_flight.eq(in_flight + frame_end - out_end)

        # Output properties.
        m.d.comb += [
            Assert(f.source.valid == f.core_source.valid, "source.valid is not the core's"),
            Assert(f.core_source.ready == f.source.ready, "core_source.ready is not the consumer's"),
            Assert(f.source.payload.data == f.core_source.payload.data, "output data changed"),
            Assert(in_flight <= D, "more frames in flight than the flag ring holds"),
        ]
        hold_rule(m, f.source.valid, f.source.ready, f.source.payload.as_value(), assume=False)
        with m.If(f.source.valid):
            with m.If(ob == C - 1):
                m.d.comb += Assert(f.source.payload.last == expect.bit_select(rd, 1),
                                   "output last is not the packet flag of this frame")
            with m.Else():
                m.d.comb += Assert(~f.source.payload.last, "last on a beat that does not end a frame")

        # Reachability (sby cover mode): the checks above are not vacuous.
        m.d.comb += [
            Cover(core_fire & (owed != 0), "a padding beat"),
            Cover(out_end & f.source.payload.last & (in_flight == 2), "a packet ends, another frame in flight"),
            Cover(out_end & ~f.source.payload.last, "a frame that does not end its packet"),
            Cover((in_flight == D) & f.sink.valid & ~f.sink.ready & (owed == 0), "input waits on a full ring"),
        ]

        if self.invariants:
            held, beat, padding = internal["held"], internal["beat"], internal["padding"]
            flags, read, write = internal["flags"], internal["read"], internal["write"]
            m.d.comb += [
                Assert(pending == in_flight),
                Assert(~offering | (pending != 0)),
                Assert(held == in_flight),
                Assert(beat == pos),
                Assert(padding == (owed != 0)),
                Assert(pos < B),
                Assert(ob < C),
                Assert(acc == (owed != 0)),  # a `last` at the frame's end closes it: only mid-frame ones linger
                Assert((owed == 0) | (owed == B - pos)),
                Assert(write == (read + held)[:len(write)]),  # depth is a power of two
                Assert(wr == (rd + in_flight)[:len(wr)]),  # Q is a power of two too
            ]
            for i in range(D):
                with m.If(i < in_flight):
                    m.d.comb += Assert(flags.bit_select((read + i)[:len(read)], 1)
                                       == expect.bit_select((rd + i)[:len(rd)], 1))
        return m


def _tag(m: Module, tag: Value) -> None:
    _free_const(m, tag)



def _drive_tracked(m: Module, harness: Any, dut: Any, slots: int) -> None:
    """The harness's free inputs onto ``dut``'s streams, the tracked beat's tag chosen once, and the
    AXI hold rule assumed of the producer and asserted of the design's output."""
    m.d.comb += Assume(~ResetSignal())
    for v in (harness.tag, harness.slot, harness.value):
        _tag(m, v)
    m.d.comb += Assume(harness.slot < slots)
    m.d.comb += [dut.sink.valid.eq(harness.in_valid), dut.sink.payload.eq(harness.in_data),
                 dut.source.ready.eq(harness.out_ready)]
    hold_rule(m, dut.sink.valid, dut.sink.ready, dut.sink.payload, assume=True)
    payload = dut.source.payload
    hold_rule(m, dut.source.valid, dut.source.ready, payload.as_value() if hasattr(payload, "as_value") else payload,
              assume=False)

def _tracked_queue(m: Module, harness: Any, dut: wiring.Component, n: int) -> tuple[Signal, Signal, Value]:
    """A one-beat-in, one-beat-out queue between the harness's free producer and consumer: the AXI rules
    on both streams, beat counters (``ins``, ``outs``) and the tracked beat (``harness.tag`` carries
    ``harness.value`` in and must carry it out); never a beat offered that was not taken.

    The counters wrap modulo 2**n, so the proof is not limited to 2**n beats; the tracked beat is then
    every beat whose number is ``tag`` modulo 2**n (2**n above the queue's depth)."""
    m.d.comb += [dut.sink.valid.eq(harness.in_valid), dut.sink.payload.eq(harness.in_data),
                 dut.source.ready.eq(harness.out_ready)]
    hold_rule(m, dut.sink.valid, dut.sink.ready, dut.sink.payload, assume=True)
    hold_rule(m, dut.source.valid, dut.source.ready, dut.source.payload, assume=False)
    ins, outs = Signal(n), Signal(n)
    put = dut.sink.valid & dut.sink.ready
    take = dut.source.valid & dut.source.ready
    with m.If(put):
        m.d.sync += ins.eq(ins + 1)
        with m.If(ins == harness.tag):
            m.d.comb += Assume(dut.sink.payload == harness.value)
    with m.If(take):
        m.d.sync += outs.eq(outs + 1)
        with m.If(outs == harness.tag):
            m.d.comb += Assert(dut.source.payload == harness.value, "tracked beat changed, lost or reordered")
    m.d.comb += Assert(~dut.source.valid | (outs != ins), "offers a beat it never took")
    return ins, outs, take


class FifoHarness(wiring.Component):
    """:class:`PixelFifo` between a free producer and consumer, with one tracked beat.

    ``tag`` and ``value`` are arbitrary constants: the producer's beat number ``tag`` carries
    ``value``; the FIFO's output beat number ``tag`` must carry it too. Also: the FIFO never offers
    more beats than it took, and its output obeys the AXI hold rule."""

    def __init__(self, fifo: PixelFifo, count_bits: int | None = None, invariants: bool = True) -> None:
        # The counters wrap: 2**count_bits must exceed depth, or "held" is ambiguous.
        count_bits = count_bits if count_bits is not None else max(3, fifo.spec.depth.bit_length() + 1)
        if 1 << count_bits <= fifo.spec.depth:
            raise ValueError(f"count_bits {count_bits} too small for FIFO depth {fifo.spec.depth}")
        self.fifo, self.count_bits, self.invariants = fifo, count_bits, invariants
        w = fifo.spec.width
        super().__init__({"in_valid": In(1), "in_data": In(w), "out_ready": In(1),
                          "tag": In(count_bits), "value": In(w)})

    def elaborate(self, platform: object) -> Module:
        f, n = self.fifo, self.count_bits
        depth = f.spec.depth
        fm, internal = probe(f, *(("level", "in_ram", "out_full", "out", "head", "tail", "room", "ram_nonempty")
                                  if self.invariants else ()))
        m = Module()
        m.d.comb += Assume(~ResetSignal())
        _tag(m, self.tag)
        _tag(m, self.value)
        # Memory contents for the invariant: one more asynchronous read port on the FIFO's own memory.
        peek = fm.submodules["mem"].read_port(domain="comb")
        m.submodules.fifo = fm

        ins, outs, take = _tracked_queue(m, self, f, n)
        m.d.comb += [Cover(take & (outs == self.tag) & (self.tag == depth)),  # tracked beat after a FIFO's worth
                     Cover(~f.sink.ready & f.sink.valid)]  # a full FIFO holds back its producer

        if self.invariants:
            # The oldest beat is in the output register, the others in the RAM from `head` on.
            ram = depth - 1
            level, in_ram, out_full, out = internal["level"], internal["in_ram"], internal["out_full"], internal["out"]
            head, tail = internal["head"], internal["tail"]
            wrapped = head + in_ram
            m.d.comb += [
                Assert(level == (ins - outs)[:n]), Assert(level <= depth),
                Assert(level == in_ram + out_full), Assert(out_full | (in_ram == 0)),
                Assert(internal["room"] == (level != depth)), Assert(internal["ram_nonempty"] == (in_ram != 0)),
                Assert(head < ram), Assert(tail < ram),
                Assert(tail == Mux(wrapped >= ram, wrapped - ram, wrapped)[:len(tail)]),
            ]
            # The tracked beat, while held, is the output register (tag == outs) or sits
            # (tag - outs - 1) slots after the RAM's head.
            offset = (self.tag - outs)[:n]
            slot = head + offset - 1
            m.d.comb += peek.addr.eq(Mux(slot >= ram, slot - ram, slot))
            with m.If(offset < level):
                with m.If(offset == 0):
                    m.d.comb += Assert(out == self.value)
                with m.Else():
                    m.d.comb += Assert(peek.data == self.value)
        return m


class SkidHarness(wiring.Component):
    """:class:`SkidBuffer` between a free producer and consumer, with one tracked beat.

    As the FIFO's harness: input beat number ``tag`` carries ``value`` and must leave as output beat
    ``tag``; never a beat offered that was not taken; the AXI hold rule on the output. Also the
    buffer's point: ``sink.ready`` and ``source.valid`` are registers (asserted equal to the values
    the harness registered from the previous cycle's handshakes)."""

    def __init__(self, skid: SkidBuffer, count_bits: int = 3, invariants: bool = True) -> None:
        self.skid, self.count_bits, self.invariants = skid, count_bits, invariants
        super().__init__({"in_valid": In(1), "in_data": In(skid.width), "out_ready": In(1),
                          "tag": In(count_bits), "value": In(skid.width)})

    def elaborate(self, platform: object) -> Module:
        d, n = self.skid, self.count_bits
        sm, internal = probe(d, *(("main", "main_full", "spare", "spare_full") if self.invariants else ()))
        m = Module()
        m.d.comb += Assume(~ResetSignal())
        _tag(m, self.tag)
        _tag(m, self.value)
        m.submodules.skid = sm
        ins, outs, take = _tracked_queue(m, self, d, n)
        held = (ins - outs)[:n]
        # The handshake signals are functions of the beats held, which only the last clock edge changed.
        m.d.comb += [Assert(d.sink.ready == (held < 2), "ready is not a function of the beats held"),
                     Assert(d.source.valid == (held != 0), "valid is not a function of the beats held")]
        m.d.comb += [Cover(take & (outs == self.tag) & (self.tag == 2)),
                     Cover(~d.sink.ready & d.sink.valid)]  # a full buffer holds back its producer

        if self.invariants:
            main, main_full = internal["main"], internal["main_full"]
            spare, spare_full = internal["spare"], internal["spare_full"]
            m.d.comb += [Assert(held == main_full + spare_full), Assert(~spare_full | main_full)]
            with m.If(main_full & (outs == self.tag)):
                m.d.comb += Assert(main == self.value)
            with m.If(spare_full & ((outs + 1)[:n] == self.tag)):
                m.d.comb += Assert(spare == self.value)
        return m


class DeserializerHarness(wiring.Component):
    """:class:`Deserializer` between a free producer and consumer, with one tracked beat.

    The tracked beat is beat ``slot`` of vector ``tag`` (both arbitrary constants) and carries
    ``value``; the output vector number ``tag`` must carry ``value`` in word ``slot``. Also: never
    a vector offered that was not completely taken, and the AXI hold rule on the output."""

    def __init__(self, des: Deserializer, count_bits: int = 3, invariants: bool = True) -> None:
        self.des, self.count_bits, self.invariants = des, count_bits, invariants
        super().__init__({"in_valid": In(1), "in_data": In(des.width), "out_ready": In(1),
                          "tag": In(count_bits), "slot": In(range(des.beats)), "value": In(des.width)})

    def elaborate(self, platform: object) -> Module:
        d, n = self.des, self.count_bits
        N, w = d.beats, d.width
        dm, internal = probe(d, *(("count", "shift") if self.invariants else ()))
        m = Module()
        m.submodules.des = dm
        _drive_tracked(m, self, d, N)

        vec_in, beat_in = Signal(n), Signal(range(max(2, N)))  # the next input beat's vector and word
        vec_out = Signal(n)  # vectors given so far; both wrap modulo 2**n, like the FIFO's counters
        put = d.sink.valid & d.sink.ready
        take = d.source.valid & d.source.ready
        with m.If(put):
            m.d.sync += [beat_in.eq(Mux(beat_in == N - 1, 0, beat_in + 1)),
                         vec_in.eq(Mux(beat_in == N - 1, vec_in + 1, vec_in))]
            with m.If((vec_in == self.tag) & (beat_in == self.slot)):
                m.d.comb += Assume(d.sink.payload == self.value)
        with m.If(take):
            m.d.sync += vec_out.eq(vec_out + 1)
            with m.If(vec_out == self.tag):
                m.d.comb += Assert(d.source.payload.word_select(self.slot, w) == self.value,
                                   "tracked beat changed, lost or moved")
        m.d.comb += Assert(~d.source.valid | (vec_out != vec_in), "offers a vector not completely taken")
        m.d.comb += [Cover(take & (vec_out == self.tag) & (self.tag == 1) & (self.slot == N - 1)),
                     Cover(d.source.valid & ~d.source.ready & d.sink.valid)]  # back-pressure reaches the producer

        if self.invariants:
            count, shift = internal["count"], internal["shift"]
            full = count == N
            m.d.comb += [
                Assert(count <= N),
                Assert(Mux(full, (vec_in == (vec_out + 1)[:n]) & (beat_in == 0),
                           (vec_in == vec_out) & (beat_in == count))),
            ]
            # After c of N beats, word i of the vector sits at word N - c + i of the shift register.
            with m.If((vec_out == self.tag) & (self.slot < count)):
                m.d.comb += Assert(shift.word_select((N - count + self.slot)[:len(count) + 1], w) == self.value)
        return m


class SerializerHarness(wiring.Component):
    """:class:`OutputSerializer` between a free producer and consumer, with one tracked word.

    Word ``slot`` of input vector ``tag`` carries ``value`` (arbitrary constants); output beat
    ``slot`` of vector ``tag`` must carry it, zero-extended, and ``last`` must mark exactly each
    vector's final word. Never a beat offered with no vector taken, and the AXI hold rule on the
    output."""

    def __init__(self, ser: OutputSerializer, count_bits: int = 3, invariants: bool = True) -> None:
        self.ser, self.count_bits, self.invariants = ser, count_bits, invariants
        super().__init__({"in_valid": In(1), "in_data": In(ser.count * ser.width), "out_ready": In(1),
                          "tag": In(count_bits), "slot": In(range(ser.count)), "value": In(ser.width)})

    def elaborate(self, platform: object) -> Module:
        d, n = self.ser, self.count_bits
        N, w = d.count, d.width
        sm, internal = probe(d, *(("left", "words") if self.invariants else ()))
        m = Module()
        m.submodules.ser = sm
        _drive_tracked(m, self, d, N)

        vec_in = Signal(n)  # vectors taken so far (mod 2**n)
        vec_out, word_out = Signal(n), Signal(range(max(2, N)))  # the next output beat's vector and word
        put = d.sink.valid & d.sink.ready
        take = d.source.valid & d.source.ready
        with m.If(put):
            m.d.sync += vec_in.eq(vec_in + 1)
            with m.If(vec_in == self.tag):
                m.d.comb += Assume(d.sink.payload.word_select(self.slot, w) == self.value)
        with m.If(take):
            m.d.sync += [word_out.eq(Mux(word_out == N - 1, 0, word_out + 1)),
                         vec_out.eq(Mux(word_out == N - 1, vec_out + 1, vec_out))]
            with m.If((vec_out == self.tag) & (word_out == self.slot)):
                m.d.comb += Assert(d.source.payload.data == self.value, "tracked word changed, lost or moved")
        with m.If(d.source.valid):
            m.d.comb += Assert(d.source.payload.last == (word_out == N - 1), "last not on the vector's final word")
        m.d.comb += Assert(~d.source.valid | (vec_out != vec_in), "offers a word of a vector never taken")
        m.d.comb += [Cover(take & (vec_out == self.tag) & (self.tag == 1) & (self.slot == N - 1)),
                     Cover(d.source.valid & ~d.source.ready & d.sink.valid)]

        if self.invariants:
            left, words = internal["left"], internal["words"]
            m.d.comb += [
                Assert(left <= N),
                Assert(word_out < N),
                Assert(Mux(left == 0, (vec_in == vec_out) & (word_out == 0),
                           (vec_in == (vec_out + 1)[:n]) & (word_out + left == N))),
            ]
            # After k of N words left, word s of the vector sits at word s - k of the register.
            with m.If((left != 0) & (vec_out == self.tag) & (self.slot >= word_out)):
                m.d.comb += Assert(words.word_select((self.slot - word_out)[:len(word_out)], w) == self.value)
        return m


def fifo(width: int, depth: int) -> PixelFifo:
    return PixelFifo(FifoSpec("f", width, depth, 1))


class VectorBufferHarness(wiring.Component):
    """:class:`VectorBuffer` between a free producer and a free MVTU-like reader, with one tracked beat.

    The reader takes a vector whenever it likes once it has read the previous one ``groups`` times
    (fold by fold, ``advance`` in any cycles; it may take the next in the cycle of the last read, as
    an MVTU does at the end of its period). Beat ``slot`` of vector ``tag`` carries ``value``; every
    read of vector ``tag``'s folds must show its bits at their places, and the padding past the
    vector's last bit must read 0. Checked by BMC: a bound, not induction (the memories' contents
    would need invariants of their own)."""

    def __init__(self, buf: Any, groups: int = 2, count_bits: int = 2) -> None:
        self.buf, self.groups, self.count_bits = buf, groups, count_bits
        super().__init__({"in_valid": In(1), "in_data": In(buf.w), "out_ready": In(1), "advance": In(1),
                          "tag": In(count_bits), "slot": In(range(max(2, buf.beats))), "value": In(buf.w)})

    def elaborate(self, platform: object) -> Module:
        b, n = self.buf, self.count_bits
        w, beats, simd, folds = b.w, b.beats, b.simd, b.nf
        reads = self.groups * folds
        m = Module()
        m.submodules.buf = b
        m.d.comb += Assume(~ResetSignal())
        for v in (self.tag, self.slot, self.value):
            _tag(m, v)
        m.d.comb += Assume(self.slot < beats)
        m.d.comb += [b.sink.valid.eq(self.in_valid), b.sink.payload.eq(self.in_data)]
        hold_rule(m, b.sink.valid, b.sink.ready, b.sink.payload, assume=True)

        vec_in, beat_in = Signal(n), Signal(range(max(2, beats)))
        vec_out = Signal(n)          # vectors taken so far
        have = Signal()              # a vector has been taken
        done = Signal(range(reads + 1))  # reads of the current vector so far
        put = b.sink.valid & b.sink.ready
        with m.If(put):
            m.d.sync += [beat_in.eq(Mux(beat_in == beats - 1, 0, beat_in + 1)),
                         vec_in.eq(Mux(beat_in == beats - 1, vec_in + 1, vec_in))]
            with m.If((vec_in == self.tag) & (beat_in == self.slot)):
                m.d.comb += Assume(b.sink.payload == self.value)

        # The reader: advance only within a taken vector's reads; take once they are (being) done.
        advance = Signal()
        m.d.comb += advance.eq(self.advance & have & (done < reads))
        may_take = ~have | (done == reads) | ((done == reads - 1) & advance)
        m.d.comb += [b.advance.eq(advance), b.source.ready.eq(self.out_ready & may_take)]
        take = b.source.valid & b.source.ready
        with m.If(take):
            m.d.sync += [vec_out.eq(vec_out + 1), have.eq(1), done.eq(0)]
        with m.Elif(advance):
            m.d.sync += done.eq(done + 1)
        m.d.comb += Assert(~b.source.valid | (vec_out != vec_in), "offers a vector not completely written")

        # The fold read at an advance shows on `data` the cycle after.
        read_vec, read_fold, checking = Signal(n), Signal(range(max(2, folds))), Signal()
        fold_now = Signal(range(max(2, folds)))
        m.d.comb += fold_now.eq(done % folds if folds > 1 else 0)
        m.d.sync += [checking.eq(advance), read_vec.eq(vec_out - 1), read_fold.eq(fold_now)]
        with m.If(checking & (read_vec == self.tag)):
            for s in range(beats):
                for i in range(w):
                    bit = s * w + i
                    with m.If((self.slot == s) & (read_fold == bit // simd)):
                        m.d.comb += Assert(b.data[bit % simd] == self.value[i], "a bit of the tracked beat moved")
        with m.If(checking & (read_fold == folds - 1)):
            for bit in range(w * beats - (folds - 1) * simd, simd):
                m.d.comb += Assert(~b.data[bit], "padding past the vector reads nonzero")
        m.d.comb += Cover(checking & (read_vec == self.tag) & (self.tag == 1) & (read_fold == folds - 1))
        return m
