"""Resource estimate against Yosys synth_xilinx for the conv engines alone (window unit, max-pool, FIFO).

Each engine is converted to Verilog on its own and synthesized for xc7 (the same flow as
``bnn2fpga build``'s check); the table prints the estimate next to Yosys' LUT / FF / BRAM36
and their ratio. Whole designs are checked by ``bnn2fpga build`` itself (report.md).

    python benchmarks/engine_resources.py            # the default set (a few minutes)
    python benchmarks/engine_resources.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from amaranth.back import verilog
from rich.console import Console
from rich.table import Table

from bnn2fpga.backend.synth import synth_sources
from bnn2fpga.hw.engines import EngineOptions, component, estimate
from bnn2fpga.hw.pool import PoolSpec
from bnn2fpga.hw.stream import FifoSpec
from bnn2fpga.hw.window import WindowSpec

CASES = [
    # cnv-fmnist's windows (28x28 padded, then 14, 12, 5, 3) and FINN CNV's widest
    WindowSpec("w_28_c8", 28, 28, 8, 3, 1, 1),
    WindowSpec("w_28_c16", 28, 28, 16, 3, 1, 1),
    WindowSpec("w_12_c32", 12, 12, 32, 3, 0, 1),
    WindowSpec("w_5_c64", 5, 5, 64, 3, 0, 1),
    WindowSpec("w_30_c64", 30, 30, 64, 3, 0, 1),
    WindowSpec("w_12_c128", 12, 12, 128, 3, 0, 1),
    WindowSpec("w_100_c32", 100, 100, 32, 3, 1, 0),   # a line buffer in block RAM
    PoolSpec("p_28_c16", 28, 28, 16, 2),
    PoolSpec("p_10_c32", 10, 10, 32, 2),
    PoolSpec("p_28_c64", 28, 28, 64, 2),
    FifoSpec("f_32_c16", 16, 32, 784),     # cnv-fmnist's FIFOs: 2 rows + 3 pixels deep
    FifoSpec("f_63_c64", 64, 63, 900),     # FINN CNV's widest
    FifoSpec("f_31_c128", 128, 31, 144),
]


def measure(spec: WindowSpec | PoolSpec | FifoSpec, folder: Path) -> dict[str, float]:
    engine = component(spec, EngineOptions())
    (folder / f"{spec.name}.v").write_text(verilog.convert(engine, name=spec.name, emit_src=False))
    result = synth_sources(folder, [f"{spec.name}.v"], spec.name, "xc7")
    est = estimate(spec, 2)
    return {"name": spec.name, "est_lut": est["lut"], "lut": result.lut_total, "est_ff": est["ff"], "ff": result.ff,
            "est_bram36": est["bram36"], "bram36": result.bram}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in CASES:
            rows.append(measure(spec, Path(tmp)))
    table = Table(title="conv engines: estimate vs Yosys synth_xilinx (xc7)")
    for col in ("engine", "LUT est", "LUT yosys", "ratio", "FF est", "FF yosys", "BRAM36 est", "BRAM36 yosys"):
        table.add_column(col, justify="right")
    for r in rows:
        ratio = r["est_lut"] / r["lut"] if r["lut"] else float("nan")
        table.add_row(r["name"], f"{r['est_lut']:,}", f"{r['lut']:,}", f"{ratio:.2f}", f"{r['est_ff']:,}",
                      f"{r['ff']:,}", f"{r['est_bram36']:g}", f"{r['bram36']:g}")
    Console().print(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
