"""`bnn2fpga sim`: co-simulate a build (cocotb + Verilator) bit-exact and cycle-exact."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from ..common import SEED_MAX, console, integer, real

if TYPE_CHECKING:

    pass

NAME = "sim"


def add_arguments(sub: Any) -> argparse.ArgumentParser:
    """This command's parser, its arguments and its handler, on the subcommand table ``sub``."""
    from ...data import DATASETS

    p = sub.add_parser(NAME, help="co-simulate a build (cocotb + Verilator) bit-exact and cycle-exact",
                       description="Drive real test images through the generated accelerator's AXI-Stream "
                                   "ports with random tvalid/tready patterns (cocotb + cocotbext-axi on "
                                   "Verilator), compare every output word with the bit-exact reference, and "
                                   "measure the initiation interval and first-frame latency, which must equal "
                                   "the manifest's. --bulk runs a Verilator C++ harness instead, fast enough "
                                   "for the whole test set, and reports hardware accuracy.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       epilog="example: bnn2fpga sim build/sfc --images 100; bnn2fpga sim build/sfc --bulk")
    p.add_argument("build_dir")
    p.add_argument("--images", type=integer(), help="test images to simulate (default: 100; with --bulk: all)")
    p.add_argument("--bulk", action="store_true", help="Verilator C++ harness over the whole test set")
    p.add_argument("--checkpoint", help="checkpoint the build came from (default: found next to it by hash)")
    p.add_argument("--dataset", choices=DATASETS, default=None, help="default: the checkpoint's dataset")
    p.add_argument("--data", metavar="DIR", help="dataset folder")
    p.add_argument("--simulator", choices=["verilator", "icarus"], default="verilator")
    p.add_argument("--stall", type=real(0, 1, lo_open=False, hi_open=True), default=0.3,
                   help="probability of a tvalid/tready pause per cycle")
    p.add_argument("--seed", type=integer(0, SEED_MAX), default=1)
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> None:
    from ...cosim import SimOptions, check, run_sim

    options = SimOptions(build_dir=args.build_dir, images=args.images, bulk=args.bulk, checkpoint=args.checkpoint,
                         dataset=args.dataset, data=args.data, simulator=args.simulator, stall=args.stall,
                         seed=args.seed)
    summary = run_sim(options, log=None if args.json else lambda m: console.print(escape(m)))
    if args.json:
        print(json.dumps(summary))  # one line: simulator chatter may precede it on stdout
    else:
        _print_sim(summary)
    check(summary)


def _print_sim(s: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"co-simulation of {s['build']} ({s['mode']}, {s['simulator']})", show_header=True)
    table.add_column("check")
    table.add_column("hardware", justify="right")
    table.add_column("expected", justify="right")
    table.add_column("", justify="left")

    def ok(flag: bool) -> str:
        return "[green]ok[/]" if flag else "[red]FAIL[/]"
    table.add_row("output words differing from reference", str(s["mismatched_words"]), "0",
                  ok(s["bit_exact"]))
    if s["mode"] == "csim":  # an HLS build's C simulation: bit-exact only, untimed
        table.add_row(f"accuracy on {s['images']} images", f"{s['hardware_accuracy']:.4f}",
                      f"{s['reference_accuracy']:.4f}", ok(s["hardware_accuracy"] == s["reference_accuracy"]))
        console.print(table)
        speed = f"{s['images_per_second']:,.0f} images/s" if s.get("images_per_second") else "-"
        console.print(f"C simulation (g++ -O2, untimed): {speed} (build {s['build_time_s']:.1f} s, run "
                      f"{s['wall_time_s']:.1f} s); cycles: the report's expectation, Vitis csynth/cosim measure them")
        console.print("[bold green]PASS[/]: bit-exact" if s["passed"] else "[bold red]FAIL[/]")
        return
    table.add_row("initiation interval (cycles)", str(s["measured_initiation_interval"]),
                  str(s["expected_initiation_interval"]),
                  ok(s["measured_initiation_interval"] == s["expected_initiation_interval"]))
    table.add_row("first-frame latency (cycles)", str(s["measured_latency"]), str(s["expected_latency"]),
                  ok(s["measured_latency"] == s["expected_latency"]))
    table.add_row(f"accuracy on {s['images']} images", f"{s['hardware_accuracy']:.4f}",
                  f"{s['reference_accuracy']:.4f}", ok(s["hardware_accuracy"] == s["reference_accuracy"]))
    console.print(table)
    console.print(f"{s['cycles']:,} cycles simulated at {s['cycles_per_second']:,.0f} cycles/s "
                  f"(build {s['build_time_s']:.1f} s, run {s['wall_time_s']:.1f} s)")
    verdict = "[bold green]PASS[/]: bit-exact and cycle-exact" if s["passed"] else "[bold red]FAIL[/]"
    console.print(verdict)
