"""`bnn2fpga explore`: the most accurate network that fits a board at a frame rate."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.markup import escape

from ...errors import UserError
from ..common import SEED_MAX, console, floats, integer, ints, rate_or_max, real

NAME = "explore"


def add_arguments(sub: Any) -> argparse.ArgumentParser:
    """This command's parser, its arguments and its handler, on the subcommand table ``sub``."""
    from ...boards import BOARDS
    from ...data import DATASETS
    from ...explore.space import METHODS

    p = sub.add_parser(
        NAME, help="search pruning and widths for the most accurate network that fits a board at a frame rate",
        description="Train candidates derived from CKPT (flip pruning at several binop targets, bit-slice "
                    "planes, both, uniform width scaling, random width allocations, and a hardware-aware "
                    "allocation that narrows the layers the target rate makes most expensive), each from scratch "
                    "with CKPT's recipe on the training set less a holdout; cost each with the build's folding and "
                    "resource models at the target rate; decide on the holdout. Writes explore.json, pareto.png, "
                    "recommended.pt and its build; `bnn2fpga report OUT` shows the table again. Trials are "
                    "cached by content in OUT/trials: a killed run goes on where it stopped.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="example: bnn2fpga explore examples/sfc-fmnist.pt --board pynq-z2 --target-fps 500000 "
               "--epochs 3 --seeds 0,1,2 --out explore/sfc")
    p.add_argument("checkpoint", help="trained checkpoint to start from")
    p.add_argument("--board", choices=sorted(BOARDS), default="pynq-z2")
    p.add_argument("--target-fps", type=rate_or_max, metavar="FPS|max",
                   help="frame rate every candidate must reach (default: what the board's host link feeds)")
    p.add_argument("--out", required=True, metavar="DIR", help="exploration folder (reused: cached trials)")
    p.add_argument("--dataset", choices=DATASETS, default=None, help="default: the checkpoint's")
    p.add_argument("--data", metavar="DIR", help="dataset folder")
    p.add_argument("--methods", default=",".join(METHODS), metavar="LIST",
                   help=f"candidate methods, of {', '.join(METHODS)}")
    p.add_argument("--multipliers", default="0.75,0.5,0.375,0.25", metavar="LIST",
                   help="uniform width multipliers (also the hardware-aware allocation's cost budgets)")
    p.add_argument("--binop-targets", default="0.7,0.5,0.3", metavar="LIST",
                   help="fractions of the input's binops for flip and the random control")
    p.add_argument("--keep-planes", default="4,2,1", metavar="LIST",
                   help="input planes to keep (most significant first) for bit-slice candidates")
    p.add_argument("--seeds", default="0", metavar="LIST", help="training seeds per candidate (mean and std)")
    p.add_argument("--epochs", type=integer(), metavar="N", help="epochs per trial (default: the input's recipe)")
    p.add_argument("--holdout", type=integer(1), default=5000, metavar="N",
                   help="the last N training images decide (never the test set)")
    p.add_argument("--limit", type=integer(), metavar="N", help="train on at most N images")
    p.add_argument("--workers", type=integer(0), default=0, metavar="N",
                   help="local training processes (0: one per CPU)")
    p.add_argument("--ray", metavar="ADDRESS", help="run trials on this Ray cluster (e.g. 10.0.0.5:6379) instead")
    p.add_argument("--gpus-per-trial", type=real(0, 64, lo_open=False), default=0.0, metavar="N",
                   help="with --ray: GPUs each trial asks for (Ray places it on a GPU worker)")
    p.add_argument("--budget", type=real(0), metavar="SECONDS",
                   help="start no trial after this long; run the same command again to go on")
    p.add_argument("--confirm", choices=("front", "recommended", "none"), default="front",
                   help="count with Yosys the resources of the Pareto front's members, only the recommended "
                        "one's, or none (estimates only)")
    p.add_argument("--no-build", action="store_true", help="do not build the recommended checkpoint")
    p.add_argument("--margin", type=real(0, 1), default=0.85, help="usable fraction of the board's LUTs and FFs")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> None:
    from ...explore import ExploreOptions, explore

    methods = tuple(m for m in args.methods.split(",") if m)  # checked by explore() against space.METHODS
    multipliers = floats(args.multipliers, "--multipliers")
    targets = floats(args.binop_targets, "--binop-targets")
    keeps = ints(args.keep_planes, "--keep-planes", 8)
    try:
        seeds = sorted({int(x) for x in args.seeds.split(",") if x.strip()})
    except ValueError:
        seeds = []
    if not seeds or any(not 0 <= v <= SEED_MAX for v in seeds):
        raise UserError(f"--seeds takes comma-separated integers in 0..{SEED_MAX}, not {args.seeds!r}")
    if args.gpus_per_trial and not args.ray:
        raise UserError("--gpus-per-trial asks Ray for GPUs: give --ray ADDRESS too")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "explore.json").is_file() and not (out / "trials").is_dir():
        raise UserError(f"--out {out} holds other files; choose an empty or new folder (explore writes there)")
    options = ExploreOptions(board=args.board, target_fps=args.target_fps, out=out, dataset=args.dataset,
                             data=args.data, methods=methods, multipliers=tuple(multipliers),
                             binop_targets=tuple(targets), keep_planes=tuple(keeps),
                             seeds=tuple(seeds), epochs=args.epochs, holdout=args.holdout, limit=args.limit,
                             workers=args.workers, ray=args.ray, gpus_per_trial=args.gpus_per_trial,
                             budget_s=args.budget, confirm=args.confirm, build=not args.no_build, margin=args.margin)
    log = None if args.quiet else (lambda m: console.print(escape(m), highlight=False))

    def progress(done: int, total: int, result: dict[str, Any]) -> None:
        if not args.quiet:
            console.print(f"[dim]trial {done}/{total}[/]: widths {result['widths']}, planes {result['planes']}, "
                          f"seed {result['seed']}: holdout {100 * result['holdout_accuracy']:.2f} %",
                          highlight=False)

    result = explore(args.checkpoint, options, log=log, progress=progress)
    console.print(table(result.rows, args.board, args.target_fps))
    if result.missing:
        console.print(f"{result.missing} trial(s) not run (--budget spent): run the same command again to go on")
    best = result.recommended
    if best is None:
        rate = f"{args.target_fps} frames/s" if args.target_fps else "the rate its host link feeds"
        raise UserError(f"no candidate reaches {rate} on {args.board} "
                        "(see the table's reasons): lower --target-fps, or add narrower --multipliers")
    console.print(f"recommended: {escape(best['label'])} (widths {best['widths']}, planes {best['planes']}), holdout "
                  f"{100 * best['holdout_accuracy']:.2f} %, estimate {best['lut']:,} LUT / {best['bram36']:g} BRAM36 "
                  f"at II {best['interval']:,}; wrote {escape(', '.join(str(f) for f in result.files))}")
    if best.get("build_error"):
        # Costs are estimates; the build is the check. Say so rather than leave a recommendation unbuilt.
        console.print(f"[red]its build failed[/red]: {escape(best['build_error'].splitlines()[0])} (explore "
                      "tried the next most accurate candidates too: each row's build_error in explore.json)")


def table(rows: list[dict[str, Any]], board: str, target_fps: object) -> Any:
    """The exploration as a rich table (also `bnn2fpga report` on an exploration folder)."""
    from rich.table import Table

    t = Table("method", "candidate", "widths", "planes", "binops", "II", "LUT est.", "BRAM36 est.", "built LUT/BRAM",
              "holdout %", "test % (fronts)", "",
              title=f"explore: {board} at {f'{target_fps} frames/s' if target_fps else 'its host link rate'}, "
                    "the cheapest folding each")
    for r in rows:
        acc = "-" if r["holdout_accuracy"] is None else (
            f"{100 * r['holdout_accuracy']:.2f}" + (f" ± {100 * r['holdout_std']:.2f}" if len(r["seeds"]) > 1 else ""))
        test = "" if r.get("test_accuracy") is None else f"{100 * r['test_accuracy']:.2f}"
        marks = ", ".join(m for m, on in (("front LUT", r["front_lut"]), ("front BRAM", r["front_bram"]),
                                          ("build failed", bool(r.get("build_error")))) if on)
        built = built_text(r)
        if not r["fits"]:
            t.add_row(r["method"], r["label"], ",".join(map(str, r["widths"])), ",".join(map(str, r["planes"])),
                      f"{r['binops']:,}", "-", "-", "-", "-", "-", "", "misses the rate")
            continue
        t.add_row(r["method"], r["label"], ",".join(map(str, r["widths"])), ",".join(map(str, r["planes"])),
                  f"{r['binops']:,}", f"{r['interval']:,}", f"{r['lut']:,}", f"{r['bram36']:g}",
                  built, acc, test, marks)
    return t


def built_text(row: dict[str, Any]) -> str:
    """What the build counted: nextpnr's cells and clock on an open board, else Yosys's LUT / BRAM36."""
    placed, yosys = row.get("placed"), row.get("yosys")
    if placed:
        return (f"{placed['logic_cells']:,} {placed['logic_kind']} / {placed['bram']} {placed['bram_kind']}"
                + (f" at {placed['clock_mhz']} MHz" if placed.get("clock_mhz") else ""))
    return f"{yosys['lut']:,} / {yosys['bram36']:g}" if yosys else ""
