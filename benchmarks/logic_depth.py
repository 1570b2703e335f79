"""Logic depth of every shipped example on the xc7z020, against the 200 MHz rule.

Each example is built as a user builds it for the PYNQ-Z2 (``bnn2fpga build EXAMPLE --board pynq-z2``:
its default folding, Yosys ``synth_xilinx`` as the resource check), and the build's manifest gives the
deepest register-to-register path of the mapped netlist (``resources.yosys.logic_depth``: Yosys ``ltp``
with every sequential cell cut out, docs/timing.md). The rule for 200 MHz on a -1 part allows at most
5 LUT levels on a path (carry stages aside); the table says which examples stay within it.

    python benchmarks/logic_depth.py [--examples tfc,cnv] [--cache out/logic_depth] [--force]

Builds are cached per example (``<cache>/<example>/``); ``--force`` rebuilds. About 1-3 minutes per
example on 2 cores (sfc and cnv-w75 the longest).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import run_cli
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ("tfc-fmnist", "sfc-fmnist", "sfc-fmnist-flip", "sfc-fmnist-bitslice", "cnv-fmnist", "cnv-fmnist-w75",
            "nin-fmnist")
#: LUT levels a path may have at 200 MHz on a -1 xc7z020 (docs/timing.md, "The rule for 200 MHz")
MAX_LUT_LEVELS_200MHZ = 5


def build(example: str, cache: Path, force: bool) -> dict:
    out = cache / example
    manifest = out / "manifest.json"
    if force or not manifest.is_file():
        run_cli(["build", ROOT / "examples" / f"{example}.pt", "--board", "pynq-z2", "--out", out, "--force"],
                log=cache / f"{example}.log")
    return json.loads(manifest.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", default=",".join(EXAMPLES), help="comma-separated example names")
    parser.add_argument("--cache", type=Path, default=ROOT / "out" / "logic_depth")
    parser.add_argument("--force", action="store_true", help="rebuild cached examples")
    args = parser.parse_args()
    rows = []
    for example in args.examples.split(","):
        m = build(example, args.cache, args.force)
        yosys = m["resources"]["yosys"]
        depth = yosys.get("logic_depth")
        rows.append({"example": example, "interval": m["cycles"]["initiation_interval"], "lut": yosys["lut"],
                     "ff": yosys["ff"], "bram36": yosys["bram36"], "depth": depth,
                     "within_200mhz_rule": depth is not None and depth["luts"] <= MAX_LUT_LEVELS_200MHZ})
    table = Table(title="Deepest register-to-register path, Yosys synth_xilinx for the xc7z020 (PYNQ-Z2 folding)")
    for col in ("example", "II", "LUT", "FF", "BRAM36", "cells", "LUT levels", "CARRY4", "MUXF", "from",
                f"<= {MAX_LUT_LEVELS_200MHZ} LUT levels"):
        table.add_column(col, justify="left" if col in ("example", "from") else "right")
    for r in rows:
        d = r["depth"] or {}
        table.add_row(r["example"], f"{r['interval']:,}", f"{r['lut']:,}", f"{r['ff']:,}", f"{r['bram36']:g}",
                      str(d.get("cells", "-")), str(d.get("luts", "-")), str(d.get("carries", "-")),
                      str(d.get("muxes", "-")), str(d.get("start", "-")), "yes" if r["within_200mhz_rule"] else "NO")
    Console(width=200).print(table)
    args.cache.mkdir(parents=True, exist_ok=True)
    (args.cache / "results.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
