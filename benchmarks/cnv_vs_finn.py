"""FINN's CNV-W1A1 next to bnn2fpga's builds of the same network on the same chip (xc7z020, 100 MHz).

Rows, each trained (or pruned), built with Yosys and co-simulated in the Verilator harness:

- ``cnv-finn``: FINN's CNV topology (32x32x3 input, valid 3x3 convs 64, 64, pool, 128, 128, pool,
  256, 256, dense 512, 512, 10) with the integer 8-bit first layer, trained on Fashion-MNIST in
  CIFAR-10's shape (``fashion-mnist-32rgb``: CIFAR-10 does not install here; throughput and
  resources do not depend on the data), built at ``--target-fps 6104`` (<= 16,384 cycles: 2x FINN);
- ``cnv-finn-flip``: that network flip-pruned to half its binops (``--binop-target 0.5``, flips of
  the base's last training epoch, decided on a 5,000-image holdout) and built at
  ``--target-fps 12208`` (<= 8,192 cycles: 4x FINN);
- ``cnv-finn-4x``: the unpruned network at 4x FINN, estimate only (``--no-synth``), to show what
  pruning buys;
- ``cnv-w75``: the shipped Fashion-MNIST example ``examples/cnv-fmnist-w75.pt`` (x0.75 widths),
  fastest folding that fits, all 10,000 test images.

FINN's numbers are published ones (finn-examples CNV-W1A1 on the Pynq-Z1, Vivado after place and
route); ours are Yosys ``synth_xilinx`` counts. Steps are cached under ``--cache``
(``out/cnv_finn``); ``--json`` writes the numbers, ``--plot`` the picture.

    python benchmarks/cnv_vs_finn.py --json docs/cnv.json --plot docs/img/cnv-vs-finn.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hw_table import ROOT, Pending, Result, Row, console, fmt_int, rel, run_row, sh  # noqa: E402

CLOCK_MHZ = 100.0
FINN_CYCLES = 32_768

# finn-examples CNV-W1A1 for the Pynq-Z1 (xc7z020) at 100 MHz, Vivado after place and route; the
# older BNN-PYNQ build of the same network for comparison. Bottleneck 32,768 cycles per frame.
FINN = [
    {"name": "FINN CNV-W1A1 (finn-examples, Pynq-Z1)", "initiation_interval": FINN_CYCLES,
     "fps_100mhz": CLOCK_MHZ * 1e6 / FINN_CYCLES, "fps_measured_on_board": 3_020, "lut": 21_135,
     "bram36": 98 + 9 / 2, "bram_text": "98 BRAM36 + 9 BRAM18", "dsp": 0},
    {"name": "BNN-PYNQ CNV-W1A1 (Pynq-Z1)", "initiation_interval": None, "fps_100mhz": None, "lut": 26_072,
     "bram36": 124, "bram_text": "124 BRAM tiles", "dsp": 0},
]

TRAIN = ("--model", "cnv", "--dataset", "fashion-mnist-32rgb", "--input-encoding", "integer", "--epochs", "3",
         "--limit", "15000",
         "--holdout", "5000", "--track-flips", "1", "--flip-checks", "iteration")
BASE = Row("cnv-finn", "FINN CNV shape, trained, 2x FINN", "cnv", TRAIN, None, "cnv-finn.pt",
           build_args=("--target-fps", "6104"), sim_images=10_000,
           note="--target-fps 6104 (II <= 16,384)")
ROWS = [
    BASE,
    Row("cnv-finn-flip", "FINN CNV shape, flip-pruned to 50% binops, 4x FINN", "cnv", (), None, "cnv-finn-flip.pt",
        build_args=("--target-fps", "12208"), sim_images=10_000, prune_from=BASE,
        prune_args=("--method", "flip", "--binop-target", "0.5", "--holdout", "5000", "--accuracy-budget", "100"),
        note="--target-fps 12208 (II <= 8,192)"),
    Row("cnv-w75", "cnv x0.75 on Fashion-MNIST 28x28 (shipped example)", "cnv",
        ("--model", "cnv", "--width-multiplier", "0.75", "--epochs", "40", "--lr", "0.01", "--device", "cuda"),
        "examples/cnv-fmnist-w75.pt",
        "cnv-fmnist-w75.pt", note="auto folding (shortest interval that fits)"),
]


def unpruned_at_4x(cache: Path, offline: bool) -> dict[str, Any]:
    """The unpruned network's estimate at 4x FINN (no Yosys: the point is that it does not fit the LUT aim)."""
    ckpt = cache / BASE.cache_name
    out = cache / "build" / "cnv-finn-4x-estimate"
    args = ["build", rel(ckpt), "--board", "pynq-z2", "--target-fps", "12208", "--no-synth", "--out", rel(out),
            "--quiet", "--force"]
    if not (out / "manifest.json").is_file():
        if offline or not ckpt.is_file():
            raise Pending("no estimate yet")
        rc, text = sh(args, cache / "logs" / "build-cnv-finn-4x-estimate.log")
        if rc:
            return {"command": "bnn2fpga " + " ".join(args), "refused": text.strip().splitlines()[-1]}
    m = json.loads((out / "manifest.json").read_text())
    return {"command": "bnn2fpga " + " ".join(args), "initiation_interval": m["cycles"]["initiation_interval"],
            "estimate": {k: m["resources"]["estimate"][k] for k in ("lut", "ff", "bram36")}}


def markdown(results: list[Result], four_x: dict[str, Any]) -> str:
    lines = ["| design | test accuracy (reference = hardware, images) | binops / frame | cycles / frame "
             "(simulated = predicted) | FPS at 100 MHz | x FINN | LUT (Yosys, est.) | FF | BRAM36 | DSP |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        d = r.data
        if "measured_initiation_interval" not in d:
            lines.append(f"| {d['label']} | pending: {d.get('pending', d.get('refused', '?'))} |" + " |" * 8)
            continue
        ii = d["measured_initiation_interval"]
        same = "=" if d["cycles_equal"] else "!="
        acc = (f"{d['reference_accuracy']:.2%} {'=' if d['bit_exact'] else '!='} {d['hardware_accuracy']:.2%} "
               f"({d['sim_images']:,})")
        y, e = d["yosys"], d["estimate"]
        x_finn = f"{FINN_CYCLES / ii:.2f}x" if d["key"].startswith("cnv-finn") else "- (other network)"
        lines.append(f"| {d['label']} | {acc} | {d['binops']:,} | {ii:,} {same} {d['predicted_initiation_interval']:,}"
                     f" | {fmt_int(d['fps_100mhz'])} | {x_finn} | {y['lut']:,} ({e['lut']:,.0f}) | "
                     f"{y['ff']:,} | {y['bram36']:g} ({e['bram36']:g}) | {y['dsp']} |")
    if "estimate" in four_x:
        e, ii4 = four_x["estimate"], four_x["initiation_interval"]
        lines.append(f"| FINN CNV shape, unpruned, 4x FINN (estimate only) | - | - | {ii4:,} predicted | "
                     f"{CLOCK_MHZ * 1e6 / ii4:,.0f} | {FINN_CYCLES / ii4:.2f}x | - ({e['lut']:,.0f}) | - | - "
                     f"({e['bram36']:g}) | - |")
    for f in FINN:
        ii = f["initiation_interval"]
        lines.append(f"| {f['name']} | - | - | {fmt_int(ii)} | {fmt_int(f['fps_100mhz'])} | "
                     f"{'1.00x' if ii else '-'} | {f['lut']:,} (Vivado) | - | {f['bram_text']} | {f['dsp']} |")
    return "\n".join(lines)


def plot(results: list[Result], four_x: dict[str, Any], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    short = {"cnv-finn": "bnn2fpga, unpruned", "cnv-finn-flip": "bnn2fpga, flip-pruned (50% binops)"}
    points = [(short[d["key"]], d["yosys"]["lut"], d["yosys"]["bram36"], d["fps_100mhz"], "o", "tab:blue")
              for d in (r.data for r in results) if d["key"] in short and "fps_100mhz" in d]
    if "estimate" in four_x:
        e = four_x["estimate"]
        points.append(("unpruned at 4x (estimate)", e["lut"], e["bram36"],
                       CLOCK_MHZ * 1e6 / four_x["initiation_interval"], "o", "none"))
    f = FINN[0]
    points.append(("FINN CNV-W1A1", f["lut"], f["bram36"], f["fps_100mhz"], "s", "grey"))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, index, unit, budget in ((axes[0], 1, "LUT", 21_135), (axes[1], 2, "BRAM36", 103)):
        for label, *values, marker, colour in points:
            x, y = values[index - 1], values[2]
            ax.scatter(x, y, marker=marker, s=70, facecolors=colour,
                       edgecolors="tab:blue" if colour == "none" else colour)
            below = "flip-pruned" in label  # it shares its frame rate with the unpruned-at-4x point
            ax.annotate(label, (x, y), fontsize=8, xytext=(6, -14 if below else 4), textcoords="offset points")
        ax.axvline(budget, color="grey", lw=0.8, ls="--")
        ax.text(budget, 7_000, f" FINN's {unit}", fontsize=7, color="grey", rotation=90, va="bottom")
        ax.set_xlim(0, max(p[index] for p in points) * 1.45)
        ax.set_xlabel(f"{unit} (bnn2fpga: Yosys synth_xilinx; FINN: Vivado)")
        ax.grid(alpha=0.3)
    for fps, text in ((2 * FINN[0]["fps_100mhz"], "2x FINN"), (4 * FINN[0]["fps_100mhz"], "4x FINN")):
        for ax in axes:
            ax.axhline(fps, color="tab:green", lw=0.6, ls=":")
        axes[0].text(200, fps, text, fontsize=7, color="tab:green", va="bottom")
    axes[0].set_ylabel("frames per second at 100 MHz")
    axes[0].set_ylim(0, 14_000)
    fig.suptitle("FINN's CNV-W1A1 topology (32x32x3, integer first layer) on the xc7z020")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    console.print(f"wrote {rel(path)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default="out/cnv_finn")
    ap.add_argument("--rows", default=",".join(r.key for r in ROWS))
    ap.add_argument("--force", action="store_true", help="redo builds and simulations")
    ap.add_argument("--cached-only", action="store_true", help="report what the cache holds, run nothing")
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--plot", metavar="PNG")
    args = ap.parse_args()
    cache = (ROOT / args.cache).resolve()
    wanted = args.rows.split(",")
    results = [run_row(r, cache, args.force, args.cached_only) for r in ROWS if r.key in wanted]
    try:
        four_x = unpruned_at_4x(cache, args.cached_only)
    except Pending as e:
        four_x = {"pending": str(e)}
    console.print(markdown(results, four_x))
    for r in results:
        console.print(f"[dim]{r.data['key']}:[/] " + "; ".join(r.commands))
    if args.json:
        Path(args.json).write_text(json.dumps({"finn": FINN, "rows": [r.data | {"commands": r.commands}
                                                                      for r in results],
                                               "unpruned_4x": four_x}, indent=1) + "\n")
        console.print(f"wrote {args.json}")
    if args.plot:
        plot(results, four_x, Path(args.plot))


if __name__ == "__main__":
    main()
