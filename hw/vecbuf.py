"""A vector held in memory: beats written once, SIMD-wide folds read at the fold counter's address.

An MVTU reads its input vector once per row group, SIMD bits per cycle. Held in flip-flops, that
read is a ``MW/SIMD``-way multiplexer per bit (896-way for a 6,272-bit first layer), the widest
and slowest logic in the design, and the vector sits in flip-flops twice (the collecting shift
register, then the MVTU's copy). :class:`VectorBuffer` keeps it once, in two banks of memory
(LUTRAM, block RAM or EBR, as the synthesiser maps it): the producer's beats are written into one
bank while the MVTU reads the other, and the read is a memory read at an address the fold counter
drives.

Handshake and timing are those of the collecting deserializer it replaces (``stream.Deserializer``
followed by the MVTU's register copy), cycle for cycle, so the cycle models do not change:

* a beat is accepted while the vector is incomplete, or in the cycle the full vector is taken;
* ``source.valid`` (a payload-less stream) while a whole vector waits; the consumer takes it with
  ``source.ready`` and from then on reads that bank;
* ``advance`` in cycle t reads the current fold; its SIMD bits are on ``data`` in cycle t+1, from
  a register, as the MVTU's slice register gave them (the memory itself is addressed a cycle
  earlier). Folds run plane-major (plane k's column f is fold ``k*NF + f``) and wrap at the
  vector's end.

The write side is where beat width ``w`` (bits per plane per beat) and ``SIMD`` meet. With
``u = gcd(w, SIMD)`` as the unit, a beat is ``w/u`` units and a fold ``SIMD/u``:

* ``w`` divides ``SIMD``: beats gathered into rows of SIMD bits (a lane register each), one write
  per row;
* ``SIMD`` divides ``w``: one word per beat, the fold is one of ``w/SIMD`` slices of a word;
* otherwise a beat straddles two rows (or a fold two words): even and odd rows (words) live in
  two memories, so each is written (read) once per cycle, and a ``w/u``-way rotation places the
  units. The fold search prefers foldings of the first two kinds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .spec import bits_for, ceil_div

__all__ = ["VectorBuffer", "buffer_kind", "estimate_vector_buffer", "late_writes", "link_signature"]


def link_signature(width: int) -> wiring.Signature:
    """A dense MVTU's output written straight into the next MVTU's :class:`VectorBuffer`.

    ``put`` with ``data``: one finished row group (a beat of ``width`` bits), written into the
    vector being collected; ``valid``: a whole vector waits (the producer's output register of a
    register hand-off, without the register); ``ready``: the consumer takes it."""
    return wiring.Signature({"put": Out(1), "data": Out(width), "valid": Out(1), "ready": In(1)})


@dataclass(frozen=True)
class _Counter:
    cur: Signal  # the fold being read (its data leaves the memory this cycle)
    nxt: Signal  # the fold addressed now (read next cycle)
    addr: Value | None = None  # == nxt, from registers and one mux (see VectorBuffer._ahead)


@dataclass(frozen=True)
class _WritePort:
    addr: Signal
    data: Signal
    en: Signal


#: A counter's step: (its value, ``at``) -> its value after one fold; ``at(counter)`` picks the
#: other counters' current or next values (see ``VectorBuffer._counter``).
Step = Callable[[Value, Callable[[_Counter], Value]], Value]


def buffer_kind(w: int, simd: int) -> str:
    """How beats of ``w`` bits meet folds of ``simd`` bits: "lanes", "slices" or "straddle"."""
    if simd % w == 0:
        return "lanes"
    if w % simd == 0:
        return "slices"
    return "straddle"


def _maps_to_block_ram(width: int, depth: int) -> bool:
    """Whether Yosys ``synth_xilinx`` puts a ``width`` x ``depth`` buffer memory in block RAM (RAMB18
    as 512 x 36, output register absorbed) rather than LUTRAM: deeper than 128 words, or 128 words of
    at least 64 bits."""
    return depth > 128 or (depth == 128 and width >= 64)


def _lutram_luts(width: int, depth: int) -> int:
    """7-series LUTs of a simple dual-port LUTRAM: RAM32M (6 bits x 32), RAM64M (3 bits x 64), or
    RAM64Ms side by side and a mux for deeper ones."""
    if depth <= 32:
        return 4 * ceil_div(width, 6)
    return 4 * ceil_div(width, 3) * ceil_div(depth, 64) + (width if depth > 64 else 0)


def late_writes(w: int, beats: int, simd: int) -> bool:
    """Whether a :class:`VectorBuffer`'s writes may land a cycle after their beat's ``put``.

    The vector's last beat is then written in the cycle its vector may already be taken, when the
    memory is read at the vector's first row (or word). That is safe when the two rows differ: a
    vector of at least two rows (lanes), two words (slices), four rows (straddling rows: each
    memory holds every other row, and a beat may spill into the next) or three words (straddling
    words). Every other write lands before its row is read, in the bank that is not being read."""
    kind = buffer_kind(w, simd)
    nf = ceil_div(w * beats, simd)
    if kind == "lanes":
        return nf >= 2
    if kind == "slices":
        return beats >= 2
    return nf >= 4 if simd > w else beats >= 3


def estimate_vector_buffer(w: int, beats: int, simd: int, planes: int, linked: bool = False) -> dict[str, float]:
    """LUT6 / FF / BRAM18 of a :class:`VectorBuffer` as Yosys ``synth_xilinx`` maps it.

    ``linked``: three banks in the room of four (each memory twice as deep), writes always late.

    Each plane's memory (both banks) becomes block RAM when deeper than 128 words, or 128 words
    of at least 64 bits (RAMB18 as 512 x 36, output register absorbed), else LUTRAM whose read
    register is flip-flops. Straddling rows are written lane by lane (one memory per lane of
    ``gcd(w, simd)`` bits, LUTRAM) through a ``w/gcd``-way rotation; straddling words are read
    through one."""
    kind = buffer_kind(w, simd)
    nf = ceil_div(w * beats, simd)
    u = math.gcd(w, simd)
    banks = 4 if linked else 2
    rows = kind == "straddle" and simd > w  # straddling rows, written lane by lane
    lut = ff = bram18 = 0
    if rows:
        depth = banks * (1 << max(1, (nf // 2).bit_length()))
        lut += planes * (2 * (simd // u) * _lutram_luts(u, depth) + simd * ceil_div(w // u, 4))
        ff += planes * 2 * simd
    else:
        if kind == "lanes":
            width, depth, mems = simd, banks * (1 << max(1, (nf - 1).bit_length())), 1
        elif kind == "slices":
            width, depth, mems = w, banks * (1 << max(1, (beats - 1).bit_length())), 1
        else:
            width, depth, mems = w, banks * (1 << max(1, (beats // 2).bit_length())), 2
        for _ in range(mems * planes):
            if _maps_to_block_ram(width, depth):
                bram18 += ceil_div(width, 36) * ceil_div(depth, 512)
            elif kind == "lanes":  # written lane by lane: a LUTRAM w bits wide and a write enable per lane
                lut += (simd // w) * (_lutram_luts(w, depth) + 1)
                ff += width
            else:
                lut += _lutram_luts(width, depth)
                ff += width
        if kind == "slices" and w > simd:  # the read word, loaded and shifted (a 2:1 mux per bit)
            lut += w // 2
            ff += w - simd
        elif kind == "straddle":
            lut += planes * simd * ceil_div(w // u, 4)
    # Lane registers and their mux: in front of a row written whole (see VectorBuffer._lanes).
    lanes = simd // w if kind == "lanes" and _maps_to_block_ram(simd, depth) else 1
    if linked or late_writes(w, beats, simd):  # the write's registers: data, enables, address (per plane)
        wide = simd if (kind == "lanes" and lanes > 1) or rows else w
        enables = simd // w if kind == "lanes" and lanes == 1 else 2 * (simd // u) if rows else 2
        ff += planes * (wide + enables) + bits_for(depth)
    ff += planes * (lanes - 1) * w + simd + 2 * bits_for(beats) + 2 * bits_for(nf) + 8  # + the read's second register
    lut += planes * (lanes - 1) * w // 2 + (planes - 1) * simd // 3 + 30
    return {"lut": lut, "ff": ff, "bram18": bram18}


class VectorBuffer(wiring.Component):
    """Two banks of a ``beats`` x ``planes * w``-bit vector, read ``simd`` bits per fold.

    Ports
    -----
    ``sink``:    In(stream.Signature(planes * w)) -- a beat; plane k of its element i in bit i*planes + k.
    ``source``:  Out(stream.Signature(0)) -- valid while a whole vector waits; ready takes it.
    ``advance``: In(1) -- read the current fold of the taken vector, then move to the next.
    ``data``:    Out(simd) -- the fold read at the previous cycle's ``advance``.

    ``linked``: the sink is a producer MVTU's :func:`link_signature` instead of a stream, and the
    buffer has three banks: the producer's register hand-off held three vectors (its collecting
    shift register, its output register, the consumer's copy), and the three banks take their
    places cycle for cycle. Beats are written when put (the producer cannot wait); whether a
    vector waits, and its taking, are the producer's (``sink.valid``, ``sink.ready``). The
    producer starts a vector only while at most one of its vectors waits untaken, so a bank is
    free whenever a row group is put, and the last beat is put at least two cycles before its
    vector can be taken, so writes always land a cycle late, from registers.
    """

    def __init__(self, w: int, beats: int, simd: int, planes: int = 1, *, linked: bool = False) -> None:
        for what, value in (("beat width", w), ("beat count", beats), ("simd", simd), ("plane count", planes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"VectorBuffer {what} must be a positive integer, not {value!r}")
        if simd > w * beats:
            raise ValueError(f"VectorBuffer simd ({simd}) must not exceed the vector's {w * beats} bits")
        self.w, self.beats, self.simd, self.planes = w, beats, simd, planes
        self.nf = ceil_div(w * beats, simd)
        self.kind = buffer_kind(w, simd)
        self.linked = linked
        super().__init__({
            "sink": In(link_signature(planes * w) if linked else stream.Signature(planes * w)),
            "source": Out(stream.Signature(unsigned(0))),
            "advance": In(1),
            "data": Out(simd),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        w, beats, planes, nf = self.w, self.beats, self.planes, self.nf
        self._part: Value | None = None  # set by the slices layout: which slice of its word a fold is
        self._late = self.linked or late_writes(w, beats, self.simd)

        # ---- write side: the deserializer's control -------------------------------------------
        # All of it registers: the next beat's index, whether it is the vector's last, and the
        # banks' state (a counter compared with `beats` put a 10-bit compare and the lane decode in
        # front of every lane register's enable: the iCE40's critical path).
        index = Signal(range(max(2, beats)))  # the position of the next beat put in its vector
        last = Signal(init=int(beats == 1))   # index == beats - 1
        put = Signal()
        take = Signal()
        if beats > 1:
            with m.If(put):
                m.d.sync += [index.eq(Mux(last, 0, index + 1)), last.eq(~last & (index == beats - 2))]
        if self.linked:
            bank, read_bank_next = self._linked_banks(m, put, take, last)
        else:
            bank, read_bank_next = self._stream_banks(m, put, take, last)
        self._last_beat = last

        # ---- read side: the fold counter, plane-major -----------------------------------------
        # The memory is addressed one cycle ahead, with the counters' next values (a fold
        # `advance`d in cycle t is addressed in cycle t-1), and its data registered again after
        # the read: a block RAM's clock-to-out (5.8 ns on the ECP5) then ends at a register
        # instead of in front of the XNOR and the popcount tree, and `data` still shows the
        # fold in cycle t+1. The selects after the read use the counters' current values.
        column = self._counter(m, "column", max(2, nf), lambda c, at: Mux(c == nf - 1, 0, c + 1), ahead=True,
                               alone=int(nf > 1))
        self._column = column
        plane = self._counter(m, "plane", max(2, planes),
                              lambda p, at: Mux(self._last(at), Mux(p == planes - 1, 0, p + 1), p) if planes > 1 else p)

        payload = self.sink.data if self.linked else self.sink.payload
        beat_planes = [Cat(*[payload[i * planes + k] for i in range(w)]) for k in range(planes)]
        build = {"lanes": self._lanes, "slices": self._slices, "straddle": self._straddle}[self.kind]
        reads = build(m, beat_planes, put, bank, index, read_bank_next, column)
        data: Value = reads[0]
        for k in range(1, planes):
            data = Mux(plane.cur == k, reads[k], data)
        if self._part is None:
            held = Signal(self.simd, reset_less=True)  # data: no reset (see popcount_tree)
            m.d.sync += held.eq(data)
        else:
            # Slices: the read word is loaded at its first fold and shifted by SIMD at each later
            # one, so the fold is always the low SIMD bits: no slice mux between the memory's
            # clock-to-out and the popcount tree.
            held = Signal(self.w, reset_less=True)
            with m.If(self.advance):
                m.d.sync += held.eq(Mux(self._part == 0, data, held >> self.simd))
        m.d.comb += self.data.eq(held[:self.simd])
        return m

    def _stream_banks(self, m: Module, put: Signal, take: Signal, last: Signal) -> tuple[Value, Value]:
        """Two banks behind a stream: (the bank a beat put now goes to, the bank read next cycle)."""
        full = Signal()
        write_bank = Signal()   # the bank the incomplete vector is written to
        read_bank = Signal()    # the bank of the vector taken last
        m.d.comb += [
            self.source.valid.eq(full),
            self.sink.ready.eq(~full | self.source.ready),
            put.eq(self.sink.valid & self.sink.ready),
            take.eq(full & self.source.ready),
        ]
        # A beat put while full comes with the take and is the next vector's first (index 0).
        with m.If(put):
            m.d.sync += full.eq(last)
        with m.Elif(take):
            m.d.sync += full.eq(0)
        with m.If(take):
            m.d.sync += [read_bank.eq(write_bank), write_bank.eq(~write_bank)]
        bank = Signal()
        m.d.comb += bank.eq(write_bank ^ full)
        read_bank_next = Signal()
        m.d.comb += read_bank_next.eq(Mux(take, write_bank, read_bank))
        return bank, read_bank_next

    def _linked_banks(self, m: Module, put: Signal, take: Signal, last: Signal) -> tuple[Value, Value]:
        """Three banks in a ring, filled and taken in order: a vector's bank is its number mod 3."""
        write_bank = Signal(2)           # the bank the vector being put goes to
        read_bank = Signal(2, init=2)    # the bank of the vector taken last (none yet: the one before 0)
        m.d.comb += [
            self.source.valid.eq(self.sink.valid),
            self.sink.ready.eq(self.source.ready),
            put.eq(self.sink.put),
            take.eq(self.sink.valid & self.source.ready),
        ]
        with m.If(put & last):
            m.d.sync += write_bank.eq(Mux(write_bank == 2, 0, write_bank + 1))
        read_bank_next = Signal(2)
        m.d.comb += read_bank_next.eq(Mux(take, Mux(read_bank == 2, 0, read_bank + 1), read_bank))
        m.d.sync += read_bank.eq(read_bank_next)
        return write_bank, read_bank_next

    def _last(self, at: Callable[[_Counter], Value]) -> Value:
        """Whether the column counter, at the time ``at`` picks, is at the vector's last column."""
        return at(self._column) == self.nf - 1

    def _counter(self, m: Module, name: str, size: int, step: Step, *, ahead: bool = False,
                 alone: int | None = None) -> _Counter:
        """A read-side counter that moves on ``advance``: its register and its next value.

        ``step(value, at)`` is the value after one fold, written over ``value`` and over the other
        counters as ``at`` picks them (``at(c)`` is ``c.cur`` or ``c.nxt``). With ``ahead``, the counter
        also gets ``addr`` (== ``nxt``) as ``Mux(advance, ahead, cur)``, where ``ahead`` is a register
        holding the stepped value, computed a cycle early by the same step over the counters' next
        values. The address fans out to every memory cell of the buffer; the compares and adders of
        the step in front of that fan-out were the FINN-shape CNV's ECP5 critical path (conv5's
        buffer, six LUT levels and 5 ns of routing).

        ``alone``: the step reads no other counter, and this is its value after 0. Then ``ahead``
        (always ``step(cur)``) steps itself on ``advance``, from its own register, instead of stepping
        ``nxt``: one increment and compare in front of it, not two in series (cnv's conv5 buffer,
        six LUT levels on the xc7 when abc chained the two)."""
        cur = Signal(range(size), name=name)
        nxt = Signal(range(size), name=f"{name}_next")
        m.d.sync += cur.eq(nxt)
        if ahead and alone is not None:
            stepped = Signal(range(size), name=f"{name}_ahead", init=alone)
            with m.If(self.advance):
                m.d.sync += stepped.eq(step(stepped, lambda c: c.cur))
            m.d.comb += nxt.eq(Mux(self.advance, stepped, cur))
            return _Counter(cur, nxt, nxt)
        m.d.comb += nxt.eq(Mux(self.advance, step(cur, lambda c: c.cur), cur))
        if not ahead:
            return _Counter(cur, nxt)
        stepped = Signal(range(size), name=f"{name}_ahead")
        m.d.sync += stepped.eq(step(nxt, lambda c: c.nxt))
        return _Counter(cur, nxt, Mux(self.advance, stepped, cur))

    # -- memories -------------------------------------------------------------------------------

    def _depth(self, index_bits: int) -> int:
        """Words of each memory: ``2**index_bits`` per bank, two banks (three when linked, in four's room)."""
        return (4 if self.linked else 2) << index_bits

    def _memory(self, m: Module, name: str, width: int, index_bits: int) -> Memory:
        # The bank is the address's top bit(s). Zero-initialised: the padding past the
        # vector's last element is never written and must read 0 (see the MVTU's masking).
        # `no_rw_check`: a read and a write never meet at one address while the read's data is
        # used (the write goes to the bank that is not being read; before the first vector is
        # taken nothing reads the data), so the synthesiser need not make a block RAM return the
        # old word on such a collision. Yosys otherwise builds that in soft logic (a register of
        # the write data and an address compare per port): on the iCE40 96 FF and 124 LUT4 for
        # the iCEBreaker example's first layer, and the board's critical path.
        mem = Memory(shape=width, depth=self._depth(index_bits), init=[], attrs={"no_rw_check": 1})
        m.submodules[name] = mem
        return mem

    @staticmethod
    def _read(m: Module, mem: Memory, addr: Value) -> Value:
        """A synchronous read of ``mem`` at ``addr``: the data a cycle later.

        Written as an asynchronous port and a register, which Yosys merges into the memory's
        synchronous port (``memory_dff``) and where it reads the memory's ``no_rw_check``; a port
        declared synchronous reaches Yosys with read-old-data collisions asked for. Simulation
        and every synthesiser see a registered read either way."""
        port = mem.read_port(domain="comb")
        data = Signal(mem.shape, reset_less=True)  # data: no reset (see popcount_tree)
        m.d.comb += port.addr.eq(addr)
        m.d.sync += data.eq(port.data)
        return data

    def _write(self, m: Module, mem: Memory, granularity: int | None = None) -> _WritePort:
        """A write port of ``mem``: drive its ``addr``/``data``/``en`` in the cycle of the ``put``.

        With late writes (:func:`late_writes`) the memory takes them a cycle later, from
        registers: the beat's handshake then ends at those registers instead of running through
        the lane and row decode into every memory's write enable (the iCE40's critical path,
        five LUT levels from the input skid buffer's ``valid`` to an EBR's ``WCLKE``)."""
        port = mem.write_port() if granularity is None else mem.write_port(granularity=granularity)
        if not self._late:
            return _WritePort(port.addr, port.data, port.en)
        addr = Signal.like(port.addr)
        data = Signal.like(port.data)
        en = Signal.like(port.en)
        addr_q = Signal.like(port.addr, reset_less=True)
        data_q = Signal.like(port.data, reset_less=True)
        m.d.sync += [addr_q.eq(addr), data_q.eq(data), port.en.eq(en)]
        m.d.comb += [port.addr.eq(addr_q), port.data.eq(data_q)]
        return _WritePort(addr, data, en)

    def _lanes(self, m: Module, beat_planes: list[Value], put: Value, bank: Value, index: Value,
               read_bank: Value, column: _Counter) -> list[Value]:
        """``w`` divides ``simd``: beats gathered into a row of ``simd/w`` lanes.

        In LUTRAM each beat is written straight into its lane (a write enable per lane of ``w``
        bits: the synthesiser builds a narrow memory per lane, at about the LUTs of one wide
        memory). Lanes past a short last row are never written and keep their initial 0.

        In block RAM, whose byte enables do not fit arbitrary lanes, the row's earlier beats wait
        in a lane register (each lane loads its own beat: no mux) and the last beat of a row (or
        of the vector, whose last row may be short) writes the row whole, lanes past the beat as
        0, so the memory has one full-width write port and is not split per lane. That costs a
        register and a 3:1 mux per bit of the row (about 2,100 LUTs and FFs for a 2,128-bit row)."""
        w, simd, lanes = self.w, self.simd, self.simd // self.w
        row_bits = max(1, (self.nf - 1).bit_length())
        if not _maps_to_block_ram(simd, self._depth(row_bits)):
            return self._lane_writes(m, beat_planes, put, bank, read_bank, column, row_bits)
        row, hot = self._row_and_lane(m, put, row_bits, lanes)
        # The lanes before the next beat's (thermometer), cleared with each new row.
        before = Signal(lanes)
        with m.If(put):
            m.d.sync += before.eq(Mux(self._last_beat | hot[lanes - 1], 0, Cat(1, before[:-1])))
        write = Signal()
        m.d.comb += write.eq(put & (hot[lanes - 1] | self._last_beat))
        reads = []
        for k, beat in enumerate(beat_planes):
            held = [Signal(w, name=f"plane{k}_lane{i}", reset_less=True) for i in range(lanes - 1)]
            for i, reg in enumerate(held):
                with m.If(put & hot[i]):
                    m.d.sync += reg.eq(beat)
            # Lanes past the current beat are zero: a short last row must not carry old beats.
            row_data = Cat(*[Mux(hot[i], beat, Mux(before[i], held[i], 0)) for i in range(lanes - 1)],
                           Mux(hot[lanes - 1], beat, 0))
            mem = self._memory(m, f"plane{k}", simd, row_bits)
            wr = self._write(m, mem)
            m.d.comb += [wr.addr.eq(Cat(row, bank)), wr.data.eq(row_data), wr.en.eq(write)]
            reads.append(self._read(m, mem, Cat(column.addr, read_bank)))
        return reads

    def _row_and_lane(self, m: Module, put: Value, row_bits: int, lanes: int) -> tuple[Signal, Signal]:
        """The next beat's row and its lane (one-hot) in the lanes layout: registers that go back to
        row 0, lane 0 after the vector's last beat."""
        row = Signal(row_bits)
        hot = Signal(lanes, init=1)
        with m.If(put):
            with m.If(self._last_beat):
                m.d.sync += [row.eq(0), hot.eq(1)]
            with m.Elif(hot[lanes - 1]):
                m.d.sync += [row.eq(row + 1), hot.eq(1)]
            if lanes > 1:
                with m.Else():
                    m.d.sync += hot.eq(hot << 1)
        return row, hot

    def _lane_writes(self, m: Module, beat_planes: list[Value], put: Value, bank: Value, read_bank: Value,
                     column: _Counter, row_bits: int) -> list[Value]:
        """The lanes layout in LUTRAM: every beat written into its own lane of its row."""
        w, lanes = self.w, self.simd // self.w
        row, hot = self._row_and_lane(m, put, row_bits, lanes)
        reads = []
        for k, beat in enumerate(beat_planes):
            mem = self._memory(m, f"plane{k}", self.simd, row_bits)
            wr = self._write(m, mem, granularity=w)
            m.d.comb += [
                wr.addr.eq(Cat(row, bank)), wr.data.eq(Cat(*[beat] * lanes)),
                wr.en.eq(Cat(*[put & hot[i] for i in range(lanes)])),
            ]
            reads.append(self._read(m, mem, Cat(column.addr, read_bank)))
        return reads

    def _slices(self, m: Module, beat_planes: list[Value], put: Value, bank: Value, index: Value,
                read_bank: Value, column: _Counter) -> list[Value]:
        """``simd`` divides ``w``: a word per beat, a fold is one of its ``w/simd`` slices."""
        w, simd = self.w, self.simd
        per_word = w // simd
        word_bits = max(1, (self.beats - 1).bit_length())
        part = self._counter(m, "part", max(2, per_word),
                             lambda p, at: Mux((p == per_word - 1) | self._last(at), 0, p + 1) if per_word > 1 else p)
        def word_step(q: Value, at: Callable[[_Counter], Value]) -> Value:
            return Mux(self._last(at), 0, q + ((at(part) == per_word - 1) if per_word > 1 else 1))

        word = self._counter(m, "word", 1 << word_bits, word_step, ahead=True)
        reads = []
        for k, beat in enumerate(beat_planes):
            mem = self._memory(m, f"plane{k}", w, word_bits)
            wr = self._write(m, mem)
            m.d.comb += [wr.addr.eq(Cat(index, bank)), wr.data.eq(beat), wr.en.eq(put)]
            reads.append(self._read(m, mem, Cat(word.addr, read_bank)))
        if per_word > 1:
            self._part = part.cur
        return reads

    def _straddle(self, m: Module, beat_planes: list[Value], put: Value, bank: Value, index: Value,
                  read_bank: Value, column: _Counter) -> list[Value]:
        """Neither width divides the other: even and odd rows (or words) in two memories."""
        w, simd = self.w, self.simd
        u = math.gcd(w, simd)
        if simd > w:
            return self._straddle_rows(m, beat_planes, put, bank, index, read_bank, column, u)
        return self._straddle_words(m, beat_planes, put, bank, index, read_bank, u)

    def _straddle_rows(self, m: Module, beat_planes: list[Value], put: Value, bank: Value, index: Value,
                       read_bank: Value, column: _Counter, u: int) -> list[Value]:
        # A beat of wu units starting at unit `base` of row `row` ends in row + 1 when it wraps.
        s, wu = self.simd // u, self.w // u
        half_bits = max(1, (self.nf // 2).bit_length())
        row = Signal(range(self.nf + 1))
        base = Signal(range(s))
        first = index == 0
        cur_row: Value = Mux(first, 0, row)
        cur_base: Value = Mux(first, 0, base)
        with m.If(put):
            wraps = cur_base >= s - wu
            m.d.sync += [base.eq(Mux(wraps, cur_base + wu - s, cur_base + wu)), row.eq(cur_row + wraps)]
        odd = cur_row[0]
        reads = []
        for k, beat in enumerate(beat_planes):
            units = [beat[i * u:(i + 1) * u] for i in range(wu)]
            # Lane x holds unit (x - base) mod s of the beat; the other lanes are not written.
            lane_data, here, wrapped = [], [], []
            for x in range(s):
                value: Value = Const(0, u)
                for i in range(wu):
                    value = Mux(cur_base == (x - i) % s, units[i], value)
                lane_data.append(value)
                here.append((cur_base <= x) & (x < cur_base + wu))   # in the beat's own row
                wrapped.append(x + s < cur_base + wu)                 # spilled into the next row
            mems = []
            for parity in (0, 1):
                mem = self._memory(m, f"plane{k}_{'odd' if parity else 'even'}", self.simd, half_bits)
                wr = self._write(m, mem, granularity=u)
                # The even memory takes row `row` when it is even, else row + 1 (its spill).
                own = odd if parity else ~odd
                addr = (cur_row >> 1) if parity else ((cur_row + 1) >> 1)
                m.d.comb += [
                    wr.addr.eq(Cat(addr[:half_bits], bank)),
                    wr.data.eq(Cat(*lane_data)),
                    wr.en.eq(Cat(*[put & Mux(own, here[x], wrapped[x]) for x in range(s)])),
                ]
                mems.append(self._read(m, mem, Cat((column.addr >> 1)[:half_bits], read_bank)))
            reads.append(Mux(column.cur[0], mems[1], mems[0]))
        return reads

    def _straddle_words(self, m: Module, beat_planes: list[Value], put: Value, bank: Value, index: Value,
                        read_bank: Value, u: int) -> list[Value]:
        # A fold of s units starting at unit `offset` of word `word` ends in word + 1 when it wraps.
        s, wu = self.simd // u, self.w // u
        half_bits = max(1, (self.beats // 2).bit_length())
        offset = self._counter(m, "offset", wu,
                               lambda o, at: Mux(self._last(at), 0, Mux(o >= wu - s, o + s - wu, o + s)))
        word = self._counter(m, "word", self.beats + 1,
                             lambda q, at: Mux(self._last(at), 0, q + (at(offset) >= wu - s)))
        reads = []
        for k, beat in enumerate(beat_planes):
            mems = []
            for parity in (0, 1):
                mem = self._memory(m, f"plane{k}_{'odd' if parity else 'even'}", self.w, half_bits)
                wr = self._write(m, mem)
                # Read words `word` and `word + 1`: the even one of the two at (word + 1) >> 1.
                addr = (word.nxt >> 1) if parity else ((word.nxt + 1) >> 1)
                m.d.comb += [
                    wr.addr.eq(Cat((index >> 1)[:half_bits], bank)), wr.data.eq(beat),
                    wr.en.eq(put & (index[0] if parity else ~index[0])),
                ]
                mems.append(self._read(m, mem, Cat(addr[:half_bits], read_bank)))
            low = Mux(word.cur[0], mems[1], mems[0])
            high = Mux(word.cur[0], mems[0], mems[1])
            both = Cat(low, high)
            value: Value = Const(0, self.simd)
            for o in range(wu):
                value = Mux(offset.cur == o, both[o * u:o * u + self.simd], value)
            reads.append(value)
        return reads
