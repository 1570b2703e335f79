"""Hardware table: tfc, sfc, lfc, cnv and nin on Fashion-MNIST for the PYNQ-Z2 (xc7z020), next to FINN's LFC-W1A1.

Per model: test accuracy (reference and, by Verilator bulk co-simulation, hardware),
binary operations and weight bits per frame, the initiation interval measured by
simulation (it must equal the manifest's prediction), FPS at 100 MHz, latency and the
Yosys LUT/FF/BRAM36 counts of the generated netlist (``synth_xilinx -family xc7``).
An lfc over all 8 input planes is built too: its first layer alone has more weight bits
than the xc7z020 has block RAM, and the row shows the build's refusal message.
The ECP5 Fmax of single MVTUs comes from ``benchmarks/ecp5_fmax.py`` (read from its cache).

Every step runs the ``bnn2fpga`` command line (printed before it runs, so
docs/hardware.md can quote it) and caches its output under ``--cache``
(default ``out/hw_table/``): checkpoints, build folders, simulation JSON. Re-running
is cheap; ``--force`` redoes builds and simulations.

    python benchmarks/hw_table.py                      # everything (trains tfc / lfc-msb if missing)
    python benchmarks/hw_table.py --rows sfc,lfc-msb   # some rows
    python benchmarks/hw_table.py --json docs/hardware.json
    python benchmarks/hw_table.py --cached-only      # tables, JSON and docs/img/hardware-vs-finn.png from the cache
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import run_cli
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
CLOCK_MHZ = 100.0
BOARD = "pynq-z2"
# Small PyTorch jobs on a shared 2-core machine: more threads are slower, not faster.
ENV = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}

console = Console(width=None if sys.stdout.isatty() else 170)

# FINN's published LFC-W1A1 on the PYNQ-Z1/Z2 (xc7z020) at 100 MHz: Umuroglu et al., "FINN: A Framework
# for Fast, Scalable Binarized Neural Network Inference", FPGA 2017, and the FINN-examples/BNN-PYNQ
# resource tables. 512 cycles per frame = 195,312 FPS at 100 MHz; input binarised to 1 bit per pixel.
FINN_LFC = {
    "name": "FINN LFC-W1A1 (published)",
    "network": "784(1-bit)-1024-1024-1024-10",
    "input_planes": 1,
    "binops": 784 * 1024 + 1024 * 1024 * 2 + 1024 * 10,
    "weight_bits": 784 * 1024 + 1024 * 1024 * 2 + 1024 * 10,
    "initiation_interval": 512,
    "fps_100mhz": CLOCK_MHZ * 1e6 / 512,
    "lut": 28_360,
    "bram36": 110,
    "ff": None,
    "source": "FINN (Umuroglu et al., FPGA 2017) / BNN-PYNQ LFC-W1A1 on PYNQ-Z1, Vivado after place and route",
}


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    model: str
    train_args: tuple[str, ...]          # bnn2fpga train arguments (without --out)
    examples: str | None                 # shipped checkpoint, used when present
    cache_name: str                      # checkpoint file name under --cache otherwise
    build_args: tuple[str, ...] = ()     # extra bnn2fpga build arguments
    expect_refusal: bool = False
    note: str = ""
    sim_images: int = 10_000
    prune_from: Row | None = None        # the checkpoint is this row's, pruned with prune_args
    prune_args: tuple[str, ...] = ()


ROWS: dict[str, Row] = {r.key: r for r in (
    Row("tfc", "tfc", "tfc", ("--model", "tfc", "--epochs", "5"), "examples/tfc-fmnist.pt", "tfc-fmnist.pt",
        note="auto folding (fastest that fits)"),
    Row("sfc", "sfc", "sfc", ("--model", "sfc", "--epochs", "5"), "examples/sfc-fmnist.pt", "sfc-fmnist.pt",
        note="auto folding (fastest that fits)"),
    Row("lfc-msb", "lfc, plane 7 only", "lfc", ("--model", "lfc", "--planes", "7", "--epochs", "5"),
        "examples/lfc-fmnist-msb.pt", "lfc-fmnist-msb.pt", build_args=("--target-fps", "195312.5"),
        note="--target-fps 195312.5 (II <= 512, FINN's rate)"),
    Row("lfc-msb-max", "lfc, plane 7 only, fastest", "lfc", ("--model", "lfc", "--planes", "7", "--epochs", "5"),
        "examples/lfc-fmnist-msb.pt", "lfc-fmnist-msb.pt", note="auto folding (fastest that fits)"),
    Row("cnv", "cnv x0.25 (6 conv, 2 pool)", "cnv",
        ("--model", "cnv", "--width-multiplier", "0.25", "--epochs", "3"), "examples/cnv-fmnist.pt",
        "cnv-fmnist.pt", note="auto folding (shortest interval that fits)"),
    Row("nin", "nin x0.25 (6 conv, 3 pool)", "nin",
        ("--model", "nin", "--width-multiplier", "0.25", "--epochs", "20"), "examples/nin-fmnist.pt",
        "nin-fmnist.pt", note="auto folding (shortest interval that fits)"),
    # Only the shapes matter for the refusal, so a quick 1-epoch / 512-image training stands in.
    Row("lfc-8planes", "lfc, all 8 planes", "lfc", ("--model", "lfc", "--epochs", "1", "--limit", "512"), None,
        "lfc-fmnist-8planes-shape.pt",
        expect_refusal=True, note="refused: weights exceed the block RAM"),
)}
DEFAULT_ROWS = ("tfc", "sfc", "lfc-msb", "lfc-8planes", "cnv", "nin")


def sh(args: list[str], log: Path) -> tuple[int, str]:
    """Run ``bnn2fpga ARGS``; print the command, keep stdout+stderr in ``log``."""
    return run_cli(list(args), log=log, check=False, echo=lambda line: console.print(f"[dim]{line}[/]"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Pending(Exception):
    """--cached-only: this step has no cached result yet."""


@dataclass
class Result:
    row: Row
    commands: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


def checkpoint_for(row: Row, cache: Path, res: Result, offline: bool) -> Path:
    if row.examples and (ROOT / row.examples).is_file():
        res.commands.append(f"# checkpoint {row.examples}: bnn2fpga train {' '.join(row.train_args)} --out "
                            f"{row.examples}")
        return ROOT / row.examples
    out = cache / row.cache_name
    name = out.stem
    if row.prune_from is not None:
        parent = checkpoint_for(row.prune_from, cache, res, offline)
        step, args = "pruning", ["prune", rel(parent), *row.prune_args, "--out", rel(out), "--quiet"]
    else:
        step, args = "training", ["train", *row.train_args, "--out", rel(out), "--quiet"]
    res.commands.append("bnn2fpga " + shlex.join(args))
    if not out.is_file():
        if offline:
            raise Pending(f"no checkpoint {rel(out)} yet")
        rc, text = sh(args, cache / "logs" / f"{args[0]}-{name}.log")
        if rc:
            sys.exit(f"{step} {name} failed:\n{text[-2000:]}")
    return out


def build_row(row: Row, ckpt: Path, cache: Path, res: Result, force: bool, offline: bool) -> Path | None:
    out = cache / "build" / row.key
    refusal = cache / "build" / f"{row.key}.refused.txt"
    # The tables compare the fastest design each network fits (the default folds to the host link's rate).
    speed = () if "--target-fps" in row.build_args or "--folding" in row.build_args else ("--target-fps", "max")
    args = ["build", rel(ckpt), "--board", BOARD, "--out", rel(out), "--quiet", *row.build_args, *speed]
    res.commands.append("bnn2fpga " + shlex.join(args))
    manifest = out / "manifest.json"
    digest = sha256(ckpt)
    stale = True
    if manifest.is_file():
        m = json.loads(manifest.read_text())
        stale = m["checkpoint"]["sha256"] != digest or "yosys" not in m["resources"]
    elif refusal.is_file():
        stale = not refusal.read_text().startswith(digest)
    if (force or stale) and offline:
        raise Pending(f"no build of {rel(ckpt)} in {rel(out)} yet")
    if force or stale:
        refusal.unlink(missing_ok=True)
        t0 = time.perf_counter()
        rc, text = sh([*args, "--force"], cache / "logs" / f"build-{row.key}.log")
        res.data["build_seconds"] = round(time.perf_counter() - t0, 1)
        if rc:
            msg = " ".join(ln.strip() for ln in text.splitlines() if ln.strip()).removeprefix("error: ")
            refusal.write_text(f"{digest}\n{msg}\n")
    if refusal.is_file():
        res.data["refused"] = refusal.read_text().split("\n", 1)[1].strip()
        return None
    return out


def simulate(row: Row, build: Path, cache: Path, res: Result, force: bool, offline: bool) -> dict[str, Any]:
    path = cache / "sim" / f"{row.key}-{row.sim_images}.json"
    args = ["sim", rel(build), "--bulk", "--images", str(row.sim_images), "--json"]
    res.commands.append("bnn2fpga " + shlex.join(args))
    manifest_sha = sha256(build / "manifest.json")
    if path.is_file() and not force:
        cached = json.loads(path.read_text())
        if cached.get("manifest_sha256") == manifest_sha:
            return cached
    if offline:
        raise Pending(f"no bulk simulation of {rel(build)} yet")
    rc, text = sh(args, cache / "logs" / f"sim-{row.key}.log")
    lines = [ln for ln in text.splitlines() if ln.startswith("{")]
    if not lines:
        sys.exit(f"bnn2fpga sim {build} printed no JSON (exit {rc}):\n{text[-2000:]}")
    summary: dict[str, Any] = json.loads(lines[-1])
    summary["manifest_sha256"] = manifest_sha
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def info(ckpt: Path) -> dict[str, Any]:
    done = subprocess.run(["bnn2fpga", "info", str(ckpt), "--json"], env=ENV, capture_output=True, text=True,
                          check=True, cwd=ROOT)
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def run_row(row: Row, cache: Path, force: bool, offline: bool = False) -> Result:
    res = Result(row)
    res.data.update(key=row.key, label=row.label, model=row.model, note=row.note)
    try:
        _run_row(row, cache, force, offline, res)
    except Pending as e:
        res.data["pending"] = str(e)
    return res


def _run_row(row: Row, cache: Path, force: bool, offline: bool, res: Result) -> None:
    ckpt = checkpoint_for(row, cache, res, offline)
    meta = info(ckpt)
    layers = [x for x in meta["layers"] if x["kind"] != "pool"]
    res.data.update(
        checkpoint=rel(ckpt),
        planes=meta["input"]["planes"],
        network="-".join([str(layers[0]["fan_in"]), *(str(x["out"][-1]) for x in layers)]),
        binops=meta["binops"], weight_bits=meta["weight_bits"],
        first_layer_weight_bits=layers[0]["weight_bits"],
        # The refused row's checkpoint only stands in for the shapes (1 epoch on 512 images).
        test_accuracy=None if row.expect_refusal else meta["metrics"].get("test_accuracy"),
    )
    build = build_row(row, ckpt, cache, res, force, offline)
    if build is None:
        if not row.expect_refusal:
            console.print(f"[red]{row.key}: build refused[/]: {res.data['refused']}")
        return
    m = json.loads((build / "manifest.json").read_text())
    y = m["resources"]["yosys"]
    res.data.update(
        build=rel(build), folding=m["folding"], bottleneck=m["cycles"]["bottleneck"],
        predicted_initiation_interval=m["cycles"]["initiation_interval"], predicted_latency=m["cycles"]["latency"],
        layers=[{k: x[k] for k in ("name", "kind", "mh", "mw", "pe", "simd", "vectors", "cycles", "period") if k in x}
                for x in m["layers"]],
        yosys={k: y[k] for k in ("lut", "lut_logic", "lutram", "srl", "ff", "bram36", "dsp")},
        estimate={k: m["resources"]["estimate"][k] for k in ("lut", "ff", "bram36")},
    )
    sim = simulate(row, build, cache, res, force, offline)
    ii = sim["measured_initiation_interval"]
    res.data.update(
        sim_images=sim["images"], measured_initiation_interval=ii, measured_latency=sim["measured_latency"],
        cycles_equal=sim["cycles_equal"], bit_exact=sim["bit_exact"], sim_passed=sim["passed"],
        hardware_accuracy=sim["hardware_accuracy"], reference_accuracy=sim["reference_accuracy"],
        fps_100mhz=CLOCK_MHZ * 1e6 / ii if ii else None,
        sim_cycles=sim["cycles"], sim_cycles_per_second=round(sim["cycles_per_second"]),
    )
    if not sim["passed"]:
        console.print(f"[red]{row.key}: co-simulation FAILED[/] {sim}")


def fmt_int(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def render(results: list[Result], ecp5: list[dict[str, Any]]) -> None:
    t = Table(title=f"Fashion-MNIST BNNs on {BOARD} (xc7z020), 100 MHz; FINN LFC-W1A1 for reference")
    for col in ("design", "planes", "test acc (ref = hw)", "binops", "weight bits", "cycles/frame (sim)",
                "FPS @100 MHz", "latency", "LUT (est.)", "FF (est.)", "BRAM36 (est.)"):
        t.add_column(col, justify="left" if col in ("design", "planes") else "right")
    for r in results:
        d = r.data
        if "planes" not in d:
            t.add_row(d["label"], "-", "-", "-", "-", f"[yellow]pending: {d['pending']}[/]", *["-"] * 5)
            continue
        planes = ",".join(map(str, d["planes"])) if len(d["planes"]) < 8 else "0-7"
        acc = f"{d['test_accuracy']:.2%}" if d.get("test_accuracy") is not None else "-"
        if "hardware_accuracy" in d:
            hw = d["hardware_accuracy"]
            ref = d["reference_accuracy"]
            acc = f"{ref:.2%} = {hw:.2%}" if hw == ref else f"[red]{ref:.2%} != {hw:.2%}[/]"
        if "refused" in d:
            t.add_row(d["label"], planes, acc, fmt_int(d["binops"]), fmt_int(d["weight_bits"]),
                      "[yellow]refused by the build[/]", "-", "-", "-", "-", "-")
            continue
        if "pending" in d:
            t.add_row(d["label"], planes, acc, fmt_int(d["binops"]), fmt_int(d["weight_bits"]),
                      f"[yellow]pending: {d['pending']}[/]", "-", "-", "-", "-", "-")
            continue
        ii = d["measured_initiation_interval"]
        ok = "" if d["cycles_equal"] else f" [red](pred {d['predicted_initiation_interval']})[/]"
        y, e = d["yosys"], d["estimate"]
        t.add_row(d["label"], planes, acc, fmt_int(d["binops"]), fmt_int(d["weight_bits"]), f"{ii}{ok}",
                  fmt_int(d["fps_100mhz"]), fmt_int(d["measured_latency"]), f"{y['lut']:,} ({e['lut']:,.0f})",
                  f"{y['ff']:,} ({e['ff']:,.0f})", f"{y['bram36']:g} ({e['bram36']:g})")
    f = FINN_LFC
    t.add_row(f["name"], "binarised", "-", fmt_int(f["binops"]), fmt_int(f["weight_bits"]),
              str(f["initiation_interval"]), fmt_int(f["fps_100mhz"]), "-", fmt_int(f["lut"]), "-",
              f"{f['bram36']:g}", style="italic")
    console.print(t)
    for r in results:
        if "refused" in r.data:
            console.print(f"[yellow]{r.data['label']}[/]: {r.data['refused']}")
    if ecp5:
        from ecp5_fmax import table  # sibling script

        console.print(table(ecp5))


def plane_text(planes: list[int]) -> str:
    return ",".join(map(str, planes)) if len(planes) < 8 else "0-7 (all)"


def markdown(results: list[Result], ecp5: list[dict[str, Any]]) -> str:
    """The tables of docs/hardware.md."""
    head = ("| design | input planes | test accuracy (reference = hardware) | binops / frame | weight bits | "
            "cycles / frame (simulated = predicted) | FPS at 100 MHz | latency (cycles) | LUT | FF | BRAM36 |")
    lines = [head, "|" + "---|" * 11]
    for r in results:
        d = r.data
        if "pending" in d:
            planes = "-" if "planes" not in d else plane_text(d["planes"])
            acc = f"{d['test_accuracy']:.2%} (reference)" if d.get("test_accuracy") is not None else "-"
            if "yosys" in d:  # built, simulation pending: predicted cycles, Yosys counts
                y = d["yosys"]
                pred = d["predicted_initiation_interval"]
                lines.append(f"| {d['label']} | {planes} | {acc} | {fmt_int(d['binops'])} | "
                             f"{fmt_int(d['weight_bits'])} | {pred} predicted, simulation pending | "
                             f"{fmt_int(CLOCK_MHZ * 1e6 / pred)} (predicted) | "
                             f"{fmt_int(d['predicted_latency'])} (predicted) | "
                             f"{fmt_int(y['lut'])} | {fmt_int(y['ff'])} | {y['bram36']:g} |")
                continue
            lines.append(f"| {d['label']} | {planes} | {acc} | {fmt_int(d.get('binops'))} | "
                         f"{fmt_int(d.get('weight_bits'))} | not measured yet ({d['pending']}) | - | - | - | - | - |")
            continue
        planes = plane_text(d["planes"])
        if "refused" in d:
            lines.append(f"| {d['label']} | {planes} | - | {fmt_int(d['binops'])} | {fmt_int(d['weight_bits'])} | "
                         "**refused by `bnn2fpga build`** (see below) | - | - | - | - | - |")
            continue
        acc = f"{d['reference_accuracy']:.2%} = {d['hardware_accuracy']:.2%}"
        if d["hardware_accuracy"] != d["reference_accuracy"]:
            acc = f"{d['reference_accuracy']:.2%} != {d['hardware_accuracy']:.2%} (MISMATCH)"
        ii, pred = d["measured_initiation_interval"], d["predicted_initiation_interval"]
        cyc = f"{ii} = {pred}" if ii == pred else f"{ii} != {pred} (MISMATCH)"
        y = d["yosys"]
        lines.append(f"| {d['label']} | {planes} | {acc} | {fmt_int(d['binops'])} | {fmt_int(d['weight_bits'])} | "
                     f"{cyc} | {fmt_int(d['fps_100mhz'])} | {fmt_int(d['measured_latency'])} | {fmt_int(y['lut'])} | "
                     f"{fmt_int(y['ff'])} | {y['bram36']:g} |")
    f = FINN_LFC
    lines.append(f"| *{f['name']}* | 1 (binarised) | - | {fmt_int(f['binops'])} | {fmt_int(f['weight_bits'])} | "
                 f"{f['initiation_interval']} | {fmt_int(f['fps_100mhz'])} | - | {fmt_int(f['lut'])} | - | "
                 f"{f['bram36']:g} |")
    lines += ["", "| design | folding (PE x SIMD per layer, pixels per beat) | bottleneck | "
              "Yosys LUT (logic + LUTRAM + SRL) | estimate LUT / FF / BRAM36 |", "|---|---|---|---|---|"]
    for r in results:
        d = r.data
        if "refused" in d or "yosys" not in d:
            continue
        fold = ", ".join(f"{x['name']} {x['pe']}x{x['simd']}" for x in d["layers"])
        y, e = d["yosys"], d["estimate"]
        lines.append(f"| {d['label']} | {fold}; {d['folding']['pixels_per_beat']} px/beat | {d['bottleneck']} | "
                     f"{y['lut_logic']:,} + {y['lutram']:,} + {y['srl']:,} | "
                     f"{e['lut']:,.0f} / {e['ff']:,.0f} / {e['bram36']:g} |")
    if ecp5:
        from ecp5_fmax import seed_list  # sibling script

        lines += ["", "| MVTU | test top | MH x MW | PE x SIMD | popcount levels per stage | tree registers | "
                  "Fmax (MHz), median | per seed (MHz) | LUT4 | FF | DP16KD |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for x in ecp5:
            u = x["utilisation"]
            lines.append(f"| {x['case']} | {x.get('harness', 'ports on pins')} | {x['mh']} x {x['mw']} | "
                         f"{x['pe']} x {x['simd']} | "
                         f"{x['popcount_levels_per_stage']} | {x['popcount_registers']} | {x['fmax_mhz']:.1f} | "
                         f"{seed_list(x)} | "
                         f"{u.get('TRELLIS_COMB', 0):,} | {u.get('TRELLIS_FF', 0):,} | {u.get('DP16KD', 0)} |")
    return "\n".join(lines) + "\n"


def plot(results: list[Result], path: Path) -> None:
    """Three panels, one bar per design: Yosys LUT, BRAM36 and frames/s, FINN's LFC-W1A1 beside them."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    built = [r.data for r in results if r.data.get("yosys") and r.data.get("fps_100mhz")]
    if not built:
        return
    labels = [d["label"] for d in built] + ["FINN LFC-W1A1\n(published)"]
    colors = ["tab:blue"] * len(built) + ["tab:grey"]
    panels = (("LUT (Yosys; FINN: Vivado)", [d["yosys"]["lut"] for d in built] + [FINN_LFC["lut"]], 53_200),
              ("BRAM36", [d["yosys"]["bram36"] for d in built] + [FINN_LFC["bram36"]], 140),
              ("frames/s at 100 MHz", [d["fps_100mhz"] for d in built] + [FINN_LFC["fps_100mhz"]], None))
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    for ax, (title, values, capacity) in zip(axes, panels, strict=True):
        bars = ax.bar(range(len(values)), values, color=colors)
        ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values], fontsize=7)
        if capacity:
            ax.axhline(capacity, color="red", ls="--", lw=1, label=f"xc7z020: {capacity:,}")
            ax.legend(fontsize=7, loc="upper right")
        if title.startswith("frames"):
            ax.set_yscale("log")
            ax.set_ylim(bottom=1e4)
        ax.set_title(title, fontsize=10)
        ax.set_xticks(range(len(values)), labels, rotation=30, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"Fashion-MNIST dense BNNs built by bnn2fpga for {BOARD} (simulated cycles, Yosys resources)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=ROOT / "out" / "hw_table")
    ap.add_argument("--rows", default=",".join(DEFAULT_ROWS), help=f"of {', '.join(ROWS)}")
    ap.add_argument("--json", type=Path, default=ROOT / "docs" / "hardware.json", help="write the numbers here")
    ap.add_argument("--force", action="store_true", help="redo builds and simulations")
    ap.add_argument("--cached-only", action="store_true",
                    help="start no training, build or simulation; rows without cached results show as pending")
    ap.add_argument("--markdown", type=Path, help="also write the markdown tables here")
    ap.add_argument("--plot", type=Path, default=ROOT / "docs" / "img" / "hardware-vs-finn.png",
                    help="bar chart of LUT, BRAM36 and frames/s next to FINN's LFC-W1A1")
    args = ap.parse_args()
    cache = args.cache.resolve()
    results = [run_row(ROWS[k], cache, args.force, args.cached_only) for k in args.rows.split(",")]
    from ecp5_fmax import collect  # sibling script: every finished (case, level) in the cache

    ecp5: list[dict[str, Any]] = collect(cache) if (cache / "ecp5").is_dir() else []
    render(results, ecp5)
    out = {
        "board": BOARD, "part": "xc7z020clg400-1", "clock_mhz": CLOCK_MHZ, "dataset": "fashion-mnist",
        "resources": "Yosys synth_xilinx -family xc7 -flatten -noiopad (LUT includes LUTRAM and SRL)",
        "rows": [{**r.data, "commands": r.commands} for r in results],
        "finn_lfc_w1a1": FINN_LFC,
        "ecp5_fmax": ecp5,
    }
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown(results, ecp5))
    plot(results, args.plot)
    console.print(f"wrote {rel(args.json)}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
