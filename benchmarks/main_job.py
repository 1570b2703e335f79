"""How long the README's main job takes: `bnn2fpga build` of the shipped example, cold and warm.

Cold: an empty synthesis cache (``BNN2FPGA_CACHE`` pointed at a fresh folder), so Yosys runs.
Warm: the same build again, its synthesis result taken from the cache. Both are the real CLI in a
subprocess, timed by wall clock, with the Yosys share read from the build's own account.

    python benchmarks/main_job.py [--checkpoint examples/sfc-fmnist-flip.pt] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed_build(checkpoint: str, out: Path, cache: Path) -> tuple[float, str]:
    env = {**os.environ, "BNN2FPGA_CACHE": str(cache)}
    cmd = [sys.executable, "-m", "bnn2fpga.cli", "build", checkpoint, "--board", "pynq-z2", "--out", str(out),
           "--force", "--quiet"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="examples/sfc-fmnist-flip.pt")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache, out = Path(tmp) / "cache", Path(tmp) / "build"
        rows = []
        for label in ("cold (empty synthesis cache)", "warm (same design again)"):
            seconds, stdout = timed_build(args.checkpoint, out, cache)
            yosys = re.search(r"Yosys: (ran|from the synthesis cache) \((\d+) s", stdout)
            rows.append({"run": label, "wall_s": round(seconds, 1),
                         "yosys": yosys.group(1) if yosys else "?", "yosys_s": int(yosys.group(2)) if yosys else None})
    load = os.getloadavg()[0]
    print(f"bnn2fpga build {args.checkpoint} --board pynq-z2 (machine load {load:.1f}, {os.cpu_count()} CPUs)")
    print(f"{'run':<32} {'wall':>8}  Yosys")
    for r in rows:
        print(f"{r['run']:<32} {r['wall_s']:>7.1f}s  {r['yosys']} ({r['yosys_s']} s of synthesis)")
    if args.json:
        args.json.write_text(json.dumps({"checkpoint": args.checkpoint, "load": load, "runs": rows}, indent=1))


if __name__ == "__main__":
    main()
