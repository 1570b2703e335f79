"""Post-route Fmax of whole accelerators on the ECP5-85F: 3 placement seeds, medians.

Each design is built the way a user builds it (``bnn2fpga build CKPT --board pynq-z2 --no-synth``,
the board's default folding, or the folding given), then its AXI-Stream core (ports registered,
no bridge) is synthesised by Yosys and placed and routed by nextpnr-ecp5 once per seed
(``bnn2fpga.backend.proxy``: the "ECP5 proxy" the Xilinx reports quote).

    python benchmarks/fmax.py [--designs tfc,sfc] [--seeds 1,2,3] [--cache out/fmax] [--force]
    python benchmarks/fmax.py --bnn2fpga "python -m bnn2fpga.cli"   # another checkout's compiler

Results are cached per design in ``<cache>/<design>/result.json`` (rebuilt with ``--force``); the
table is also written to ``<cache>/results.json``. Several minutes per design and seed.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bnn2fpga.backend.proxy import ecp5_proxy

console = Console()
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Design:
    name: str
    checkpoint: str
    board: str = "pynq-z2"
    extra: tuple[str, ...] = ()


DESIGNS: dict[str, Design] = {d.name: d for d in (
    Design("tfc", "examples/tfc-fmnist.pt"),
    Design("sfc", "examples/sfc-fmnist.pt"),
    Design("sfc-flip", "examples/sfc-fmnist-flip.pt"),
    Design("cnv", "examples/cnv-fmnist.pt"),
    Design("nin", "examples/nin-fmnist.pt"),
)}


def build(design: Design, out: Path, compiler: list[str], force: bool) -> dict[str, Any]:
    manifest = out / "manifest.json"
    if not manifest.is_file() or force:
        cmd = [*compiler, "build", str(ROOT / design.checkpoint), "--board", design.board, "--out", str(out),
               "--no-synth", "--quiet", "--force", *design.extra]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{design.name}: {' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(manifest.read_text())


def run(design: Design, cache: Path, seeds: tuple[int, ...], compiler: list[str], force: bool) -> dict[str, Any]:
    work = cache / design.name
    result_path = work / "result.json"
    if result_path.is_file() and not force:
        cached = json.loads(result_path.read_text())
        if [s["seed"] for s in cached["proxy"]["seeds"]] == list(seeds):
            return cached
    t0 = time.perf_counter()
    manifest = build(design, work / "build", compiler, force)
    proxy = ecp5_proxy(work / "build", manifest["sources"], manifest["top"], manifest["input"]["tdata_bits"],
                       work_dir=work / "ecp5", seeds=seeds)
    cycles = manifest["cycles"]
    row = {"design": design.name, "checkpoint": design.checkpoint, "board": design.board,
           "interval": cycles["initiation_interval"], "latency": cycles["latency"],
           "proxy": proxy.to_json(), "seconds": round(time.perf_counter() - t0, 1)}
    result_path.write_text(json.dumps(row, indent=1) + "\n")
    return row


def table(rows: list[dict[str, Any]]) -> Table:
    t = Table(title="Whole accelerators on the ECP5-85F (speed 6), nextpnr post-route Fmax")
    for col in ("design", "board folding", "II (cycles)", "Fmax median", "seeds", "FPS at median",
                "critical path from"):
        t.add_column(col, justify="left" if col in ("design", "critical path from") else "right")
    for r in rows:
        p = r["proxy"]
        fps = p["fmax_mhz"] * 1e6 / r["interval"]
        t.add_row(r["design"], r["board"], f"{r['interval']:,}", f"{p['fmax_mhz']:.1f} MHz",
                  " / ".join(f"{s['fmax_mhz']:.1f}" for s in p["seeds"]), f"{fps:,.0f}",
                  str(p["critical_from"]))
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--designs", default=",".join(DESIGNS), help=f"comma-separated, of {', '.join(DESIGNS)}")
    ap.add_argument("--seeds", default="1,2,3", help="nextpnr placement seeds; the table shows the median")
    ap.add_argument("--cache", type=Path, default=Path("out/fmax"))
    ap.add_argument("--bnn2fpga", default=f"{shlex.quote(sys.executable)} -m bnn2fpga.cli",
                    help="the compiler command that builds the designs")
    ap.add_argument("--force", action="store_true", help="rebuild and re-place cached designs")
    args = ap.parse_args()
    names = [n for n in args.designs.split(",") if n]
    unknown = [n for n in names if n not in DESIGNS]
    if unknown:
        ap.error(f"unknown design(s) {', '.join(unknown)}; choose from {', '.join(DESIGNS)}")
    seeds = tuple(int(s) for s in args.seeds.split(","))
    compiler = shlex.split(args.bnn2fpga)
    rows = []
    for name in names:
        console.print(f"[bold]{name}[/]: build and place ({len(seeds)} seeds)")
        rows.append(run(DESIGNS[name], args.cache, seeds, compiler, args.force))
    args.cache.mkdir(parents=True, exist_ok=True)
    (args.cache / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    console.print(table(rows))


if __name__ == "__main__":
    main()
