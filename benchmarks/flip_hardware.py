"""Hardware effect of flip pruning: build the unpruned and the pruned checkpoint for one board and compare.

Four builds (``bnn2fpga build``):

1. the unpruned checkpoint with the compiler's default folding;
2. the pruned checkpoint with *the same folding* (same PE/SIMD per layer: equal
   compute resources) -> speedup in cycles per frame against the binop ratio;
3. both checkpoints with ``--target-fps`` = the unpruned frame rate (equal
   throughput, each with the cheapest folding reaching it) -> LUT/FF/BRAM saved.

Optionally ``bnn2fpga sim --images N`` on each build checks that the simulated
cycles match the manifest. Writes JSON for docs/flip-pruning.md.

    python benchmarks/flip_hardware.py examples/sfc-fmnist.pt examples/sfc-fmnist-flip.pt \\
        --board pynq-z2 --work /tmp/flip/hw --out docs/data/flip-hardware.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import run_cli

from bnn2fpga.checkpoint import load
from bnn2fpga.nn.models import binops, hidden_widths


def build(ckpt: str, out: Path, board: str, extra: list[str]) -> dict[str, Any]:
    if "--target-fps" not in extra and "--folding" not in extra:
        extra = [*extra, "--target-fps", "max"]  # the fastest design that fits, not the host link's rate
    if not (out / "manifest.json").exists():
        run_cli(["build", ckpt, "--board", board, "--out", str(out), "--force", "--quiet", *extra])
    manifest = json.loads((out / "manifest.json").read_text())
    return {"dir": str(out), "command": f"bnn2fpga build {ckpt} --board {board} --out {out} {' '.join(extra)}".strip(),
            "cycles": manifest["cycles"], "resources": manifest["resources"], "folding": manifest.get("folding"),
            "layers": [{k: layer.get(k) for k in ("name", "mh", "mw", "pe", "simd", "cycles")}
                       for layer in manifest["layers"]]}


def simulate(out: Path, images: int) -> dict[str, Any] | None:
    if images <= 0:
        return None
    cmd = ["bnn2fpga", "sim", str(out), "--images", str(images), "--json"]
    print("$", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout).strip().splitlines()[-1:]}
    return json.loads(done.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("unpruned")
    ap.add_argument("pruned")
    ap.add_argument("--board", default="pynq-z2")
    ap.add_argument("--work", default="build/flip-hardware")
    ap.add_argument("--images", type=int, default=0, help="also simulate N images per build")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    t0 = time.time()
    work = Path(args.work)
    base = build(args.unpruned, work / "unpruned", args.board, [])
    same_fold = build(args.pruned, work / "pruned-same-folding", args.board,
                      ["--folding", str(work / "unpruned" / "folding.json")])
    fps = base["cycles"]["fps"]
    # Equal throughput: both through the same "cheapest folding reaching this rate" search,
    # so neither side keeps a folding chosen for another goal.
    base_fps = build(args.unpruned, work / "unpruned-same-fps", args.board, ["--target-fps", f"{fps:.0f}"])
    same_fps = build(args.pruned, work / "pruned-same-fps", args.board, ["--target-fps", f"{fps:.0f}"])
    for b in (base, same_fold, base_fps, same_fps):
        b["sim"] = simulate(Path(b["dir"]), args.images)
    a_u, a_p = load(args.unpruned).architecture, load(args.pruned).architecture
    binop_ratio = binops(a_u) / binops(a_p)
    speedup = base["cycles"]["initiation_interval"] / same_fold["cycles"]["initiation_interval"]
    result = {
        "board": args.board, "unpruned": args.unpruned, "pruned": args.pruned,
        "widths": {"unpruned": hidden_widths(a_u), "pruned": hidden_widths(a_p)},
        "binops": {"unpruned": binops(a_u), "pruned": binops(a_p)}, "binop_ratio": binop_ratio,
        "speedup_same_folding": speedup, "speedup_over_binop_ratio": speedup / binop_ratio,
        "builds": {"unpruned": base, "pruned_same_folding": same_fold, "unpruned_target_fps": base_fps,
                   "pruned_target_fps": same_fps},
        "seconds": time.time() - t0,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    for name, b in result["builds"].items():
        y = b["resources"].get("yosys") or b["resources"]["estimate"]
        print(f"{name:20} II {b['cycles']['initiation_interval']:>6} cycles, {b['cycles']['fps']:>10,.0f} fps, "
              f"{y['lut']:>7,} LUT, {y['ff']:>7,} FF, {y['bram36']:>5} BRAM36")
    print(f"binop ratio {binop_ratio:.3f}, speedup at equal folding {speedup:.3f} "
          f"({speedup / binop_ratio:.2f} x the binop ratio)")
    return None


if __name__ == "__main__":
    sys.exit(main())
