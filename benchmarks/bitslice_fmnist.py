"""Reproduce CBNN bit-slice pruning on Fashion-MNIST: every number of docs/bitslice-pruning.md.

Each stage runs ``bnn2fpga`` commands (printed before they run, so the page can quote
them), leaves its outputs in ``--work`` and is skipped when they already exist; the
``collect`` stage merges them into ``docs/bitslice-pruning.json`` and the plots under
``docs/img/``. One thread per process: on a shared 2-core machine two OpenMP workers
per small model are several times slower than one.

    python benchmarks/bitslice_fmnist.py sensitivity   # sfc (+ cnv) sensitivity tables and plots
    python benchmarks/bitslice_fmnist.py prune         # sfc: budgeted search, --max-drop 1
    python benchmarks/bitslice_fmnist.py checks        # sfc: the chosen shape on a holdout and another seed
    python benchmarks/bitslice_fmnist.py grid          # sfc: Pareto grid, 1..4 planes x 5 multipliers
    python benchmarks/bitslice_fmnist.py cnv           # cnv (x0.25 widths, 3 epochs): base, budgeted search
    python benchmarks/bitslice_fmnist.py combine       # bit-slice, then flip pruning on the result
    python benchmarks/bitslice_fmnist.py lfc           # lfc: fewest planes/widths that fit the xc7z020 BRAM
    python benchmarks/bitslice_fmnist.py hardware      # build + simulate base and pruned sfc for pynq-z2
    python benchmarks/bitslice_fmnist.py collect       # docs/bitslice-pruning.json + docs/img/*.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from common import DOCS, IMG, ROOT, run_cli


def sh(*args: str | Path, log: Path | None = None, check: bool = True) -> int:
    return run_cli(list(args), log=log, check=check)[0]


def base_sfc(work: Path) -> Path:
    """The sfc base of this page: 8 planes, 5 epochs, lr 0.01, seed 0 (84.04%).

    (The shipped examples/sfc-fmnist.pt was later retrained at lr 0.03; this page keeps its base.)
    """
    out = work / "sfc.pt"
    if not out.exists():
        sh("train", "--model", "sfc", "--epochs", 5, "--lr", 0.01, "--seed", 0, "--quiet", "--out", out)
    return out


def stage_sensitivity(work: Path) -> None:
    base = base_sfc(work)
    if not (work / "sfc-sensitivity.json").exists():
        sh("sensitivity", base, "--draws", 5, "--json", work / "sfc-sensitivity.json",
           "--plot", IMG / "bitslice-sensitivity-sfc.png", "--quiet", "--force")  # regenerates the doc image


def stage_prune(work: Path) -> None:
    base = base_sfc(work)
    out = work / "sfc-bitslice.pt"
    if not out.exists():
        sh("prune", base, "--method", "bitslice", "--max-drop", 1.0, "--select-on-test", "--out", out,
           "--save-candidates", work / "sfc-cands", "--pareto-json", work / "sfc-pareto.json",
           log=work / "sfc-prune.log")


def stage_checks(work: Path) -> None:
    """The chosen sfc shape again, selected on a 10k training holdout, and with another seed."""
    base = base_sfc(work)
    for name, m, extra in (("sfc-holdout", 0.375, ("--holdout", 10000)),
                           ("sfc-seed1", 0.375, ("--seed", 1, "--select-on-test")),
                           ("sfc-holdout-m075", 0.75, ("--holdout", 10000))):
        if not (work / f"{name}.pt").exists():
            sh("prune", base, "--method", "bitslice", "--keep-bits", 2, "--multipliers", m, *extra,
               "--sensitivity-draws", 1, "--out", work / f"{name}.pt", "--pareto-json", work / f"{name}.json",
               log=work / f"{name}.log", check=False)


def stage_grid(work: Path) -> None:
    base = base_sfc(work)
    out = work / "sfc-grid.pt"
    if not out.exists():
        sh("prune", base, "--method", "bitslice", "--keep-bits", "1,2,3,4", "--max-drop", 1.0, "--select-on-test",
           "--out", out,
           "--save-candidates", work / "sfc-grid-cands", "--pareto-json", work / "sfc-grid.json",
           log=work / "sfc-grid.log", check=False)


def stage_cnv(work: Path) -> None:
    """cnv is far heavier to train than sfc: widths x0.25, 3 epochs (the recipe of examples/cnv-fmnist.pt).

    The sensitivity runs on the first 2,000 test images, 2 draws. The search is the budgeted one
    (--max-drop 1, multipliers 1..0.25 of the x0.25 base), as for sfc.
    """
    base = work / "cnv.pt"
    if not base.exists():
        sh("train", "--model", "cnv", "--width-multiplier", 0.25, "--epochs", 3, "--lr", 0.01, "--seed", 0,
           "--quiet", "--out", base, log=work / "cnv-train.log")
    if not (work / "cnv-sensitivity.json").exists():
        sh("sensitivity", base, "--draws", 2, "--limit", 2000, "--json", work / "cnv-sensitivity.json",
           "--plot", IMG / "bitslice-sensitivity-cnv.png", "--quiet", "--force")
    out = work / "cnv-bitslice.pt"
    if not out.exists():
        sh("prune", base, "--method", "bitslice", "--max-drop", 1.0, "--sensitivity-draws", 1, "--select-on-test",
           "--out", out,
           "--save-candidates", work / "cnv-cands", "--pareto-json", work / "cnv-pareto.json",
           log=work / "cnv-prune.log", check=False)


def stage_combine(work: Path) -> None:
    """Flip pruning on the bit-slice result, with what is left of the 1 pp budget of the original base.

    Once as published (widths round(C (1 - p_l)), rounds until p_l stops falling), once forced
    to 70% of the binops (--binop-target 0.7, one round) to see what the combination costs.
    """
    from bnn2fpga.checkpoint import load

    for model in ("sfc", "cnv"):
        src = work / f"{model}-bitslice.pt"
        if not src.exists():
            continue
        rec = load(src).pruning[-1]
        base_acc = next(r for r in rec["candidates"] if r["base"])["accuracy"]
        left = max(0.0, 100 * (load(src).metrics["test_accuracy"] - (base_acc - 0.01)))
        for suffix, extra in (("", ("--rounds", 3)), ("70", ("--binop-target", 0.7, "--rounds", 1))):
            out = work / f"{model}-bitslice-flip{suffix}.pt"
            if not out.exists():
                sh("prune", src, "--method", "flip", "--accuracy-budget", f"{left:.2f}", *extra, "--select-on-test",
                   "--out", out,
                   log=work / f"{model}-combine{suffix}.log", check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["sensitivity", "prune", "checks", "grid", "cnv", "combine", "lfc",
                                          "hardware", "collect", "all"])
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "bitslice", help="working folder")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    IMG.mkdir(parents=True, exist_ok=True)
    stages = {"sensitivity": stage_sensitivity, "prune": stage_prune, "checks": stage_checks, "grid": stage_grid,
              "cnv": stage_cnv,
              "combine": stage_combine, "lfc": stage_lfc, "hardware": stage_hardware, "collect": stage_collect}
    for name in (list(stages) if args.stage == "all" else [args.stage]):
        stages[name](args.work)


# ------------------------------------------------------------------ hardware

# Planes x widths around the fit boundary, plus the width-only alternative (all 8 planes, narrower).
LFC_POINTS = [(8, 0.625), (8, 0.5)] + [(k, m) for k in range(8, 0, -1) for m in (1.0, 0.875, 0.75)]


def lfc_fit(k: int, m: float, board: str = "pynq-z2") -> dict[str, Any]:
    """Does lfc with the k top planes and widths x m fit the board? The build's own checks, untrained weights.

    Runs the first steps of ``bnn2fpga build`` (memory check, automatic folding against the
    resource estimate); fitting depends on the shapes, not on the weight values.
    """
    import tempfile

    import torch

    from bnn2fpga.backend.build import BuildOptions, plan
    from bnn2fpga.checkpoint import Checkpoint
    from bnn2fpga.nn.models import BNN, binops, hidden_widths, make_architecture, weight_bits

    arch = make_architecture("lfc", planes=list(range(8 - k, 8)), width_multiplier=m)
    torch.manual_seed(0)
    row: dict[str, Any] = {"k": k, "multiplier": m, "widths": hidden_widths(arch), "weight_bits": weight_bits(arch),
                           "binops": binops(arch)}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lfc.pt"
        Checkpoint.from_model(BNN(arch).eval(), dataset="fashion-mnist").save(path)
        # The fastest folding that fits, as the page's tables were made.
        result = plan(path, BuildOptions(board=board, synth=False, target_fps="max"))
    if not result.fits:
        return {**row, "fits": False, "reason": result.reason}
    return {**row, "fits": True, "estimate": result.estimate, "initiation_interval": result.initiation_interval}


def stage_lfc(work: Path) -> None:
    import torch
    torch.set_num_threads(1)
    fit_json = work / "lfc-fit.json"
    if not fit_json.exists():
        rows = [lfc_fit(k, m) for k, m in LFC_POINTS]
        fit_json.write_text(json.dumps(rows, indent=2) + "\n")
    rows = json.loads(fit_json.read_text())
    # The least pruned lfcs that fit: most planes at full width, and the widest with all 8 planes
    # (the width-only alternative); plus the full 8-plane lfc that does not fit, for its accuracy.
    # `train --planes/--width-multiplier` builds and seeds exactly the candidate bitslice pruning retrains.
    k = max(r["k"] for r in rows if r["fits"] and r["multiplier"] == 1.0)
    m = max(r["multiplier"] for r in rows if r["fits"] and r["k"] == 8)
    for name, planes, mult in ((f"lfc-k{k}", range(8 - k, 8), 1.0), (f"lfc-k8-m{m:g}", range(8), m),
                               ("lfc-k8", range(8), 1.0)):
        out = work / f"{name}.pt"
        if not out.exists():
            sh("train", "--model", "lfc", "--planes", ",".join(map(str, planes)), "--width-multiplier", mult,
               "--epochs", 3, "--lr", 0.01, "--seed", 0, "--quiet", "--out", out, log=work / f"{name}.log")


HW_BUILDS = ("sfc-base", "sfc-bitslice", "sfc-bitslice-samefps", "sfc-bitslice-flip")


def stage_hardware(work: Path) -> None:
    """Build and co-simulate base and pruned sfc for the PYNQ-Z2.

    Each network gets the fastest folding that fits the board; the pruned one also the cheapest
    folding that reaches the base's frame rate (``--target-fps``), to compare resources at equal speed.
    """
    ckpts = {"sfc-base": base_sfc(work), "sfc-bitslice": work / "sfc-bitslice.pt",
             "sfc-bitslice-samefps": work / "sfc-bitslice.pt", "sfc-bitslice-flip": work / "sfc-bitslice-flip.pt"}
    for name in HW_BUILDS:
        ck = ckpts[name]
        if not ck.exists():
            continue
        out = work / "hw" / name
        if not (out / "manifest.json").exists():
            extra: tuple[Any, ...] = ("--target-fps", "max")  # the fastest design that fits
            if name.endswith("-samefps"):
                base_manifest = _read(work / "hw" / "sfc-base" / "manifest.json")
                if base_manifest is None:
                    continue
                extra = ("--target-fps", round(base_manifest["cycles"]["fps"]))
            sh("build", ck, "--board", "pynq-z2", *extra, "--out", out, "--force", "--quiet",
               log=work / f"hw-{name}.log")
        if not (work / "hw" / f"{name}-sim.json").exists():
            _, text = run_cli(["sim", out, "--images", "20", "--checkpoint", ck, "--json"], check=False)
            (work / "hw" / f"{name}-sim.json").write_text(text.strip().splitlines()[-1] + "\n")


# ------------------------------------------------------------------ collect

def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text()) if path.exists() else None
    except json.JSONDecodeError:
        return None


def _plain(value: Any) -> Any:
    """JSON-ready: small tensors become lists, large ones (per-weight flip counts) are left out."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.tolist() if value.numel() <= 64 else f"<tensor {tuple(value.shape)}>"
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _ckpt_summary(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    from bnn2fpga.checkpoint import load
    from bnn2fpga.nn.models import binops, hidden_widths, weight_bits

    ck = load(path)
    arch = ck.architecture
    return {"checkpoint": str(path), "planes": arch["input"]["planes"], "widths": hidden_widths(arch),
            "weight_bits": weight_bits(arch), "binops": binops(arch),
            "test_accuracy": ck.metrics.get("test_accuracy"),
            "training": {k: ck.training.get(k) for k in ("epochs", "lr", "seed")},
            "pruning": [_plain({k: v for k, v in r.items() if k not in ("sensitivity", "candidates")})
                        for r in ck.pruning]}


def _hardware(work: Path) -> dict[str, Any]:
    out = {}
    for name in HW_BUILDS:
        manifest = _read(work / "hw" / name / "manifest.json")
        if manifest is None:
            continue
        sim = _read(work / "hw" / f"{name}-sim.json")
        res = manifest.get("resources", {})
        out[name] = {"cycles": manifest["cycles"], "clock_mhz": manifest["clock_mhz"],
                     "layers": [{k: layer.get(k) for k in ("name", "mh", "mw", "pe", "simd", "cycles")}
                                for layer in manifest["layers"]],
                     "estimate": res.get("estimate"), "yosys": res.get("synth") or res.get("yosys"), "sim": sim}
    return out


def _plot_pareto(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for k in sorted({r["k"] for r in rows}):
        pts = sorted((r for r in rows if r["k"] == k and not r["base"]), key=lambda r: r["weight_bits"])
        if pts:
            ax.plot([r["weight_bits"] / 8192 for r in pts], [100 * r["accuracy"] for r in pts], "o-",
                    label=f"{k} plane{'s' if k > 1 else ''}")
    base = next(r for r in rows if r["base"])
    ax.plot([base["weight_bits"] / 8192], [100 * base["accuracy"]], "k*", markersize=12, label="base (8 planes)")
    ax.axhline(100 * base["accuracy"] - 1.0, color="grey", ls="--", lw=1, label="base - 1 pp")
    for r in rows:
        if r.get("chosen"):
            ax.plot([r["weight_bits"] / 8192], [100 * r["accuracy"]], "rs", mfc="none", markersize=12,
                    label="chosen")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("binary weights (KiB)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def stage_collect(work: Path) -> None:
    from bnn2fpga.checkpoint import load
    from bnn2fpga.prune.sensitivity import plot

    # Merge into the published numbers: a model, lfc or hardware section with nothing in this work
    # folder keeps its earlier entry (e.g. re-running only the cnv stage on another machine).
    earlier = _read(DOCS / "bitslice-pruning.json") or {}
    result: dict[str, Any] = {**earlier, "work": str(work), "dataset": "fashion-mnist"}
    for model in ("sfc", "cnv"):
        entry: dict[str, Any] = {}
        pruned = work / f"{model}-bitslice.pt"
        sens = _read(work / f"{model}-sensitivity.json")
        if sens is None and pruned.exists():
            sens = load(pruned).pruning[-1]["sensitivity"]  # the same analysis (seed 0), run by prune
        if sens is not None:
            entry["sensitivity_random"] = sens
            plot(sens, IMG / f"bitslice-sensitivity-{model}.png", title=f"{model} on Fashion-MNIST: random planes")
        zero = _read(work / f"{model}-sensitivity-zero.json")
        if zero is not None:
            entry["sensitivity_zero"] = zero
        for key, name in (("search", f"{model}-pareto.json"), ("grid", f"{model}-grid.json")):
            table = _read(work / name)
            if table is not None:
                entry[key] = table
        rows = list(entry.get("search", {}).get("rows", []))
        seen = {(r["k"], r["multiplier"]) for r in rows}
        rows += [{**r, "chosen": False} for r in entry.get("grid", {}).get("rows", [])
                 if (r["k"], r["multiplier"]) not in seen]
        if rows:
            _plot_pareto(rows, IMG / f"bitslice-pareto-{model}.png", f"{model} on Fashion-MNIST: planes x widths")
        entry["chosen"] = _ckpt_summary(pruned)
        entry["checks"] = {n: _read(work / f"{n}.json") or _ckpt_summary(work / f"{n}.pt")
                           for n in (f"{model}-holdout", f"{model}-seed1", f"{model}-holdout-m075")
                           if (work / f"{n}.json").exists() or (work / f"{n}.pt").exists()}
        entry["combined"] = {p.stem: _ckpt_summary(p) for p in sorted(work.glob(f"{model}-bitslice-flip*.pt"))}
        if entry["chosen"] or sens:
            result[model] = entry
    lfc = _read(work / "lfc-fit.json")
    if lfc is not None:
        result["lfc"] = {"fit": lfc, "trained": {p.stem: _ckpt_summary(p) for p in sorted(work.glob("lfc-k*.pt"))}}
    result["hardware"] = _hardware(work) or earlier.get("hardware", {})
    (DOCS / "bitslice-pruning.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {DOCS / 'bitslice-pruning.json'}")
    print(markdown(result))


def _pct(row: dict[str, Any], with_std: bool) -> str:
    return f"{100 * row['mean']:.2f}" + (f" ± {100 * row['std']:.2f}" if with_std else "")


def markdown(result: dict[str, Any]) -> str:
    """The page's tables, from the JSON (paste into docs/bitslice-pruning.md)."""
    lines: list[str] = []
    for model in ("sfc", "cnv"):
        entry = result.get(model)
        if not entry:
            continue
        for key, label in (("sensitivity_random", "random ±1"), ("sensitivity_zero", "constant bit 0")):
            sens = entry.get(key)
            if not sens:
                continue
            lines += [f"\n{model}, planes replaced by {label} ({sens['draws']} draws, {sens['images']} test images, "
                      f"baseline {100 * sens['baseline']:.2f}%):\n",
                      "| bit | accuracy, this plane replaced (%) | drop (pp) | bits 0..b replaced (%) | drop (pp) |",
                      "|---|---|---|---|---|"]
            many = sens["draws"] > 1
            for a, c in zip(sens["single"], sens["cumulative"], strict=True):
                lines.append(f"| {a['bit']} | {_pct(a, many)} | {a['drop_pp']:.2f} | {_pct(c, many)} | "
                             f"{c['drop_pp']:.2f} |")
        for key in ("search", "grid"):
            table = entry.get(key)
            if not table:
                continue
            lines += [f"\n{model} {key} (budget {100 * table['budget']:.2f}% on the {table['selection']}):\n",
                      "| planes kept | widths | weight bits | smaller | binops | fewer binops | accuracy (%) | |",
                      "|---|---|---|---|---|---|---|---|"]
            for r in sorted(table["rows"], key=lambda r: (-r["weight_bits"], -r["multiplier"])):
                mark = "**chosen**" if r.get("chosen") else "base" if r["base"] else \
                    ("Pareto" if r.get("pareto") else "")
                if r.get("within_budget") is False:
                    mark = (mark + ", " if mark else "") + "over budget"
                lines.append(f"| {','.join(map(str, r['planes']))} | {','.join(map(str, r['widths']))} | "
                             f"{r['weight_bits']:,} | {r['size_reduction']:.2f}x | {r['binops']:,} | "
                             f"{r['binop_reduction']:.2f}x | {100 * r['accuracy']:.2f} | {mark} |")
    lfc = result.get("lfc")
    if lfc:
        lines += ["\nlfc on the PYNQ-Z2 (xc7z020, 140 BRAM36):\n",
                  "| planes | widths | weight bits | fits | BRAM36 (est.) | LUT (est.) | II (cycles) |",
                  "|---|---|---|---|---|---|---|"]
        for r in lfc["fit"]:
            est = r.get("estimate") or {}
            lines.append(f"| {r['k']} | {r['widths'][0]} | {r['weight_bits']:,} | {'yes' if r['fits'] else 'no'} | "
                         f"{est.get('bram36', '-')} | {est.get('lut', '-')} | {r.get('initiation_interval', '-')} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
