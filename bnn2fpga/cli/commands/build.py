"""`bnn2fpga build`: generate the accelerator: Verilog, .mem, manifest, report, TCL, driver."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import UserError
from ..common import console, rate_or_max, real

if TYPE_CHECKING:

    pass

NAME = "build"


def add_arguments(sub: Any) -> argparse.ArgumentParser:
    """This command's parser, its arguments and its handler, on the subcommand table ``sub``."""
    from ...boards import BOARDS

    p = sub.add_parser(NAME, help="generate the accelerator: Verilog, .mem, manifest, report, TCL, driver",
                       description="Compile a binary network checkpoint (dense layers, KxK convolutions, max-pools; "
                                   "binary or integer first layer) into a streaming dataflow "
                                   "accelerator. Folding (PE x SIMD per layer, pixels per input beat) is chosen "
                                   "automatically: by default the cheapest folding that keeps up with what the "
                                   "board's host link can feed (faster would idle), with --target-fps N the "
                                   "cheapest reaching N, with --target-fps max the fastest whose estimate fits the "
                                   "board with --margin; or it is read from --folding. The report says which bound "
                                   "set the frame rate. Yosys synthesises the result for the board's part and a design "
                                   "that does not fit is refused with the numbers and a folding that would. For "
                                   "the open-toolchain boards (icebreaker, ulx3s-85f) the build goes on to a "
                                   "bitstream: the accelerator behind a UART bridge, placed and routed with nextpnr "
                                   "at the fastest clock that meets timing with a 10 % margin (docs/boards.md).",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       epilog="examples: bnn2fpga build examples/cnv-fmnist.pt --board pynq-z2 --out build/cnv; "
                              "bnn2fpga build examples/tfc-fmnist-ice40.pt --board icebreaker")
    p.add_argument("checkpoint")
    p.add_argument("--board", choices=sorted(BOARDS), default="pynq-z2")
    p.add_argument("--out", help="build folder (default: build/<checkpoint>-<board>)")
    p.add_argument("--folding", metavar="JSON", help="use this folding (e.g. a build's folding.json)")
    p.add_argument("--target-fps", type=rate_or_max, metavar="FPS|max",
                   help="cheapest folding reaching this frame rate; 'max': the fastest folding that fits. Default: "
                        "the rate the board's host link can feed (pynq-z2: 800 MB/s of AXI DMA, 1.02 M frames/s "
                        "of 784 bytes)")
    p.add_argument("--margin", type=real(0, 1), default=0.85, help="usable fraction of the board's LUTs and FFs")
    p.add_argument("--backend", choices=["rtl", "hls"], default="rtl",
                   help="rtl: Verilog and the Yosys check; hls: Vitis HLS C++ dataflow design with the same "
                        "folding, a testbench and run_hls.tcl (Xilinx boards; `bnn2fpga sim` runs its C simulation "
                        "with g++; docs/hls.md)")
    p.add_argument("--no-synth", action="store_true",
                   help="skip the Yosys resource check (open-toolchain boards: also place, route and bitstream)")
    p.add_argument("--exact-roms", action="store_true",
                   help="Yosys maps every PE's block-RAM weight ROM with its own contents. By default each layer's "
                        "block ROMs are synthesised once, with PE 0's weights, and counted once per PE: their "
                        "mapping depends on depth and width only, and it halves synthesis of large designs "
                        "(docs/hardware.md)")
    p.add_argument("--ecp5-proxy", action="store_true",
                   help="Xilinx boards: also place and route the accelerator core (stream ports registered) on an "
                        "ECP5-85F with nextpnr, 3 seeds, and report the median Fmax as the clock's 'ECP5 proxy' "
                        "evidence; minutes (docs/timing.md)")
    p.add_argument("--force", action="store_true", help="replace an existing build folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> None:
    from rich.markup import escape

    from ...backend.build import BuildOptions, build

    if args.folding is not None and args.target_fps is not None:
        raise UserError("--folding fixes the folding, and so the frame rate; --target-fps would be ignored: "
                        "give one of them")
    options = BuildOptions(board=args.board, out=Path(args.out) if args.out else None,
                           folding=Path(args.folding) if args.folding else None, target_fps=args.target_fps,
                           margin=args.margin, synth=not args.no_synth, exact_roms=args.exact_roms, force=args.force,
                           backend=args.backend, ecp5_proxy=args.ecp5_proxy)
    state = build(args.checkpoint, options, show_progress=not args.quiet)
    m = state.manifest
    out = escape(str(state.out))  # a path such as build/b[v2] is printed as it is, not as markup
    cyc = m["cycles"]
    console.print(f"[bold green]built[/] {m['top']} for {m['board']} ({m['part']}) in [bold]{out}[/]")
    console.print(f"  initiation interval {cyc['initiation_interval']} cycles -> {cyc['fps']:,.0f} frames/s at "
                  f"{m['clock_mhz']:g} MHz; latency {cyc['latency']} cycles; bottleneck: {cyc['bottleneck']}")
    console.print(f"  frame rate set by {m['rate']['bound']}: {m['rate']['why']}")
    if state.synth_seconds is not None:
        how = "from the synthesis cache" if state.synth_cached else "ran"
        console.print(f"  Yosys: {how} ({state.synth_seconds:.0f} s of synthesis; BNN2FPGA_CACHE=off to rerun)")
    est = m["resources"]["estimate"]
    line = f"  resources: estimate {est['lut']:,.0f} LUT, {est['ff']:,.0f} FF, {est['bram36']:g} BRAM36"
    if state.synth:
        y = state.synth
        line += f"; Yosys {y['lut']:,} LUT, {y['ff']:,} FF, {y['bram36']:g} BRAM36, {y['dsp']} DSP"
    console.print(line)
    bit, uart = m.get("bitstream"), m.get("uart")
    if bit and "file" in bit:
        used = ", ".join(f"{k} {u['used']:,}/{u['available']:,}" for k, u in bit["utilisation"].items()
                         if u["used"] and k in ("ICESTORM_LC", "ICESTORM_RAM", "TRELLIS_COMB", "TRELLIS_FF", "DP16KD"))
        console.print(f"  bitstream: {out}/{escape(bit['file'])} at {bit['clock_mhz']:g} MHz (nextpnr Fmax "
                      f"{bit['fmax_mhz']:.1f} MHz); {used}; load it with {bit['load']}")
    if uart:
        from ...contract.wire import link_frames_per_second

        link_fps = link_frames_per_second(uart["baud"], uart["frame_bytes"])
        console.print(f"  serial link: {uart['baud'] / 1e6:g} Mbaud, at most {link_fps:,.0f} frames/s")
        console.print(f"  report: {out}/report.md; next: bnn2fpga run {out} --sim --images 100 "
                      "(or --port /dev/ttyUSB0 on the board)")
        return
    console.print(f"  report: {out}/report.md; next: bnn2fpga sim {out} --images 100")
