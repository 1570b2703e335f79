"""Sliding-window unit (SWU): a pixel stream in, one KxK convolution window per output pixel out.

Engine module: :class:`WindowSpec` (what it computes), :class:`SlidingWindow`
(the Amaranth component), :class:`WindowModel` (its cycle model) and
:func:`estimate_window` (its resources).

The unit walks the padded image (H + 2P rows by W + 2P columns) in raster
order, one position per step. A real position takes one input pixel; a pad
position uses the constant pad pixel (every bit = the layer's pad bit) and
takes nothing, so pad rows and columns cost one cycle each but no input. A
frame's walk starts once its first pixel is offered, which makes the timing
independent of how long the unit idled before.

Storage: a line buffer of WP words (WP = W + 2P), word c holding column c of
the K-1 rows above the current one (C bits each), and the window itself as K
columns of K pixels. A step reads word c (prefetched one cycle ahead, so the
memory may be block RAM or LUTRAM), appends the current pixel to form the
newest column, shifts the window left by one column and writes the column's
lower K-1 pixels back to word c. Nothing ever holds more than K-1 rows.

Ports
-----
``sink``:   In(stream.Signature(C)) -- one pixel per beat, channel c in bit c, HWC raster order.
``source``: Out(stream.Signature(K*K*C)) -- one window per beat, in the IR's weight order:
            bit ``(ky*K + kx)*C + c`` = channel c of the pixel at window row ky, column kx.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .rom import bram18_count
from .spec import bits_for, ceil_div, check_identifier, check_int

__all__ = ["WindowSpec", "SlidingWindow", "WindowModel", "estimate_window", "line_buffer_is_block", "lutram_luts"]


@dataclass(frozen=True)
class WindowSpec:
    """A KxK window at stride 1 over an (H, W, C) bit map padded by ``padding`` pixels of ``pad_bit``."""

    name: str
    height: int
    width: int
    channels: int
    kernel: int
    padding: int = 0
    pad_bit: int = 0

    def __post_init__(self) -> None:
        check_identifier("Window name", self.name)
        for key in ("height", "width", "channels", "kernel"):
            check_int(f"Window {self.name}: {key}", getattr(self, key), 1)
        check_int(f"Window {self.name}: padding", self.padding, 0)
        check_int(f"Window {self.name}: pad_bit", self.pad_bit, 0, 1)
        if self.kernel > min(self.padded_height, self.padded_width):
            raise ValueError(f"Window {self.name}: a {self.kernel}x{self.kernel} kernel does not fit the padded "
                             f"{self.padded_height}x{self.padded_width} map")

    @property
    def padded_height(self) -> int:
        return self.height + 2 * self.padding

    @property
    def padded_width(self) -> int:
        return self.width + 2 * self.padding

    @property
    def out_height(self) -> int:
        return self.padded_height - self.kernel + 1

    @property
    def out_width(self) -> int:
        return self.padded_width - self.kernel + 1

    # --- stream shape (engine protocol) ---------------------------------------
    @property
    def sink_bits(self) -> int:
        return self.channels

    @property
    def sink_beats(self) -> int:
        return self.height * self.width

    @property
    def source_bits(self) -> int:
        return self.kernel * self.kernel * self.channels

    @property
    def source_beats(self) -> int:
        return self.out_height * self.out_width

    @property
    def steps(self) -> int:
        """Cycles per frame at best: one per padded position."""
        return self.padded_height * self.padded_width

    @property
    def line_bits(self) -> int:
        """Width of a line-buffer word: K-1 pixels."""
        return (self.kernel - 1) * self.channels


def lutram_luts(depth: int, width: int) -> int:
    """LUT6 of a simple dual-port LUTRAM as Yosys maps it on 7-series: RAM32M (32 x 6 in 4 LUTs),
    RAM64M (64 x 3 in 4 LUTs), RAM128X1D (128 x 1 in 4 LUTs) and muxed 128-word banks beyond."""
    if depth <= 32:
        return 4 * ceil_div(width, 6)
    if depth <= 64:
        return 4 * ceil_div(width, 3)
    banks = ceil_div(depth, 128)
    return width * (4 * banks + (banks - 1))


def line_buffer_is_block(spec: WindowSpec) -> bool:
    """Block RAM when LUTRAM would cost at least 64 LUTs per RAMB18 it replaces (the ROM rule)."""
    if not spec.line_bits:
        return False
    depth, width = spec.padded_width, spec.line_bits
    return lutram_luts(depth, width) >= 64 * bram18_count(depth, width)


class SlidingWindow(wiring.Component):
    """The SWU of a :class:`WindowSpec` (see the module docstring for ports and timing)."""

    def __init__(self, spec: WindowSpec) -> None:
        if not isinstance(spec, WindowSpec):
            raise TypeError(f"SlidingWindow spec must be a WindowSpec, not {spec!r}")
        self.spec = spec
        super().__init__({
            "sink": In(stream.Signature(spec.channels)),
            "source": Out(stream.Signature(spec.source_bits)),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        s = self.spec
        k, c, p = s.kernel, s.channels, s.padding
        hp, wp = s.padded_height, s.padded_width

        row = Signal(range(hp))
        col = Signal(range(wp))
        # Registered position flags, updated with the position: no compare sits on the
        # ready path. real: an input pixel is due; emits: this step completes a window.
        row_real = Signal(init=int(p == 0))
        col_real = Signal(init=int(p == 0))
        row_ready = Signal(init=int(k == 1))   # row >= K-1
        col_ready = Signal(init=int(k == 1))   # col >= K-1
        started = Signal()                    # past position (0, 0) of the current frame
        out_valid = Signal()
        # real == row_real & col_real, and pad_ok == ~real & started (a pad position may step without
        # an input), kept as registers with the last-row/column flags: `step` is then one LUT4 of
        # registers (the input's valid, pad_ok, out_valid and the consumer's ready) before its fan-out
        # to the window's registers, where it was three levels (the FINN-shape CNV's conv0 on the ECP5).
        real = Signal(init=int(p == 0))
        pad_ok = Signal()
        last_col = Signal(init=int(wp == 1))  # col == wp - 1
        last_row = Signal(init=int(hp == 1))  # row == hp - 1

        free = ~out_valid | self.source.ready
        step = Signal()
        m.d.comb += [
            step.eq((self.sink.valid | pad_ok) & free),
            self.sink.ready.eq(real & free),
            self.source.valid.eq(out_valid),
        ]

        pixel = Signal(c)
        m.d.comb += pixel.eq(Mux(real, self.sink.payload, Const((1 << c) - 1 if s.pad_bit else 0, c)))

        def at_least(value: Value, bound: int) -> Value:
            # `x >= 0` on an unsigned value is constant; Verilator's lint rejects it (UNSIGNED).
            return Const(1, 1) if bound <= 0 else value >= bound

        # ---- position -----------------------------------------------------------------
        # next_col (the column after this one) is a register moved with `col`: a block-RAM line
        # buffer's read address, Mux(step, next_col, col), fans out to every cell of the buffer, and
        # the adder and compare in front of that fan-out were the FINN-shape CNV's ECP5 critical path.
        next_col = Signal(range(max(2, wp)), init=int(wp > 1), name="next_col")
        with m.If(step):
            m.d.sync += next_col.eq(Mux(next_col == wp - 1, 0, next_col + 1))
        col_real_next, row_real_next, started_next = Signal(), Signal(), Signal()
        m.d.comb += [
            col_real_next.eq(Mux(last_col, p == 0, at_least(col + 1, p) & (col + 1 < p + s.width))),
            row_real_next.eq(Mux(last_col, Mux(last_row, p == 0, at_least(row + 1, p) & (row + 1 < p + s.height)),
                                 row_real)),
            started_next.eq(~(last_col & last_row)),
        ]
        with m.If(step):
            m.d.sync += [
                col.eq(next_col),
                last_col.eq(next_col == wp - 1),
                col_real.eq(col_real_next),
                row_real.eq(row_real_next),
                real.eq(col_real_next & row_real_next),
                pad_ok.eq(~(col_real_next & row_real_next) & started_next),
                col_ready.eq(Mux(last_col, k == 1, at_least(col + 1, k - 1))),
                out_valid.eq(row_ready & col_ready),
                started.eq(started_next),
            ]
            with m.If(last_col):
                next_row = Mux(last_row, 0, row + 1)
                m.d.sync += [
                    row.eq(next_row),
                    last_row.eq(next_row == hp - 1),
                    row_ready.eq(Mux(last_row, k == 1, at_least(row + 1, k - 1))),
                ]
        with m.Elif(self.source.ready):
            m.d.sync += out_valid.eq(0)

        # ---- line buffer and window -----------------------------------------------------
        if k == 1:
            newest = pixel
        else:
            block = line_buffer_is_block(s)
            lines = Memory(shape=s.line_bits, depth=wp, init=[],
                           attrs={"ram_style": "block" if block else "distributed"})
            m.submodules.lines = lines
            wr = lines.write_port()
            newest = Signal(k * c)                # rows r-K+1 .. r of this column, oldest first
            if block:
                # Block RAM reads synchronously: the address of the position worked on next cycle,
                # so its word is there when needed.
                rd = lines.read_port(domain="sync")
                m.d.comb += [rd.addr.eq(Mux(step, next_col, col)),
                             wr.addr.eq(col), wr.en.eq(step), wr.data.eq(newest[c:])]
            else:
                # LUT RAM reads asynchronously, at `col` itself: a register. Addressed a cycle
                # ahead, the address was Mux(step, next_col, col), and `step` (the handshakes of
                # both neighbours) reached every cell of the buffer through that mux: the
                # FINN-shape CNV's ECP5 critical path (conv1's window, 11 ns of routing). The read
                # sees the word before this cycle's write to the same address, as the rows below
                # need.
                rd = lines.read_port(domain="comb")
                m.d.comb += rd.addr.eq(col)
                # The write lands a cycle late, from registers: `step` holds the producer's valid,
                # and as the write enable it reached every cell of the buffer (the FINN-shape
                # CNV's ECP5 critical path, conv0's window: the input skid buffer's valid, then
                # 3.3 ns of write-enable fan-out). Safe: the next read of that word is a whole
                # row later (WP >= K >= 2 steps), and the read at `col` never sees a pending write.
                wr_en = Signal()
                wr_addr = Signal.like(col)
                wr_data = Signal(s.line_bits, reset_less=True)
                m.d.sync += [wr_en.eq(step), wr_addr.eq(col), wr_data.eq(newest[c:])]
                m.d.comb += [wr.addr.eq(wr_addr), wr.en.eq(wr_en), wr.data.eq(wr_data)]
            m.d.comb += newest.eq(Cat(rd.data, pixel))  # keep the K-1 newest for the rows below
        # Data, no reset: a window leaves only after K columns of its row have stepped in.
        columns = [Signal(k * c, name=f"col{x}", reset_less=True) for x in range(k)]  # columns[K-1] is the newest
        with m.If(step):
            for x in range(k - 1):
                m.d.sync += columns[x].eq(columns[x + 1])
            m.d.sync += columns[k - 1].eq(newest)
        m.d.comb += self.source.payload.eq(Cat(*[columns[kx][ky * c:(ky + 1) * c]
                                                 for ky in range(k) for kx in range(k)]))
        return m


class WindowModel:
    """The SWU's control, clock for clock (see :mod:`bnn2fpga.hw.cycles`)."""

    def __init__(self, spec: WindowSpec) -> None:
        self.spec = spec
        self.row = self.col = 0
        self.started = self.out = False

    def _real(self) -> bool:
        s, p = self.spec, self.spec.padding
        return p <= self.row < p + s.height and p <= self.col < p + s.width

    def out_valid(self) -> bool:
        return self.out

    def in_ready(self, out_ready: bool) -> bool:
        return self._real() and (not self.out or out_ready)

    def clock(self, in_valid: bool, in_fire: bool, out_fire: bool) -> None:
        s = self.spec
        free = not self.out or out_fire
        # A pad position steps once the frame has started or its first pixel is offered.
        step = in_fire if self._real() else (free and (self.started or in_valid))
        if step:
            k = s.kernel
            self.out = self.row >= k - 1 and self.col >= k - 1
            last = self.row == s.padded_height - 1 and self.col == s.padded_width - 1
            self.started = not last
            self.col += 1
            if self.col == s.padded_width:
                self.col = 0
                self.row = 0 if self.row == s.padded_height - 1 else self.row + 1
        elif out_fire:
            self.out = False


def estimate_window(spec: WindowSpec) -> dict[str, float]:
    """LUT6 / FF / BRAM of one SWU (calibrated against Yosys synth_xilinx)."""
    k, c = spec.kernel, spec.channels
    ff = k * k * c + bits_for(spec.padded_height) + bits_for(spec.padded_width) + 6
    lut = c + 2 * (bits_for(spec.padded_height) + bits_for(spec.padded_width)) + 12
    bram18 = 0
    memory = "none"
    if spec.line_bits:
        if line_buffer_is_block(spec):
            memory = "block"
            bram18 = bram18_count(spec.padded_width, spec.line_bits)
        else:
            memory = "distributed"
            lut += lutram_luts(spec.padded_width, spec.line_bits)  # read asynchronously: no read register
            ff += spec.line_bits + bits_for(spec.padded_width) + 1  # the write, registered
    return {"lut": lut, "ff": ff, "bram18": bram18, "bram36": bram18 / 2, "line_buffer": memory}
