"""Collect the flip-pruning results into docs/flip-pruning.json and draw the PNG plots of docs/flip-pruning.md.

Inputs are the JSON files of ``flip_evidence.py`` / ``flip_compare.py`` and pruned
checkpoints (their pruning record holds widths, binops, accuracy before and after).

    python benchmarks/flip_report.py --evidence sfc=docs/data/flip-evidence-sfc.json \\
        --compare sfc=docs/data/flip-compare-sfc.json --pruned sfc/shrink-retrain=/tmp/flip/sfc-sr.pt \\
        --hardware docs/data/flip-hardware.json --out docs/flip-pruning.json --img docs/img
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bnn2fpga.checkpoint import load  # noqa: E402
from bnn2fpga.nn.models import binops, hidden_widths, weight_bits  # noqa: E402


def pairs(items: list[str]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        name, _, path = item.partition("=")
        out.append((name, path))
    return out


def histogram_plot(name: str, evidence: dict[str, Any], path: Path) -> None:
    layers = evidence["layers"]
    cols = min(4, len(layers))
    rows = -(-len(layers) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows + 0.4), squeeze=False)
    flat = axes.reshape(-1)
    for ax in flat[len(layers):]:
        ax.axis("off")
    for ax, layer, hist, total in zip(flat, layers, evidence["histogram_iteration"], evidence["weights"],
                                      strict=False):
        xs = list(range(len(hist)))
        ax.bar(xs, [h / total for h in hist], width=1.0, color="tab:blue")
        ax.set_yscale("log")
        ax.set_title(f"{layer} ({total:,} weights)", fontsize=9)
        ax.set_xlabel("sign flips in the interval")
    for row in axes:
        row[0].set_ylabel("fraction of weights")
    fig.suptitle(f"{name}: flips per weight, per iteration over {evidence['checks']['iteration']} steps "
                 f"(lr {evidence['track_lr']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def compare_plot(name: str, compare: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    colours = {"flip": "tab:blue", "random": "tab:orange", "magnitude": "tab:green"}
    for criterion, colour in colours.items():
        rows = sorted((r for r in compare["rows"] if r["criterion"] == criterion), key=lambda r: r["binops"])
        if not rows:
            continue
        xs = [r["binops_fraction"] for r in rows]
        ax.plot(xs, [r["accuracy"] for r in rows], "o-", color=colour,
                label=f"{criterion}, fine-tuned {compare['finetune_epochs']} ep")
        ax.plot(xs, [r["accuracy_removed"] for r in rows], "x--", color=colour, alpha=0.6,
                label=f"{criterion}, right after removal")
    ax.axhline(compare["base_accuracy"], color="black", lw=0.8, ls=":", label="unpruned")
    ax.set_xlabel("binary operations (fraction of unpruned)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{name}: accuracy at equal binops, same widths, which channels go", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def pruned_row(name: str, path: str) -> dict[str, Any]:
    ckpt = load(path)
    rec = next(r for r in reversed(ckpt.pruning) if r["method"] == "flip")
    return {"name": name, "checkpoint": path, "widths_before": rec["widths_before"],
            "widths_after": rec["widths_after"], "accuracy_before": rec["accuracy_before"],
            "accuracy_after": rec["accuracy_after"], "binops_before": rec["binops_before"],
            "binops_after": rec["binops_after"], "binop_reduction": 1 - rec["binops_after"] / rec["binops_before"],
            "weight_bits_before": rec["weight_bits_before"], "weight_bits_after": rec["weight_bits_after"],
            "weight_bit_reduction": 1 - rec["weight_bits_after"] / rec["weight_bits_before"],
            "input_p": rec["input_p"], "rounds": rec["rounds"], "stop_reason": rec["stop_reason"],
            "config": rec["config"], "flip_source": rec["flip_source"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--evidence", nargs="*", default=[], metavar="MODEL=JSON")
    ap.add_argument("--compare", nargs="*", default=[], metavar="MODEL=JSON")
    ap.add_argument("--pruned", nargs="*", default=[], metavar="NAME=CKPT")
    ap.add_argument("--control", nargs="*", default=[], metavar="NAME=CKPT",
                    help="plain trained checkpoints to compare with (e.g. uniform widths at the same binops)")
    ap.add_argument("--hardware", metavar="JSON")
    ap.add_argument("--out", required=True)
    ap.add_argument("--img", default="docs/img")
    args = ap.parse_args()
    img = Path(args.img)
    img.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"evidence": {}, "compare": {}, "reproduction": [], "hardware": None}
    for name, path in pairs(args.evidence):
        ev = json.loads(Path(path).read_text())
        histogram_plot(name, ev, img / f"flip-histogram-{name}.png")
        report["evidence"][name] = {k: v for k, v in ev.items() if k not in ("draws",)}
    for name, path in pairs(args.compare):
        cmp_ = json.loads(Path(path).read_text())
        compare_plot(name, cmp_, img / f"flip-compare-{name}.png")
        report["compare"][name] = cmp_
    for name, path in pairs(args.pruned):
        report["reproduction"].append(pruned_row(name, path))
    report["controls"] = []
    for name, path in pairs(args.control):
        arch = load(path).architecture
        report["controls"].append({"name": name, "checkpoint": path, "widths": hidden_widths(arch),
                                   "binops": binops(arch), "weight_bits": weight_bits(arch),
                                   "accuracy": load(path).metrics.get("test_accuracy")})
    if args.hardware:
        report["hardware"] = json.loads(Path(args.hardware).read_text())
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out} and plots under {img}")


if __name__ == "__main__":
    main()
