"""`bnn2fpga info`: describe a checkpoint: layers, widths, binops, accuracy, pruning history."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from ..common import console

if TYPE_CHECKING:

    pass

NAME = "info"


def add_arguments(sub: Any) -> argparse.ArgumentParser:
    """This command's parser, its arguments and its handler, on the subcommand table ``sub``."""
    p = sub.add_parser(NAME, help="describe a checkpoint: layers, widths, binops, accuracy, pruning history",
                       description="Describe a checkpoint without running it.")
    p.add_argument("checkpoint")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> None:
    from ...checkpoint import load
    from ...summary import summarize

    ckpt = load(args.checkpoint)
    info = summarize(ckpt)
    if args.json:
        print(json.dumps(info, indent=2))
        return
    from rich.table import Table

    inp = info["input"]
    first = ("the first layer reads the kept bits of each pixel as an unsigned integer (its binops count each "
             "+-1 x integer multiply-accumulate as one binary operation per kept plane)"
             if inp.get("encoding") == "integer"
             else "the first layer reads each kept plane as a binary channel")
    if inp.get("table"):
        first += ("; an input table (the imported input quantiser) maps each pixel value to an 8-bit code "
                  "first, and the planes are the code's")
    console.print(f"[bold]{escape(str(args.checkpoint))}[/]: {info['model']} on {info['dataset']}, input "
                  f"{inp['shape']} (C,H,W) uint8, planes kept {inp['planes']}; {first}")
    table = Table("layer", "kind", "in HxWxC", "out HxWxC", "fan-in", "binops", "weight bits")
    for row in info["layers"]:
        table.add_row(row["name"], row["kind"] + (" (integer input)" if row.get("integer_input") else ""),
                      "x".join(map(str, row["in"])), "x".join(map(str, row["out"])),
                      str(row["fan_in"] or "-"), f"{row['binops']:,}", f"{row['weight_bits']:,}")
    console.print(table)
    console.print(f"binary operations per inference: [bold]{info['binops']:,}[/]; "
                  f"weight bits: [bold]{info['weight_bits']:,}[/] ({info['weight_bits'] / 8192:.1f} KiB)")
    acc = info["metrics"].get("test_accuracy")
    console.print(f"recorded test accuracy: {acc:.4f}" if acc is not None else "recorded test accuracy: none")
    if info["pruning"]:
        for i, rec in enumerate(info["pruning"]):
            planes = f", planes {rec['planes_after']}" if "planes_after" in rec else ""
            console.print(f"pruning step {i + 1}: {rec['method']}: widths {rec.get('widths_before')} -> "
                          f"{rec.get('widths_after')}{planes}")
    else:
        console.print("pruning history: none (unpruned)")
