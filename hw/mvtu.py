"""Matrix-vector-threshold unit (MVTU): one binary dense layer.

Ports
-----
``sink``:   In(stream.Signature(MW)) -- one whole input vector per beat, element i in bit i
            (MW*P bits for an integer-input layer: plane k of input i in bit i*P + k).
``source``: Out(stream.Signature(MH * OB)) -- one whole output vector per beat;
            OB = 1 (hidden layer: bit j = popcount_j >= T_j) or OB = bits(MW)
            (output layer: the popcount of class j in bits j*OB..j*OB+OB-1).

Datapath (see docs/hardware-contract.md, "MVTU pipeline")::

    sink --> [buf: MW bits] --SIMD slice--> x1 --+--> XNOR w_p --> popcount tree --> acc_p --> cmp
                                               |     (PE lanes, weight ROM per PE)
    source <-- [out_reg] <-- [acc_out: shift register, PE results per group]

* ``buf`` holds the current vector for all ceil(MH/PE) row groups; it is the
  second half of a double buffer whose first half is the producer's output
  register (the payload it holds while valid), so the next vector is ready
  while this one is computed. In at most ``mux_folds`` (8 by default) folds the SIMD slice is
  picked by a mux driven by the fold counter (MW/4 LUT6 on 7-series); in more,
  ``buf`` rotates by SIMD bits at each issue and the slice is its low bits (a
  LUT per bit, but no wide mux in front of ``x1``).
* Issue: cycles S+1..S+P after the input handshake at S (P = NF*NG), one fold
  per cycle, ROM address = issue index (block-RAM ROMs, which have an output
  register, get it one cycle earlier). The pipeline never stalls.
* Output: results shift into ``acc_out`` group by group, the finished vector
  moves to ``out_reg`` (the source payload) as soon as that is free. A
  vector starts only while fewer than ``out_slots`` (2 for dense layers) vectors are unconsumed (``pending``),
  which guarantees that ``acc_out`` is free whenever results arrive.
"""

from __future__ import annotations

import math
from collections import deque

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .popcount import popcount_stages, popcount_tree
from .rom import (
    ROM_STYLES,
    TWO_STAGE_ROM_WORDS,
    bram18_count,
    distributed_luts,
    has_rom,
    logic_rom_cost,
    logic_rom_stage_bits,
    mem_filename,
    rom_addresses_per_pe,
    rom_read,
    rom_read_latency,
    threshold_rows,
    weight_rom_is_block,
    weight_words,
)
from .spec import AcceleratorSpec, DenseLayerSpec, bits_for, ceil_div
from .stream import FlattenSpec
from .vecbuf import VectorBuffer, estimate_vector_buffer, link_signature

__all__ = ["MVTU", "MVTUModel", "takes_beats", "collected_inputs", "linked_inputs", "links_row_groups",
           "estimate_collecting_mvtu", "estimate_linking_mvtu",
           "full_rate_slots", "mvtu_pipeline_depth", "mvtu_period", "estimate_mvtu",
           "popcount_register_bits", "rotates_vector", "slice_select_luts"]


# ---- cycle model ---------------------------------------------------------------------------

def mvtu_pipeline_depth(layer: DenseLayerSpec, levels_per_stage: int) -> int:
    """D: cycles from a vector's last issue cycle to its output being valid.

    1 (SIMD slice and ROM read registers) + R (popcount tree) + 1 (accumulator)
    + 1 (registered compare into acc_out) + 1 (copy into the output register).
    """
    return popcount_stages(layer.simd, levels_per_stage) + 4


def mvtu_period(layer: DenseLayerSpec, levels_per_stage: int) -> int:
    """M: minimum cycles between two input handshakes of an MVTU.

    Vector n + S (S = ``out_slots``) starts only once vector n has been taken, at
    least P + D + 1 cycles after vector n started, so S vectors need P + D + 1
    cycles: M = max(P, ceil((P + D + 1) / S)). The sequencer pads its period to M
    so that a chain settles to one constant interval.
    """
    p = layer.cycles
    return max(p, ceil_div(p + mvtu_pipeline_depth(layer, levels_per_stage) + 1, layer.out_slots))


def full_rate_slots(layer: DenseLayerSpec, levels_per_stage: int) -> int:
    """The fewest ``out_slots`` with which the MVTU starts a vector every ``cycles`` (period = P)."""
    p = layer.cycles
    return max(2, ceil_div(p + mvtu_pipeline_depth(layer, levels_per_stage) + 1, p))


class MVTUModel:
    """The MVTU's control without its data, clock for clock (see :mod:`bnn2fpga.hw.cycles`)."""

    def __init__(self, layer: DenseLayerSpec, levels_per_stage: int) -> None:
        self.cycles, self.nf, self.ng = layer.cycles, layer.group_issues, layer.ng
        self.period = mvtu_period(layer, levels_per_stage)
        self.slots = layer.out_slots
        # An issue in cycle t reaches ``done`` (accumulator holds a finished row group) in
        # cycle t + D - 2: slice/ROM register, R tree stages, accumulator, done register.
        self.done_delay = mvtu_pipeline_depth(layer, levels_per_stage) - 2
        self.t = 0
        self.pending = 0
        self.busy = self.at_end = self.full = False
        self.count = self.group = self.queued = 0
        self.dones: deque[int] = deque()

    def out_valid(self) -> bool:
        return self.queued > 0

    def in_ready(self, out_ready: bool) -> bool:
        return (not self.busy or self.at_end) and self.pending < self.slots

    def clock(self, in_valid: bool, in_fire: bool, out_fire: bool) -> None:
        t = self.t
        if self.busy and self.count < self.cycles and self.count % self.nf == self.nf - 1:
            self.dones.append(t + self.done_delay)
        done = bool(self.dones) and self.dones[0] == t
        if done:
            self.dones.popleft()
        self.pending += int(in_fire) - int(out_fire)
        if in_fire:
            self.busy, self.count, self.at_end = True, 0, self.period == 1
        elif self.busy:
            ending = self.at_end
            self.at_end = self.count == self.period - 2
            self.count += 1
            if ending:
                self.busy = False
        else:
            self.at_end = False
        finished = done and self.group == self.ng - 1
        if done:
            self.group = (self.group + 1) % self.ng
        push = self.full and (self.queued < self.slots - 1 or out_fire)
        self.queued += int(push) - int(out_fire)
        self.full = (self.full and not push) or finished
        self.t = t + 1


# ---- resource model ------------------------------------------------------------------------


def rotates_vector(layer: DenseLayerSpec) -> bool:
    """Whether an MVTU holding its vector in a register rotates it instead of slicing it (``mux_folds``)."""
    return layer.group_issues > layer.mux_folds


def slice_select_luts(layer: DenseLayerSpec) -> int:
    """LUT6 that pick a register-held vector's SIMD slice: a mux per slice bit, or a load/rotate mux
    per vector bit (``rotates_vector``)."""
    folds = layer.group_issues
    if rotates_vector(layer):
        return folds * layer.simd
    return layer.simd * ceil_div(folds, 4) if folds > 1 else 0


#: PE lanes served by one copy of the slice register ``x1`` (see :func:`x1_copies`).
PES_PER_X1 = 8


def x1_copies(layer: DenseLayerSpec) -> int:
    """Copies of the slice register ``x1`` in an MVTU that slices a register-held vector.

    Every PE's XNORs read ``x1``; one register fanned out to 32 PEs across the layer's weight
    memories (conv0 of the FINN-shape CNV: 27 bits x 32 PEs, 11 ns of routing on the ECP5
    proxy). Each copy, loaded in the same cycle from the same slice, serves ``PES_PER_X1`` PEs and
    is placed beside them; the copies are kept (``keep``), as synthesisers merge identical
    registers otherwise. No cycle changes."""
    return ceil_div(layer.pe, PES_PER_X1)


def two_stage_thresholds(layer: DenseLayerSpec) -> bool:
    """Whether the layer reads its threshold table in two stages (``MVTU._banked_thresholds``): a table
    deeper than ``TWO_STAGE_ROM_WORDS`` rows, whose row groups are at least three issues apart."""
    return (layer.thresholds is not None and layer.ng > TWO_STAGE_ROM_WORDS and layer.group_issues >= 3)


def popcount_register_bits(n: int, levels_per_stage: int) -> int:
    """Flip-flops inside one popcount tree (mirrors ``popcount.popcount_tree``)."""
    maxima = [1] * n
    level, group, bits = 0, 3, 0
    while len(maxima) > 1:
        maxima = [sum(maxima[k:k + group]) for k in range(0, len(maxima), group)]
        level += 1
        group = 2
        if levels_per_stage and level % levels_per_stage == 0 and len(maxima) > 1:
            bits += sum(bits_for(mx) for mx in maxima)
    return bits + bits_for(maxima[0])


#: A registered threshold table of at most this many rows costs no LUTs: each bit is a function
#: of two address bits, which Yosys maps onto the flip-flop's sync set/reset and data pins
#: (weight ROMs: ``rom.logic_rom_cost``).
SHALLOW_ROM_WORDS = 4


def estimate_mvtu(layer: DenseLayerSpec, levels_per_stage: int) -> dict[str, float]:
    """LUT6 / FF / BRAM of one MVTU; the formulas are listed in ``hw/resources.py``."""
    pe, simd, ng = layer.pe, layer.simd, layer.ng
    depth, b, tb, ob = layer.rom_depth, layer.acc_bits, layer.threshold_bits, layer.out_bits
    block = weight_rom_is_block(layer)
    # XNOR + popcount tree: 1.6 LUT per input bit; against constant weights (one-word ROMs, a
    # fully parallel layer) the XNORs fold into the adders and the tree costs less than half.
    per_bit = 0.7 if depth == 1 else 1.6
    if (layer.vectors > 1 or layer.planes is not None) and depth > 1 and simd < 32:
        # Narrow trees pack tighter (conv layers measured: ~1.0 LUT per bit at SIMD 14-16); dense
        # layers keep the model their shipped builds were checked with.
        per_bit = 1.0 + 0.6 * max(0, simd - 8) / 24
    per_pe_lut = math.ceil(per_bit * simd) + b
    if not layer.is_output:
        # compare; a threshold table of more than SHALLOW_ROM_WORDS rows is a LUT ROM too
        per_pe_lut += tb + (tb * ceil_div(ng, 64) if ng > SHALLOW_ROM_WORDS else 0)
    lut = pe * per_pe_lut + slice_select_luts(layer) + 40
    ff = (layer.sink_bits + simd * x1_copies(layer) + ng * pe * ob + layer.mh * ob
          + pe * (b + popcount_register_bits(simd, levels_per_stage))
          + 3 * popcount_stages(simd, levels_per_stage)
          + 2 * bits_for(mvtu_period(layer, levels_per_stage)) + 12)
    if layer.planes is not None:  # each popcount shifted by its plane (P-way mux) before accumulating
        lut += pe * b
        ff += pe * 3 + 3 * popcount_stages(simd, levels_per_stage)
    if layer.out_slots > 2:  # the output queue: more entries, each with a load/shift mux
        ff += (layer.out_slots - 2) * layer.mh * ob
        lut += (layer.out_slots - 1) * layer.mh * ob
    if rom_addresses_per_pe(layer):  # an address counter per PE (MVTU._rom_address)
        address_bits = bits_for(mvtu_period(layer, levels_per_stage))
        ff += pe * address_bits
        lut += pe * address_bits
    if not layer.is_output and ng > SHALLOW_ROM_WORDS:  # registered table read
        ff += pe * tb
    if two_stage_thresholds(layer):  # a register per bank of the table's first stage
        ff += pe * tb * ceil_div(ng, TWO_STAGE_ROM_WORDS)
    bram18 = 0
    if block:  # PE x SIMD output registers (Yosys keeps them; Vivado packs them into the RAMB36)
        bram18 = pe * bram18_count(depth, simd)
        ff += pe * simd
    elif layer.vectors > 1 or layer.planes is not None:
        rom_lut, rom_ff = logic_rom_cost(depth, simd)
        lut, ff = lut + pe * rom_lut, ff + pe * (rom_ff + logic_rom_stage_bits(depth, simd))
    elif depth > SHALLOW_ROM_WORDS:
        # Dense layers keep the model their shipped builds were checked with (a short ROM as a full
        # LUT ROM): logic_rom_cost would move sfc-fmnist-bitslice's default folding (II 12 -> 10)
        # before a Yosys run has confirmed it.
        lut, ff = lut + pe * distributed_luts(depth, simd), ff + pe * (simd + logic_rom_stage_bits(depth, simd))
    return {"lut": lut, "ff": ff, "bram18": bram18, "bram36": bram18 / 2,
            "weight_rom": "block" if block else "distributed"}


def estimate_linking_mvtu(est: dict[str, float], layer: DenseLayerSpec) -> dict[str, float]:
    """``est`` for an MVTU that writes its row groups into the next layer's buffer: its collecting
    shift register and output register go (``ng * pe + mh`` flip-flops)."""
    return {**est, "ff": est["ff"] - layer.ng * layer.pe * layer.out_bits - layer.mh * layer.out_bits}


# ---- component -----------------------------------------------------------------------------

def table_lookup(rows: list[int], width: int, address: Value) -> Value:
    """``rows[address]`` as logic: each output bit a constant truth table indexed by the address (a
    ``$shiftx`` in Yosys, a LUT per bit for up to 64 rows on the 7-series), not a memory.

    Threshold tables were Amaranth memories read into a register, and Yosys merged that register
    into the memory as a synchronous read port (``memory_dff``, whatever ``keep`` said) and chose on
    which side of the lookup to put it back. Without a memory the register stays where the RTL puts
    it, in every synthesiser."""
    bits = []
    for j in range(width):
        column = sum(((row >> j) & 1) << r for r, row in enumerate(rows))
        bits.append(Const(column, max(1, len(rows))).bit_select(address, 1))
    return Cat(*bits)


def takes_beats(layer: DenseLayerSpec, beat: int) -> bool:
    """Whether the MVTU can collect its input vector itself from beats of ``beat`` bits.

    It does so (into a :class:`~.vecbuf.VectorBuffer`) when it reads the vector in more than one
    fold: the alternative, a collecting shift register and a register copy read through a
    ``folds``-way multiplexer, is what limits the clock. A vector read whole every cycle
    (one fold) keeps the registers: there is nothing to select."""
    planes = layer.plane_count
    if isinstance(beat, bool) or not isinstance(beat, int) or beat < 1 or beat % planes:
        return False
    w = beat // planes
    return layer.mw % w == 0 and layer.group_issues > 1


def collected_inputs(spec: AcceleratorSpec) -> dict[int, int]:
    """Layer index -> beat width, for every MVTU that collects its vector itself (see ``takes_beats``).

    Candidates are the first MVTU of a dense chain (behind the slicer's beats) and an MVTU behind a
    flatten (the map's pixels); the collecting stage in front of them goes."""
    beat = spec.bits_per_sample * spec.pixels_per_beat
    found = {}
    for k, layer in enumerate(spec.layers):
        prev = spec.layers[k - 1] if k else None
        collected = beat if (k == 0 and spec.is_dense) else prev.width if isinstance(prev, FlattenSpec) else None
        if isinstance(layer, DenseLayerSpec) and collected is not None and takes_beats(layer, collected):
            found[k] = collected
    return found


def links_row_groups(layer: DenseLayerSpec) -> bool:
    """Whether a dense layer can write its row groups (``pe`` bits each, whole) into the next
    layer's buffer: a hidden layer of one vector per frame, two output slots, PE dividing MH."""
    return (not layer.is_output and not layer.is_conv and layer.out_slots == 2 and layer.mh % layer.pe == 0)


def linked_inputs(spec: AcceleratorSpec) -> dict[int, int]:
    """Layer index -> beat width (the producer's PE), for every dense MVTU whose producer writes
    its row groups straight into its :class:`~.vecbuf.VectorBuffer` (``MVTU(links_out=True)``).

    The alternative, the producer's output register copied into the consumer's register and read
    through a ``folds``-way multiplexer (or rotated), holds the vector in flip-flops three times.
    A pair is linked where that is the dearer of the two in LUT + FF/2 (the 7-series has two
    flip-flops a LUT) and the buffer needs no block RAM, which the weights need more: a consumer
    reading its vector whole (one fold) keeps its register, as does one whose beats straddle its
    rows expensively."""
    found = {}
    for k in range(1, len(spec.layers)):
        prev, layer = spec.layers[k - 1], spec.layers[k]
        if isinstance(prev, DenseLayerSpec) and isinstance(layer, DenseLayerSpec) and links_row_groups(prev) \
                and not layer.is_conv and layer.planes is None and takes_beats(layer, prev.pe) \
                and _linking_pays(prev, layer, spec.popcount_levels_per_stage):
            found[k] = prev.pe
    return found


def _linking_pays(producer: DenseLayerSpec, consumer: DenseLayerSpec, levels_per_stage: int) -> bool:
    """The estimates' verdict: the pair linked against the pair handing the vector over in registers."""
    plain = estimate_mvtu(consumer, levels_per_stage)
    linked = estimate_collecting_mvtu(consumer, producer.pe, levels_per_stage, linked=True)
    producer_ff = estimate_linking_mvtu({"ff": 0.0}, producer)["ff"]  # minus its acc_out and output register
    extra_lut = linked["lut"] - plain["lut"]
    extra_ff = linked["ff"] - plain["ff"] + producer_ff
    return linked["bram18"] == plain["bram18"] and extra_lut + extra_ff / 2 < 0


def estimate_collecting_mvtu(layer: DenseLayerSpec, beat: int, levels_per_stage: int,
                             linked: bool = False) -> dict[str, float]:
    """An MVTU that collects its vector into a VectorBuffer: no register copy, no slice mux."""
    est = estimate_mvtu(layer, levels_per_stage)
    planes = layer.plane_count
    buf = estimate_vector_buffer(beat // planes, layer.mw * planes // beat, layer.simd, planes, linked=linked)
    est["ff"] += buf["ff"] - layer.sink_bits - layer.simd * x1_copies(layer)
    est["lut"] += buf["lut"] - slice_select_luts(layer)
    est["bram18"] += buf["bram18"]
    est["bram36"] = est["bram18"] / 2
    est["input_buffer"] = "block" if buf["bram18"] else "distributed"
    return est


class MVTU(wiring.Component):
    """One binary dense layer, folded onto ``layer.pe`` lanes of ``layer.simd`` bits.

    Parameters
    ----------
    layer: weights, thresholds (None: output layer) and folding.
    rom: ``"memory"`` (Amaranth Memory, for the Python simulator) or
        ``"instance"`` (Instance of the Verilog ROM ``rom_module`` that loads
        ``mem_filename(accel_name, layer.name, p)``; for Verilog output).
    levels_per_stage: popcount tree pipelining (see ``popcount.popcount_stages``).
    beat: collect the input vector from beats of this many bits into a
        :class:`~.vecbuf.VectorBuffer` (see ``takes_beats``); None: take it whole.
    linked: with ``beat``, the beats are the row groups of a producer MVTU built with
        ``links_out`` (a :func:`~.vecbuf.link_signature` sink, see ``linked_inputs``).
    links_out: write each finished row group (``pe`` bits) into the consumer's buffer instead of
        collecting the vector in an output register.
    """

    def __init__(self, layer: DenseLayerSpec, *, rom: str = "memory", levels_per_stage: int = 2,
                 rom_module: str = "bnn2fpga_rom", accel_name: str = "bnn2fpga", beat: int | None = None,
                 linked: bool = False, links_out: bool = False) -> None:
        if not isinstance(layer, DenseLayerSpec):
            raise TypeError(f"MVTU layer must be a DenseLayerSpec, not {layer!r}")
        if rom not in ROM_STYLES:
            raise ValueError(f"ROM style must be one of {ROM_STYLES}, not {rom!r}")
        if isinstance(levels_per_stage, bool) or not isinstance(levels_per_stage, int) \
                or levels_per_stage < 0:
            raise ValueError(f"levels_per_stage must be a non-negative integer, not {levels_per_stage!r}")
        if beat is not None and not takes_beats(layer, beat):
            raise ValueError(f"Layer {layer.name}: cannot collect its {layer.sink_bits}-bit vector from beats of "
                             f"{beat!r} bits (a multiple of its {layer.plane_count} plane(s) dividing the vector)")
        if linked and (beat is None or layer.planes is not None):
            raise ValueError(f"Layer {layer.name}: a linked input needs beats and a binary input")
        if links_out and not links_row_groups(layer):
            raise ValueError(f"Layer {layer.name}: only a hidden dense layer whose PE divides MH writes its row "
                             "groups into the next layer's buffer")
        self.layer = layer
        self.rom = rom
        self.levels_per_stage = levels_per_stage
        self.rom_module = rom_module
        self.accel_name = accel_name
        self.beat = beat
        self.linked = linked
        self.links_out = links_out
        width = layer.sink_bits if beat is None else beat
        super().__init__({
            "sink": In(link_signature(width) if linked else stream.Signature(width)),
            "source": Out(link_signature(layer.pe) if links_out else stream.Signature(layer.mh * layer.out_bits)),
        })

    @property
    def depth(self) -> int:
        """Cycles from the last issue cycle of a vector to its output being valid."""
        return mvtu_pipeline_depth(self.layer, self.levels_per_stage)

    @property
    def period(self) -> int:
        """Minimum cycles between two input handshakes."""
        return mvtu_period(self.layer, self.levels_per_stage)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        layer = self.layer
        pe, simd, nf, ng = layer.pe, layer.simd, layer.nf, layer.ng
        cycles, period = layer.cycles, self.period
        ob = layer.out_bits

        # ---- sequencer and input buffer ------------------------------------------------
        folds = layer.group_issues       # NF, or P*NF for an integer-input layer (plane-major)
        # The vector held for all row groups: a register here, or the VectorBuffer (``beat``).
        # Datapath registers (this vector buffer, the slice, accumulators, results) carry no reset:
        # their validity travels in the control bits, and the reset net stays small (see popcount_tree).
        buf = Signal(folds * simd, reset_less=True)  # upper (padding) bits stay 0; unused with ``beat``
        busy = Signal()
        count = Signal(range(max(2, period)))  # position inside the current period
        # At least one bit: a zero-width signal becomes `wire [-1:0]` in Verilog (ASCRANGE).
        fold = Signal(range(max(2, folds)))
        pending = Signal(range(layer.out_slots + 1))  # vectors started and not yet consumed downstream

        start = Signal()
        consumed = Signal()
        issue = Signal()
        # at_end == busy & (count == period - 1), kept as a register: `ready` (and with it
        # `start`, which loads the buffer and the ROM address) then needs no counter compare.
        at_end = Signal()
        # ready == (~busy | at_end) & (pending < out_slots), a register too (computed from the next
        # state of busy/at_end/pending): `start` fans out to the sequencer, the ROM address and the
        # vector buffer's banks, and the gates that formed `ready` in front of it were the iCE40's
        # critical path.
        ready = Signal(init=1)
        if self.beat is None:
            m.d.comb += [
                self.sink.ready.eq(ready),
                start.eq(self.sink.valid & ready),
            ]
        # issue == busy & (count < cycles), kept as a register (computed from the next state of
        # busy/count, below): it drives the vector buffer's read address, and the compare in front
        # of the address and the memory read was the ECP5 critical path (cnv's conv5, nin's output).
        m.d.comb += consumed.eq(self.source.valid & self.source.ready)
        pending_next = Signal.like(pending)
        m.d.comb += pending_next.eq(pending + start - consumed)
        m.d.sync += pending.eq(pending_next)
        idle_next = Mux(start, int(period == 1), Mux(busy, at_end | (count == period - 2), 1))
        m.d.sync += ready.eq(idle_next & (pending_next < layer.out_slots))
        x1 = Signal(simd, reset_less=True)
        if self.beat is not None:
            self._memory_input(m, x1, start, issue, ready=ready)
        if self.beat is None:
            loaded: Value = self.sink.payload
            if layer.planes is not None:
                # Plane-major: plane k's bits of inputs 0..MW-1 (payload bits i*P + k) fill NF*SIMD bits.
                n_planes, data = layer.plane_count, self.sink.payload
                loaded = Cat(*[Cat(*[data[i * n_planes + k] for i in range(layer.mw)],
                                   Const(0, nf * simd - layer.mw)) for k in range(n_planes)])
            with m.If(start):
                m.d.sync += buf.eq(loaded)
            if rotates_vector(layer):
                # Each issue moves the next fold into the low bits; after a row group's folds the
                # vector is back in place for the next group (a start here replaces a vector whose
                # last issue is this cycle's).
                with m.Elif(issue):
                    m.d.sync += buf.eq(buf.rotate_right(simd))
        with m.If(start):
            m.d.sync += [busy.eq(1), count.eq(0), at_end.eq(int(period == 1)), issue.eq(1)]
        with m.Elif(busy):
            # (one issue a vector: its only issue was the cycle after the start)
            more = ~at_end & (count < cycles - 1) if cycles > 1 else Const(0, 1)
            m.d.sync += [count.eq(count + 1), at_end.eq(count == period - 2), issue.eq(more)]
            with m.If(at_end):
                m.d.sync += busy.eq(0)
        with m.Else():
            m.d.sync += [at_end.eq(0), issue.eq(0)]
        # A vector is NF*NG folds (times P), so ``fold`` is back at 0 at every vector boundary.
        with m.If(issue):
            m.d.sync += fold.eq(Mux(fold == folds - 1, 0, fold + 1))

        # ---- stage 1: SIMD slice and ROM read (both registered) ------------------------
        v1, first1, last1 = Signal(), Signal(), Signal()
        m.d.sync += [v1.eq(issue), first1.eq(fold == 0), last1.eq(fold == folds - 1)]
        if self.beat is None:
            sliced = buf[:simd] if rotates_vector(layer) else buf.word_select(fold, simd)
            slice_value = buf if folds == 1 else sliced
            m.d.sync += x1.eq(slice_value)
            x1s = [x1] + [Signal(simd, name=f"x1_copy{c}", reset_less=True, attrs={"keep": 1})
                          for c in range(1, x1_copies(layer))]
            m.d.sync += [copy.eq(slice_value) for copy in x1s[1:]]
        else:
            x1s = [x1]
        weights = weight_words(layer)
        rom_addr: Value = count
        block = weight_rom_is_block(layer)
        # Block-RAM ROMs and deep ROMs in logic answer two cycles after the address.
        ahead = has_rom(layer) and rom_read_latency(layer.rom_depth, simd) == 2
        shift1: Value | None = None
        if layer.planes is not None:
            rom_addr, shift1 = self._plane_issue(m, issue, fold)
            if ahead:
                rom_addr = self._plane_address_ahead(m, start, busy, count)
        addresses = [rom_addr] * pe
        if layer.planes is None and (ahead or rom_addresses_per_pe(layer)):
            # Such ROMs answer two cycles after the address (a second register), so
            # the address runs one cycle ahead of the issue index: 0 whenever a vector
            # may start next cycle, else count + 1. The data then meets x1 exactly as a
            # one-cycle ROM's would, and the cycle model does not change. The address is
            # a register, not logic after count: it fans out to every PE's BRAMs, and a
            # comb address put the compare, the mux and that fan-out on the ECP5 critical
            # path (90.9 MHz at PE 32 x SIMD 64). ROMs in logic get one per PE.
            if rom_addresses_per_pe(layer):
                addresses = [self._rom_address(m, f"wrom{p}_addr", start, busy, count, ahead) for p in range(pe)]
            else:
                addresses = [self._rom_address(m, "rom_addr", start, busy, count, ahead)] * pe
        lanes = []
        for p in range(pe):
            w = rom_read(m, f"wrom{p}", weights[p], simd, addresses[p], style=self.rom,
                         module=self.rom_module,
                         init_file=mem_filename(self.accel_name, layer.name, p), block=block)
            x = x1s[p // PES_PER_X1] if len(x1s) > 1 else x1
            lanes.append(popcount_tree(m, ~(x ^ w), self.levels_per_stage, f"pe{p}"))

        # ---- control delayed alongside the popcount tree -------------------------------
        v, first, last = v1, first1, last1
        for s in range(self.depth - 4):
            nv, nfirst, nlast = Signal(name=f"v_s{s}"), Signal(name=f"first_s{s}"), Signal(name=f"last_s{s}")
            m.d.sync += [nv.eq(v), nfirst.eq(first), nlast.eq(last)]
            v, first, last = nv, nfirst, nlast
            if shift1 is not None:
                nshift = Signal.like(shift1, name=f"shift_s{s}")
                m.d.sync += nshift.eq(shift1)
                shift1 = nshift
        if shift1 is not None:  # an integer-input layer adds each plane's popcount << plane
            lanes = [pc << shift1 for pc in lanes]

        # ---- accumulate -----------------------------------------------------------------
        accs = [Signal(layer.acc_bits, name=f"acc{p}", reset_less=True) for p in range(pe)]
        done = Signal()                  # accs hold a finished row group
        m.d.sync += done.eq(v & last)
        with m.If(v):
            m.d.sync += [acc.eq(Mux(first, 0, acc) + pc) for acc, pc in zip(accs, lanes, strict=True)]

        # ---- registered compare into the output shift register --------------------------
        group = Signal(range(max(2, ng)))
        acc_out = Signal(ng * pe * ob, reset_less=True)
        full = Signal()                  # acc_out holds a whole vector
        if layer.is_output:
            results = Cat(*accs)
        else:
            tb = layer.threshold_bits
            if ng == 1:
                # Constant thresholds: channels with T = 0 / T > MW are constant bits
                # (no `acc >= 0` comparisons, which Verilator flags as UNSIGNED).
                consts = [int(t) for t in layer.thresholds] + [0] * (pe - layer.mh)
                results = Cat(*[Const(1, 1) if t == 0 else Const(0, 1) if t > layer.pc_max else acc >= t
                                for acc, t in zip(accs, consts, strict=True)])
            elif two_stage_thresholds(layer):
                table = self._banked_thresholds(m, self._row_counter(m, done, "threshold_group"))
                results = Cat(*[acc >= table[p * tb:(p + 1) * tb] for p, acc in enumerate(accs)])
            else:
                # Registered read, address one group ahead (the row the next `done` compares):
                # a combinational table read in front of the compare's carry chain was the
                # ECP5 critical path (9.4 ns at NG = 512). In logic (``table_lookup``): a block
                # RAM here would cost a RAMB18 per layer and bring back a slow clock-to-out.
                # The address is a register, `group` one cycle ahead: the group `done` will
                # compare next cycle (`done` is `v & last` delayed by one). An adder, then a
                # `done`-driven mux, in front of the table lookup were the next critical paths.
                threshold_row = self._row_counter(m, v & last, "threshold_row")
                tdata = Signal(pe * tb, name="threshold_q", reset_less=True)
                m.d.sync += tdata.eq(table_lookup(threshold_rows(layer), pe * tb, threshold_row))
                results = Cat(*[acc >= tdata[p * tb:(p + 1) * tb] for p, acc in enumerate(accs)])
        with m.If(done):
            if not self.links_out:
                m.d.sync += acc_out.eq(results if ng == 1 else Cat(acc_out[pe * ob:], results))
            m.d.sync += group.eq(Mux(group == ng - 1, 0, group + 1))
            if layer.out_slots == 2:
                with m.If(group == ng - 1):
                    m.d.sync += full.eq(1)

        if layer.out_slots == 2:
            # ---- output register -------------------------------------------------------------
            # Linked: the row groups were written into the consumer's buffer as they finished, and
            # only the flags remain (the consumer's three banks stand for acc_out, out_reg and its copy).
            out_valid = Signal()
            m.d.comb += self.source.valid.eq(out_valid)
            if self.links_out:
                m.d.comb += [self.source.put.eq(done), self.source.data.eq(results)]
            else:
                out_reg = Signal(layer.mh * ob, reset_less=True)
                m.d.comb += self.source.payload.eq(out_reg)
            with m.If(full & (~out_valid | self.source.ready)):
                m.d.sync += [out_valid.eq(1), full.eq(0)]
                if not self.links_out:
                    m.d.sync += out_reg.eq(acc_out[:layer.mh * ob])
            with m.Elif(consumed):
                m.d.sync += out_valid.eq(0)
        else:
            self._output_queue(m, acc_out[:layer.mh * ob], full, done & (group == ng - 1), consumed)
        return m

    def _rom_address(self, m: Module, name: str, start: Value, busy: Value, count: Value, ahead: bool) -> Signal:
        """A weight-ROM address register: ``count`` itself, or (``ahead``) one issue ahead of it: 1 after
        ``start``, then ``count + 2`` while issues remain (its own value + 1), else 0.

        It steps from its own value, not from ``count``: with one per PE (``rom_addresses_per_pe``) no
        two have the same inputs, so Yosys cannot merge them back into one register. One address
        fanned out to every PE's ROM in logic (PE x SIMD LUTs per bit, spread over the layer) was the
        FINN-shape CNV's critical path on the ECP5 proxy: 13.4 ns of routing for one net of conv1."""
        period = self.period
        if ahead:
            address = Signal(range(period + 1), name=name)
            with m.If(start):
                m.d.sync += address.eq(1)
            with m.Elif(busy & (count < period - 2)):
                m.d.sync += address.eq(address + 1)
            with m.Else():
                m.d.sync += address.eq(0)
        else:
            address = Signal.like(count, name=name)
            with m.If(start):
                m.d.sync += address.eq(0)
            with m.Elif(busy):
                m.d.sync += address.eq(address + 1)
        return address

    def _row_counter(self, m: Module, step: Value, name: str) -> Signal:
        """A threshold table's row: 0 to NG - 1, moving on (and wrapping) at ``step``, stepped by a table
        (``table_lookup``) rather than an adder.

        Indexed by a counter with an incrementer, the table lookup was built by ABC from the
        incrementer's outputs (its CARRY4, functions of the same bits), and the path ran from the
        counter through the carry and five LUT levels into the table's register: six LUT levels in
        the main job, against the 200 MHz rule's five. Stepped by a lookup, the counter offers no
        carry to build from. (A copy of the group counter would not do: Yosys merges registers with
        the same inputs.)"""
        ng = self.layer.ng
        row = Signal(range(max(2, ng)), name=name)
        with m.If(step):
            m.d.sync += row.eq(table_lookup([(r + 1) % ng for r in range(ng)], len(row), row))
        return row

    def _banked_thresholds(self, m: Module, row: Signal) -> Signal:
        """A deep threshold table read in two registered stages: every bank of ``TWO_STAGE_ROM_WORDS``
        rows reads the low bits of ``row`` into its register, then the bank the high bits name goes to
        the returned register, two cycles after ``row``. ``row`` is the group register itself: it moves
        to the next group at ``done``, and the next ``done`` comes at least ``group_issues`` (>= 3)
        cycles later. In one stage, cnv-w75's 384-row table was nine LUT levels on the xc7z020."""
        layer = self.layer
        rows = threshold_rows(layer)
        low = TWO_STAGE_ROM_WORDS.bit_length() - 1
        reads = []
        width = layer.pe * layer.threshold_bits
        for b, first in enumerate(range(0, len(rows), TWO_STAGE_ROM_WORDS)):
            chunk = rows[first:first + TWO_STAGE_ROM_WORDS]
            q = Signal(width, name=f"threshold{b}_q", reset_less=True)
            m.d.sync += q.eq(table_lookup(chunk, width, row[:max(1, (len(chunk) - 1).bit_length())]))
            reads.append(q)
        high = Signal(range(len(reads)), name="threshold_bank")
        table = Signal(width, name="threshold_data", reset_less=True)
        m.d.sync += [high.eq(row[low:]), table.eq(Array(reads)[high])]
        return table

    def _memory_input(self, m: Module, x1: Signal, start: Signal, issue: Value, ready: Value) -> None:
        """The vector collected from beats into a :class:`VectorBuffer` and read one fold per issue.

        Handshakes as a deserializer followed by the register copy (the cycle model is theirs);
        ``x1`` is the buffer's read register instead of a slice register behind a wide mux."""
        layer = self.layer
        assert self.beat is not None
        w = self.beat // layer.plane_count
        vbuf = VectorBuffer(w, layer.mw // w, layer.simd, layer.plane_count, linked=self.linked)
        m.submodules.inbuf = vbuf
        wiring.connect(m, wiring.flipped(self.sink), vbuf.sink)
        m.d.comb += [
            vbuf.source.ready.eq(ready),
            start.eq(vbuf.source.valid & ready),
            vbuf.advance.eq(issue),
            x1.eq(vbuf.data),
        ]

    def _plane_issue(self, m: Module, issue: Value, fold: Value) -> tuple[Value, Value]:
        """Integer-input layer: ROM address and plane shift of the fold issued now.

        Folds run plane-major inside a row group (fold = k*NF + f); the weights are shared by
        the planes, so the address is g*NF + f: a group base plus a column counter that both
        wrap on their own at the vector's end. Returns (address, registered shift = plane)."""
        layer = self.layer
        nf, ng = layer.nf, layer.ng
        column = Signal(range(max(2, nf)))
        base = Signal(range(max(2, ng * nf)))
        with m.If(issue):
            m.d.sync += column.eq(Mux(column == nf - 1, 0, column + 1))
            with m.If(fold == layer.group_issues - 1):
                m.d.sync += base.eq(Mux(base == (ng - 1) * nf, 0, base + nf))
        shift = Signal(range(8))
        plane: Value = Const(layer.planes[0], range(8))
        for k, p in enumerate(layer.planes[1:], start=1):
            plane = Mux(fold >= k * nf, p, plane)
        m.d.sync += shift.eq(plane)
        return base + column, shift

    def _plane_address_ahead(self, m: Module, start: Value, busy: Value, count: Value) -> Signal:
        """Integer-input layer with block-RAM ROMs: the address of the *next* issue, a register.

        A block-RAM ROM answers two cycles after its address, so the address must be presented a
        cycle before the issue that uses it, as the binary layers' ``rom_addr`` does with the issue
        count. The plane-major sequence ``g*NF + f`` (issue i = g*P*NF + k*NF + f) is stepped one
        issue ahead by its own column and fold counters: set to issue 1's state on ``start``
        (issue 0 reads address 0, presented while idle), stepped while issues remain, 0 otherwise.
        Every term is a register, so the address fans out to the PEs' block RAMs straight from
        flip-flops."""
        layer = self.layer
        nf, folds, cycles = layer.nf, layer.group_issues, layer.cycles
        column = Signal(range(max(2, nf)), name="ahead_column")
        fold = Signal(range(max(2, folds)), name="ahead_fold")
        address = Signal(range(max(2, layer.rom_depth)), name="rom_addr")

        def step(c: int, f: int, a: int) -> tuple[int, int, int]:
            """The state after one issue, in Python (for issue 1's constants)."""
            return (0 if c == nf - 1 else c + 1, 0 if f == folds - 1 else f + 1,
                    a - (nf - 1) if c == nf - 1 and f != folds - 1 else a + 1)

        first = step(0, 0, 0)
        with m.If(start):
            m.d.sync += [column.eq(first[0]), fold.eq(first[1]), address.eq(first[2])]
        with m.Elif(busy & (count < cycles - 2)):
            wrap_column = column == nf - 1
            m.d.sync += [
                column.eq(Mux(wrap_column, 0, column + 1)),
                fold.eq(Mux(fold == folds - 1, 0, fold + 1)),
                address.eq(Mux(wrap_column & (fold != folds - 1), address - (nf - 1), address + 1)),
            ]
        with m.Else():
            m.d.sync += [column.eq(0), fold.eq(0), address.eq(0)]
        return address

    def _output_queue(self, m: Module, result: Value, full: Signal, finished: Value, consumed: Value) -> None:
        """``out_slots - 1`` finished vectors in a shift-register queue, oldest at the source.

        With ``out_slots`` vectors allowed in flight, a conv layer whose pipeline is
        deeper than its cycles per window still starts one window every ``cycles``.
        ``full`` may be set by a finishing vector in the very cycle the previous one
        moves into the queue (back-to-back vectors), so it is computed here in one place.
        """
        depth = self.layer.out_slots - 1
        queue = [Signal(len(result), name=f"queue{i}", reset_less=True) for i in range(depth)]
        level = Signal(range(depth + 1))
        push = Signal()
        m.d.comb += [
            push.eq(full & ((level < depth) | consumed)),
            self.source.payload.eq(queue[0]),
            self.source.valid.eq(level != 0),
        ]
        m.d.sync += [level.eq(level + push - consumed), full.eq((full & ~push) | finished)]
        slot = Signal(range(depth + 1))  # where a pushed vector goes: after the entries that stay
        m.d.comb += slot.eq(level - consumed)
        for i in range(depth):
            with m.If(push & (slot == i)):
                m.d.sync += queue[i].eq(result)
            if i + 1 < depth:
                with m.Elif(consumed):
                    m.d.sync += queue[i].eq(queue[i + 1])
