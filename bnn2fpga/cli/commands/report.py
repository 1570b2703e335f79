"""`bnn2fpga report`: builds side by side: cycles, frames/s, resources, simulated accuracy."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from ...errors import UserError
from ..common import check_output, console, err_console

if TYPE_CHECKING:

    pass


def _explore_report(folder: Path, as_json: bool) -> None:
    """An exploration's table again (and its recommendation), from its explore.json."""
    from ...explore import FORMAT
    from .explore import table

    try:
        doc = json.loads((folder / "explore.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{folder / 'explore.json'} cannot be read ({e}); run bnn2fpga explore again") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise UserError(f"{folder / 'explore.json'} is not an exploration of this version ({FORMAT}); run "
                        "bnn2fpga explore again")
    if as_json:
        print(json.dumps(doc, indent=2))
        return
    console.print(table(doc["rows"], doc["board"], doc["target_fps"]))
    best = next((r for r in doc["rows"] if r["key"] == doc.get("recommended")), None)
    if best is not None:
        console.print(f"recommended: {escape(best['label'])}, holdout {100 * best['holdout_accuracy']:.2f} % "
                      f"({doc['selection']}); checkpoint {escape(str(folder / 'recommended.pt'))}")
    if doc.get("missing_trials"):
        console.print(f"{doc['missing_trials']} trial(s) not run yet: run the same bnn2fpga explore command again")

NAME = "report"


def add_arguments(sub: Any) -> argparse.ArgumentParser:
    """This command's parser, its arguments and its handler, on the subcommand table ``sub``."""
    p = sub.add_parser(NAME, help="builds side by side: cycles, frames/s, resources, simulated accuracy",
                       description="Compare build folders (a pruned and an unpruned network, two boards, two "
                                   "foldings): network, board, folding, initiation interval, latency, frames/s, "
                                   "what set the rate, LUT/FF/BRAM as estimated and as Yosys counted them, and the "
                                   "hardware accuracy the last `bnn2fpga sim` of each recorded (bulk preferred).",
                       epilog="example: bnn2fpga report build/sfc-fmnist build/sfc-fmnist-flip --out cmp/")
    p.add_argument("builds", nargs="+", metavar="BUILD",
                   help="build folders written by bnn2fpga build, or one folder written by bnn2fpga explore")
    p.add_argument("--out", metavar="DIR", help="also write report.md, report.json and report.png (a plot) here")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--force", action="store_true", help="replace report.md, report.json and report.png in --out")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> None:
    from dataclasses import asdict

    if len(args.builds) == 1 and (Path(args.builds[0]) / "explore.json").is_file():
        _explore_report(Path(args.builds[0]), args.json)
        return

    from ...backend.compare import markdown, read_build, write
    from ...contract.manifest import is_build_folder

    if args.out:
        out = Path(args.out)
        if is_build_folder(out):  # its own report.md would be replaced
            raise UserError(f"--out {out} is a build folder; write the comparison elsewhere (e.g. --out cmp/)")
        if out.exists() and not out.is_dir():
            raise UserError(f"--out {out} is a file; give a folder for report.md, report.json and report.png")
        check_output(out, True, option="--out", folder=True)
        existing = [n for n in ("report.md", "report.json", "report.png") if (out / n).exists()]
        if existing and not args.force:
            raise UserError(f"--out {out} already holds {', '.join(existing)}; pass --force to replace them or "
                            "choose another --out")
    rows = [read_build(b) for b in args.builds]
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        print(markdown(rows), end="")  # a Markdown table: readable here, and pastes into notes as it is
    if args.out:
        files = write(rows, Path(args.out))
        (console if not args.json else err_console).print(f"wrote {escape(', '.join(str(f) for f in files))}")
