"""Target boards: part, resources and default clock (docs/architecture.md, boards).

The folding is chosen to fit a board's budget and checked against a Yosys estimate of the
real netlist (:mod:`bnn2fpga.backend.synth`), so the numbers here are the device totals
from the vendors' data sheets, in the units that estimate reports.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MemoryBlock:
    """A family's block RAM primitive: what one unit of ``Board.bram`` holds."""

    kind: str   # primitive name
    kbits: int  # data capacity of one block (parity bits excluded)


XILINX_BRAM36 = MemoryBlock("RAMB36", 36)  # 7-series and UltraScale+: 36 Kb, splits into two RAMB18
ECP5_DP16KD = MemoryBlock("DP16KD", 18)    # ECP5 sysMEM EBR: 18 Kb
ICE40_EBR = MemoryBlock("SB_RAM40_4K", 4)  # iCE40 EBR: 4 Kb


@dataclass(frozen=True)
class HostLink:
    """How a host feeds the accelerator: the peak bytes per second that can reach its input stream."""

    name: str
    bytes_per_second: float
    source: str  # where the number comes from
    max_beat_bytes: int | None = None  # the widest stream beat the link's hardware offers

    def frames_per_second(self, frame_bytes: int) -> float:
        return self.bytes_per_second / frame_bytes


def _axi_dma(bits: int, clock_mhz: float, manual: str) -> HostLink:
    # One AXI DMA read channel streams at most one data beat per fabric clock; its memory side
    # is one high-performance (HP) port, `bits` wide. This is the peak; DRAM refresh, descriptor
    # handling and the host's own copies only lower it.
    return HostLink(f"AXI DMA over a {bits}-bit HP port at {clock_mhz:g} MHz", bits / 8 * clock_mhz * 1e6,
                    f"HP port width from {manual}; one beat per clock at the design's clock (peak)",
                    max_beat_bytes=128)  # AXI DMA streams at most 1024 bits (PG021)


def _serial(chip: str, baud: int) -> HostLink:
    # 8N1: ten bits on the wire per byte; the bridge reads one byte (one pixel) per input beat.
    return HostLink(f"USB serial ({chip}) at {baud / 1e6:g} Mbaud, 8N1", baud / 10,
                    f"the {chip} data sheet's fastest UART rate; 10 bits on the wire per byte", max_beat_bytes=1)


@dataclass(frozen=True)
class Board:
    name: str
    part: str
    family: str           # synthesis family: "xc7", "xcup" (UltraScale+), "ecp5", "ice40"
    vendor: str
    lut: int              # LUT6 for Xilinx, LUT4 for ECP5
    ff: int
    bram: int             # blocks of `memory`
    dsp: int
    memory: MemoryBlock
    clock_mhz: float = 100.0  # the clock the folding plans for (open-toolchain boards: their oscillator,
    #                            the slowest the PLL runs the design at, so the chosen folding keeps up at any)
    lut_inputs: int = 6
    host_link: HostLink | None = None  # None: the accelerator's own input stream is the limit

    @property
    def bram_kbits(self) -> int:
        return self.bram * self.memory.kbits


_BOARDS: tuple[Board, ...] = (
    Board("pynq-z2", "xc7z020clg400-1", "xc7", "xilinx",
          lut=53_200, ff=106_400, bram=140, dsp=220, memory=XILINX_BRAM36,
          host_link=_axi_dma(64, 100.0, "the Zynq-7000 TRM (UG585): S_AXI_HP0-3 are 64-bit")),
    Board("zcu104", "xczu7ev-ffvc1156-2-e", "xcup", "xilinx",
          lut=230_400, ff=460_800, bram=312, dsp=1_728, memory=XILINX_BRAM36,
          host_link=_axi_dma(128, 100.0, "the Zynq UltraScale+ TRM (UG1085): S_AXI_HP0-3_FPD are 128-bit")),
    Board("ultra96-v2", "xczu3eg-sbva484-1-e", "xcup", "xilinx",
          lut=70_560, ff=141_120, bram=216, dsp=360, memory=XILINX_BRAM36,
          host_link=_axi_dma(128, 100.0, "the Zynq UltraScale+ TRM (UG1085): S_AXI_HP0-3_FPD are 128-bit")),
    Board("kv260", "xck26-sfvc784-2LV-c", "xcup", "xilinx",
          lut=117_120, ff=234_240, bram=144, dsp=1_248, memory=XILINX_BRAM36,
          host_link=_axi_dma(128, 100.0, "the Zynq UltraScale+ TRM (UG1085): S_AXI_HP0-3_FPD are 128-bit")),
    # ECP5 DSPs are counted as MULT18X18D (156 on the 85F).
    Board("ulx3s-85f", "LFE5U-85F-6BG381C", "ecp5", "lattice",
          lut=83_640, ff=83_640, bram=208, dsp=156, memory=ECP5_DP16KD, clock_mhz=25.0, lut_inputs=4,
          host_link=_serial("FT231X", 3_000_000)),
    # iCE40UP5K: 5,280 LUT4, 30 EBR of 4 Kb, 8 SB_MAC16 (its 1 Mb of SPRAM cannot be initialised: unused).
    Board("icebreaker", "iCE40UP5K-SG48", "ice40", "lattice",
          lut=5_280, ff=5_280, bram=30, dsp=8, memory=ICE40_EBR, clock_mhz=12.0, lut_inputs=4,
          host_link=_serial("FT2232H", 12_000_000)),
)

BOARDS: dict[str, Board] = {b.name: b for b in _BOARDS}


class UnknownBoardError(KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def get_board(name: str) -> Board:
    """The board called ``name`` (case-insensitive), or an error listing the valid names."""
    board = BOARDS.get(name.strip().lower()) if isinstance(name, str) else None
    if board is None:
        raise UnknownBoardError(f"unknown board {name!r}; valid boards: {', '.join(sorted(BOARDS))}")
    return board
