"""Weight and threshold ROM contents, ``.mem`` files and the ROM primitive.

One weight ROM per PE: word ``g*NF + f`` of PE ``p`` holds the SIMD weight
bits of row ``g*PE + p``, columns ``f*SIMD .. f*SIMD+SIMD-1``, LSB first.
Padding columns (beyond MW in the last fold) are 1: the input buffer pads
with 0 and ``xnor(0, 1) = 0``, so they never count and no mask logic is
needed. Rows of masked lanes (beyond MH in the last group) are 0 and their
results are dropped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
from amaranth.hdl import ClockSignal, Instance, Module, Signal, Value
from amaranth.lib.memory import Memory
from amaranth.utils import ceil_log2

from .spec import DenseLayerSpec

__all__ = [
    "ROM_STYLES", "weight_words", "threshold_rows", "mem_text", "mem_filename", "rom_read",
    "rom_is_block", "rom_read_latency", "bram18_count", "distributed_luts", "has_rom", "weight_rom_is_block",
    "logic_rom_cost", "shared_block_rom_commands", "TWO_STAGE_ROM_WORDS", "logic_rom_stage_bits",
    "rom_addresses_per_pe",
]

ROM_STYLES = ("memory", "instance")


def _pack_rows(bits: np.ndarray) -> list[int]:
    """Rows of 0/1 → integers, column 0 in the least significant bit."""
    packed = np.packbits(bits.astype(np.uint8), axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def weight_words(layer: DenseLayerSpec) -> list[list[int]]:
    """Per PE, the ROM words in address order (``layer.rom_depth`` words of ``simd`` bits)."""
    pe, simd, nf, ng = layer.pe, layer.simd, layer.nf, layer.ng
    padded = np.zeros((ng * pe, nf * simd), dtype=np.uint8)
    padded[:layer.mh, :] = 1
    padded[:layer.mh, :layer.mw] = layer.weights
    # (group, lane, fold, simd) -> per lane: (group*fold, simd)
    tiles = padded.reshape(ng, pe, nf, simd).transpose(1, 0, 2, 3).reshape(pe, ng * nf, simd)
    return [_pack_rows(tiles[p]) for p in range(pe)]


def threshold_rows(layer: DenseLayerSpec) -> list[int]:
    """Per row group, all lanes' thresholds packed (lane p at bits p*TB..), masked lanes 0."""
    if layer.thresholds is None:
        raise ValueError(f"Layer {layer.name} is an output layer and has no thresholds")
    tb, pe = layer.threshold_bits, layer.pe
    t = np.zeros(layer.ng * pe, dtype=np.int64)
    t[:layer.mh] = layer.thresholds
    rows = []
    for g in range(layer.ng):
        word = 0
        for p in range(pe):
            word |= int(t[g * pe + p]) << (p * tb)
        rows.append(word)
    return rows


def mem_text(words: list[int], width: int) -> str:
    """``$readmemh`` text: one zero-padded hex word per line, no comments (every tool reads it)."""
    digits = max(1, -(-width // 4))
    return "".join(f"{w:0{digits}x}\n" for w in words)


def has_rom(layer: DenseLayerSpec) -> bool:
    """Whether the layer's PEs get weight ROMs (and .mem files); one-word ROMs are constants."""
    return layer.rom_depth > 1


def weight_rom_is_block(layer: DenseLayerSpec) -> bool:
    """Whether the layer's weight ROMs go to block RAM (``rom_is_block``): the same rule for an
    integer-input layer, whose planes re-read the same words (its address runs ahead along the
    plane-major sequence, see ``MVTU._plane_issue``)."""
    return rom_is_block(layer.rom_depth, layer.simd)


def rom_addresses_per_pe(layer: DenseLayerSpec) -> bool:
    """Whether each PE reads its weight ROM at an address register of its own (``MVTU._rom_address``):
    ROMs in logic of a binary-input layer. Their address reaches PE x SIMD LUTs per bit; a block-RAM
    ROM's reaches a few block RAMs, and an integer-input layer's is a sum of two counters."""
    return has_rom(layer) and not weight_rom_is_block(layer) and layer.planes is None and layer.pe > 1


def mem_filename(accel: str, layer: str, pe: int) -> str:
    """File name of one PE ROM; also the ROM's ``INIT_FILE`` parameter (see ``templates/rom.v.j2``)."""
    return f"{accel}_{layer}_pe{pe}.mem"


_PE_ROM_FILE = re.compile(r"^(?P<layer>[A-Za-z0-9_]+)_pe(?P<pe>[0-9]+)\.mem$")


def shared_block_rom_commands(memories: Sequence[str]) -> list[str]:
    """Yosys commands, run after reading the sources and before elaboration, that point every
    block-RAM weight ROM of a layer (``BLOCK = 1``) at the ``INIT_FILE`` of the layer's first PE.

    Yosys derives, maps and optimises one module per distinct set of ROM parameters, and most of
    a large design's synthesis time goes to that, once per PE. A block ROM's mapping (its RAMB18
    and RAMB36 tiles, the output register) follows from its depth and width, not its bits, so with
    one file per layer the layer's block ROMs are synthesised once and counted once per PE. ROMs in
    LUTs (``BLOCK = 0``) keep their own files: their LUTs are their contents.
    """
    first: dict[str, tuple[int, str]] = {}
    for name in memories:
        m = _PE_ROM_FILE.match(name)
        if m is None:
            continue
        pe = int(m["pe"])
        if m["layer"] not in first or pe < first[m["layer"]][0]:
            first[m["layer"]] = (pe, name)
    return [f'setparam -set INIT_FILE "{name}" r:BLOCK=1 r:INIT_FILE={layer}_pe* %i'
            for layer, (_, name) in sorted(first.items())]


def bram18_count(depth: int, width: int) -> int:
    """RAMB18E1 primitives for a depth x width ROM (7-series aspect ratios 16Kx1 .. 512x36)."""
    for max_depth, max_width in ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1)):
        if depth <= max_depth:
            return -(-width // max_width)
    return -(-depth // 16384) * width


def distributed_luts(depth: int, width: int) -> int:
    """LUT6 of a ROM built from logic: one 64x1 LUT per bit per 64 words (MUXF7/F8 join them).

    A one-word ROM is a constant and costs nothing."""
    return 0 if depth == 1 else width * -(-depth // 64)


# LUT6 per distinct data column of a registered LUT ROM of 2..8 words (Yosys synth_xilinx, random
# contents): a column that is constant or an address bit costs nothing, two address bits fit the
# flip-flop's set/reset, three and more need a LUT.
_SHORT_ROM_LUT_PER_COLUMN = {2: 0.0, 3: 0.0, 4: 0.15, 5: 0.42, 6: 0.56, 7: 0.7, 8: 0.9}


def logic_rom_cost(depth: int, width: int) -> tuple[int, int]:
    """(LUT6, FF) of a ``depth`` x ``width`` weight ROM in logic with its read register.

    A ROM of at most 8 words has at most 2^depth distinct bit columns, and synthesis keeps one
    register (and at most one LUT) per distinct column: 2^depth * (1 - (1 - 2^-depth)^width) of
    them for random bits. Deeper ROMs cost ``distributed_luts`` and ``width`` registers.
    Measured (32-bit words): 3 words 0 LUT / 6 FF, 5 words 8 / 19, 8 words 27 / 30, 12+ words 32 / 32.
    """
    if depth <= 1:
        return 0, 0
    if depth in _SHORT_ROM_LUT_PER_COLUMN:
        patterns = 2 ** depth
        distinct = patterns * (1 - (1 - 1 / patterns) ** width)
        return math.ceil(_SHORT_ROM_LUT_PER_COLUMN[depth] * distinct), math.ceil(distinct)
    return distributed_luts(depth, width), width


def rom_is_block(depth: int, width: int) -> bool:
    """Put a weight ROM in block RAM when logic would cost at least 64 LUTs per RAMB18 used.

    On xc7z020 (53,200 LUT, 280 RAMB18) a RAMB18 is worth ~190 LUTs; 64 keeps
    BRAM for ROMs that would otherwise be big LUT arrays (e.g. 512x32 -> 1
    RAMB18 instead of 256 LUTs) and leaves shallow ROMs (depth <= 64) in LUTs.
    """
    return depth > 1 and distributed_luts(depth, width) >= 64 * bram18_count(depth, width)


#: A ROM deeper than this that the rule keeps in logic reads in two stages all the same (a second
#: register, as block RAM's); the open flows put it in block RAM (``rom_read``).
TWO_STAGE_ROM_WORDS = 64


def rom_read_latency(depth: int, width: int) -> int:
    """Cycles from ``addr`` to ``data`` of a ``depth`` x ``width`` weight ROM.

    Block RAM gets a second register on its output (the BRAM's own output
    register: DOA_REG on 7-series, OUTREG on ECP5). Without it the BRAM's
    clock-to-out (5.6 ns on ECP5) plus the route out of the BRAM column sat in
    front of the XNOR/popcount logic and limited Fmax to 79 MHz. A ROM in logic
    deeper than ``TWO_STAGE_ROM_WORDS`` reads in two stages; a shallower one keeps
    one register (a second would cost PE x SIMD flip-flops for nothing).
    """
    return 2 if rom_is_block(depth, width) or depth > TWO_STAGE_ROM_WORDS else 1


def logic_rom_stage_bits(depth: int, width: int) -> int:
    """Flip-flops a ROM in logic adds for its second read stage (0 when it reads in one)."""
    return width if not rom_is_block(depth, width) and rom_read_latency(depth, width) == 2 else 0


def rom_read(m: Module, name: str, words: list[int], width: int, addr: Value, *, style: str,
             module: str, init_file: str, block: bool | None = None) -> Signal:
    """A synchronous-read ROM; returns its data output, valid ``rom_read_latency`` cycles after ``addr``.

    ``style="memory"``: an Amaranth ``Memory`` with init (Python simulation).
    ``style="instance"``: an ``Instance`` of the Verilog ROM ``module`` that loads
    ``init_file`` with ``$readmemh`` (synthesis infers BRAM/LUTRAM from it).
    A one-word ROM is a constant (no latency). ``block``: block RAM or logic; None: ``rom_is_block``.
    """
    depth = len(words)
    if block is None:
        block = rom_is_block(depth, width)
    latency = 2 if block or depth > TWO_STAGE_ROM_WORDS else 1  # rom_read_latency's rule, for the block given
    data = Signal(width, name=f"{name}_data", reset_less=True)
    if depth == 1:
        # A one-word ROM is a constant: no memory, no .mem file, and synthesis can
        # fold it into the XNORs.
        m.d.comb += data.eq(words[0])
    elif style == "memory":
        # The open flows synthesise this form: a deep ROM goes to block RAM there (EBR, DP16KD), whose
        # clock-to-out ends at the second register; in the iCE40's LUT4s its mux tree was the board's
        # critical path (a 460-word ROM: six levels).
        mem = Memory(shape=width, depth=depth, init=words, attrs={"ram_style": "block"} if latency == 2 else {})
        m.submodules[name] = mem
        port = mem.read_port()
        m.d.comb += port.addr.eq(addr)
        if latency == 2:  # the block RAM's output register
            m.d.sync += data.eq(port.data)
        else:
            m.d.comb += data.eq(port.data)
    elif style == "instance":
        addr_width = max(1, ceil_log2(depth))
        m.submodules[name] = Instance(
            module,
            p_WIDTH=width, p_DEPTH=depth, p_ADDR_WIDTH=addr_width,
            p_BLOCK=int(block), p_LATENCY=latency, p_INIT_FILE=init_file,
            i_clk=ClockSignal(), i_addr=addr[:addr_width] if len(addr) >= addr_width else addr,
            o_data=data,
        )
    else:
        raise ValueError(f"ROM style must be one of {ROM_STYLES}, not {style!r}")
    return data

