"""Post-route Fmax of whole accelerators: 3 placement seeds, medians.

Each design is built the way a user builds it (``bnn2fpga build CKPT --board B``, the board's default
folding, or the options given).

- Xilinx boards (pynq-z2): no open place and route exists for the 7-series, so the build's AXI-Stream
  core (ports registered, no bridge) is synthesised by Yosys and placed and routed by nextpnr-ecp5 on
  the ECP5-85F once per seed (``bnn2fpga.backend.proxy``: the "ECP5 proxy" the Xilinx reports quote).
- Open boards (ulx3s-85f, icebreaker): the build itself places and routes the whole board design (UART
  bridge, PLL, pins) and picks its clock; the other seeds place the same netlist again at that clock
  (``bnn2fpga.backend.bitstream.place_seeds``).

``cnv-finn`` is FINN's CNV topology (32x32x3, integer first layer) at 2x FINN's cycle rate
(``--target-fps 6104``, 16,129 cycles): the largest design here whose memories fit the 85F's 208
DP16KD (sfc needs more). Its checkpoint is trained here for one epoch on 1,000 images: the
structure, not the accuracy, sets the clock.

    python benchmarks/fmax.py [--designs tfc,sfc] [--seeds 1,2,3] [--cache out/fmax] [--force]
    python benchmarks/fmax.py --bnn2fpga "python -m bnn2fpga.cli"   # another checkout's compiler

Results are cached per design in ``<cache>/<design>/result.json`` (rebuilt with ``--force``); the
table is also written to ``<cache>/results.json``. Several minutes per design and seed (cnv-finn:
about 20 minutes per seed on 2 cores, routed with router2; tfc with router2 came out 30 % slower than with
the default router, which the other designs keep).
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

from bnn2fpga.backend.bitstream import place_seeds
from bnn2fpga.backend.proxy import ecp5_proxy
from bnn2fpga.boards import get_board

console = Console()
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Design:
    name: str
    checkpoint: str  # relative to the repository, or (with ``train``) to the design's cache folder
    board: str = "pynq-z2"
    extra: tuple[str, ...] = ()
    train: tuple[str, ...] = ()  # ``bnn2fpga train`` arguments that make the checkpoint
    router2: bool = False  # route the proxy with router2 (the default router takes hours on it)

    @property
    def open_board(self) -> bool:
        return get_board(self.board).open_flow is not None


DESIGNS: dict[str, Design] = {d.name: d for d in (
    Design("tfc", "examples/tfc-fmnist.pt"),
    Design("sfc", "examples/sfc-fmnist.pt"),
    Design("sfc-flip", "examples/sfc-fmnist-flip.pt"),
    Design("cnv", "examples/cnv-fmnist.pt"),
    Design("nin", "examples/nin-fmnist.pt"),
    Design("tfc-ulx3s", "examples/tfc-fmnist.pt", board="ulx3s-85f"),
    Design("tfc-icebreaker", "examples/tfc-fmnist-ice40.pt", board="icebreaker"),
    Design("cnv-finn", "cnv-finn.pt", extra=("--target-fps", "6104"), router2=True,
           train=("--model", "cnv", "--dataset", "fashion-mnist-32rgb", "--input-encoding", "integer",
                  "--epochs", "1", "--limit", "1000", "--seed", "0")),
)}


def sh(design: Design, cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{design.name}: {' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")


def checkpoint(design: Design, work: Path, compiler: list[str]) -> Path:
    if not design.train:
        return ROOT / design.checkpoint
    path = work / design.checkpoint
    if not path.is_file():
        work.mkdir(parents=True, exist_ok=True)
        sh(design, [*compiler, "train", *design.train, "--quiet", "--out", str(path)])
    return path


def build(design: Design, ckpt: Path, out: Path, compiler: list[str], force: bool) -> dict[str, Any]:
    manifest = out / "manifest.json"
    if not manifest.is_file() or force:
        # Open boards place and route in the build (that is the measurement); Xilinx builds skip the
        # Yosys resource check, which the proxy does not need.
        synth = () if design.open_board else ("--no-synth",)
        sh(design, [*compiler, "build", str(ckpt), "--board", design.board, "--out", str(out), *synth, "--quiet",
                    "--force", *design.extra])
    return json.loads(manifest.read_text())


def open_board_fmax(manifest: dict[str, Any], work: Path, board: str, seeds: tuple[int, ...]) -> dict[str, Any]:
    """The build's own run is seed 1; the other seeds place its final netlist again."""
    clock = manifest["clock"]
    runs = dict(place_seeds(work / "build", board, [s for s in seeds if s != 1], work / "seeds"))
    if 1 in seeds:
        runs[1] = clock["fmax_mhz"]
    ordered = [(s, runs[s]) for s in seeds]
    values = sorted(f for _, f in ordered)
    return {"fmax_mhz": values[len(values) // 2], "seeds": [{"seed": s, "fmax_mhz": f} for s, f in ordered],
            "critical_from": None, "device": get_board(board).part,
            "evidence": f"nextpnr post-route Fmax of the whole board design at its {clock['mhz']:g} MHz clock"}


def run(design: Design, cache: Path, seeds: tuple[int, ...], compiler: list[str], force: bool) -> dict[str, Any]:
    work = cache / design.name
    result_path = work / "result.json"
    if result_path.is_file() and not force:
        cached = json.loads(result_path.read_text())
        if [s["seed"] for s in cached["proxy"]["seeds"]] == list(seeds):
            return cached
    t0 = time.perf_counter()
    manifest = build(design, checkpoint(design, work, compiler), work / "build", compiler, force)
    if design.open_board:
        placed = open_board_fmax(manifest, work, design.board, seeds)
    else:
        placed = ecp5_proxy(work / "build", manifest["sources"], manifest["top"], manifest["input"]["tdata_bits"],
                            work_dir=work / "ecp5", seeds=seeds, router2=design.router2).to_json()
    cycles = manifest["cycles"]
    row = {"design": design.name, "checkpoint": design.checkpoint, "board": design.board,
           "interval": cycles["initiation_interval"], "latency": cycles["latency"],
           "proxy": placed, "seconds": round(time.perf_counter() - t0, 1)}
    result_path.write_text(json.dumps(row, indent=1) + "\n")
    return row


def table(rows: list[dict[str, Any]]) -> Table:
    t = Table(title="Whole accelerators, nextpnr post-route Fmax (Xilinx boards: the ECP5 proxy on the LFE5U-85F, "
                    "speed 6; open boards: the board design on its own part)")
    for col in ("design", "board folding", "placed on", "II (cycles)", "Fmax median", "seeds", "FPS at median",
                "critical path from"):
        t.add_column(col, justify="left" if col in ("design", "placed on", "critical path from") else "right")
    for r in rows:
        p = r["proxy"]
        fps = p["fmax_mhz"] * 1e6 / r["interval"]
        t.add_row(r["design"], r["board"], str(p.get("device", "")), f"{r['interval']:,}", f"{p['fmax_mhz']:.1f} MHz",
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
