"""`bnn2fpga sim`: co-simulate a build folder against the bit-exact reference.

The build folder carries the checkpoint it was made from (``checkpoint.pt``, hash in
manifest.json), so the expected class popcounts are recomputed here by
``reference.py`` from the very same weights, never read from the build itself.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from . import checkpoint as ckpt_mod
from . import data as datasets
from . import reference
from .ir.pipeline import lower
from .sim import bulk
from .sim.manifest import load_manifest, predict
from .sim.runner import run_cocotb


class SimFailure(RuntimeError):
    """The hardware disagreed with the reference or with its predicted cycles."""


def build_checkpoint(build_dir: Path, manifest: dict[str, Any], override: str | None) -> ckpt_mod.Checkpoint:
    path = Path(override) if override else build_dir / "checkpoint.pt"
    expected = manifest.get("checkpoint", {}).get("sha256")
    if path.exists() and expected and hashlib.sha256(path.read_bytes()).hexdigest() != expected:
        raise ckpt_mod.CheckpointError(f"{path} is not the checkpoint {build_dir} was built from (sha256 differs); "
                                       "rebuild, or pass the right --checkpoint")
    return ckpt_mod.load(path)


def run_sim(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    build_dir = Path(args.build_dir)
    manifest = load_manifest(build_dir)
    manifest.check_files()
    ckpt = build_checkpoint(build_dir, manifest.raw, args.checkpoint)
    ds = datasets.load(args.dataset or ckpt.dataset, args.data)
    split = ds.test
    wanted = args.images if args.images is not None else (len(split) if args.bulk else 100)
    n = min(wanted, len(split))
    pixels = split.images[:n]
    labels = split.labels[:n]
    graph = lower(ckpt)
    ref = reference.run(graph, pixels)
    hwc = np.ascontiguousarray(pixels.transpose(0, 2, 3, 1))
    summary: dict[str, Any] = {"build": str(build_dir), "images": n, "dataset": ds.name,
                               "expected_initiation_interval": manifest.initiation_interval,
                               "expected_latency": manifest.latency}
    if args.bulk:
        if not args.json:
            console.print(f"bulk co-simulation (Verilator C++ harness) of {n} {ds.name} test images ...")
        result = bulk.run(build_dir, hwc, seed=args.seed)
        wrong = result.mismatches(ref.popcounts)
        hw_pred = predict(manifest, np.clip(result.outputs, 0, None))
        summary.update(mode="bulk", simulator="verilator", mismatched_words=len(wrong),
                       bit_exact=len(wrong) == 0 and result.protocol_ok,
                       measured_initiation_interval=result.initiation_interval, measured_latency=result.latency,
                       cycles=result.cycles, cycles_per_second=result.cycles_per_second,
                       hardware_accuracy=float((hw_pred == labels).mean()),
                       reference_accuracy=float((ref.predictions == labels).mean()),
                       wall_time_s=result.wall_time_s, build_time_s=result.build_time_s)
        cycles_ok = result.cycles_ok
    else:
        if not args.json:
            console.print(f"cocotb + {args.simulator} co-simulation of {n} {ds.name} test images, "
                          f"random tvalid/tready pauses p={args.stall} ...")
        sim = run_cocotb(build_dir, hwc, ref.popcounts, simulator=args.simulator, seed=args.seed,
                         stall_in=args.stall, stall_out=args.stall)
        hw_pred = predict(manifest, np.clip(sim.outputs, 0, None))
        summary.update(mode="cocotb", simulator=args.simulator, mismatched_words=sim.mismatch_count,
                       tlast_errors=len(sim.tlast_errors), extra_beats=sim.extra_beats, error=sim.error,
                       bit_exact=sim.bit_exact, measured_initiation_interval=sim.initiation_interval,
                       measured_latency=sim.latency, cycles=sim.cycles, cycles_per_second=sim.cycles_per_second,
                       in_stall_cycles=sim.in_stall_cycles, out_stall_cycles=sim.out_stall_cycles,
                       hardware_accuracy=float((hw_pred == labels).mean()),
                       reference_accuracy=float((ref.predictions == labels).mean()),
                       wall_time_s=sim.wall_time_s, build_time_s=sim.build_time_s, log=str(sim.log_path))
        cycles_ok = sim.cycles_ok
    summary["cycles_equal"] = cycles_ok
    summary["passed"] = bool(summary["bit_exact"] and cycles_ok and
                             summary["hardware_accuracy"] == summary["reference_accuracy"])
    if args.json:
        print(json.dumps(summary))  # one line: simulator chatter may precede it on stdout
    else:
        _print(summary, console)
    if not summary["passed"]:
        raise SimFailure(_failure(summary))
    return summary


def _print(s: dict[str, Any], console: Console) -> None:
    table = Table(title=f"co-simulation of {s['build']} ({s['mode']}, {s['simulator']})", show_header=True)
    table.add_column("check")
    table.add_column("hardware", justify="right")
    table.add_column("expected", justify="right")
    table.add_column("", justify="left")

    def ok(flag: bool) -> str:
        return "[green]ok[/]" if flag else "[red]FAIL[/]"
    table.add_row("output words differing from reference", str(s["mismatched_words"]), "0",
                  ok(s["bit_exact"]))
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


def _failure(s: dict[str, Any]) -> str:
    parts = []
    if not s["bit_exact"]:
        parts.append(f"{s['mismatched_words']} output words differ from the reference")
        if s.get("error"):
            parts.append(f"testbench: {s['error']}")
    if not s["cycles_equal"]:
        parts.append(f"measured II/latency {s['measured_initiation_interval']}/{s['measured_latency']} != "
                     f"predicted {s['expected_initiation_interval']}/{s['expected_latency']}")
    if s["hardware_accuracy"] != s["reference_accuracy"]:
        parts.append("hardware accuracy differs from the reference's")
    log = f" (log: {s['log']})" if s.get("log") else ""
    return "co-simulation failed: " + "; ".join(parts) + log
