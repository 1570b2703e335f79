"""`bnn2fpga sensitivity`: accuracy loss when each input bit plane is replaced by noise."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from ...errors import UserError
from ..common import SEED_MAX, check_output, console, err_console, integer

if TYPE_CHECKING:

    pass

NAME = "sensitivity"


def add_arguments(sub: Any) -> argparse.ArgumentParser:
    """This command's parser, its arguments and its handler, on the subcommand table ``sub``."""
    from ...data import DATASETS

    p = sub.add_parser(NAME, help="accuracy loss when each input bit plane is replaced by noise",
                       description="Bit-level sensitivity analysis (CBNN): for each bit position replace the "
                                   "plane by uniform random ±1 on the test set and measure the accuracy loss "
                                   "over several draws; also cumulative removal from the LSB up.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--dataset", choices=DATASETS, default=None,
                   help="default: the one the checkpoint was trained on")
    p.add_argument("--data", metavar="DIR", help="dataset folder")
    p.add_argument("--draws", type=integer(), default=5, help="random draws per measurement (mean ± std)")
    p.add_argument("--seed", type=integer(0, SEED_MAX), default=0, help="seed of the random planes")
    p.add_argument("--replace", choices=("random", "0", "1"), default="random",
                   help="what replaces a plane: uniform random ±1 (the paper), or the constant bit 0 or 1 "
                        "(what removing the plane without retraining gives)")
    p.add_argument("--limit", type=integer(), help="only the first N test images")
    p.add_argument("--json", metavar="FILE", help="write the full result as JSON ('-' for stdout)")
    p.add_argument("--plot", metavar="FILE", help="write a PNG plot of both analyses")
    p.add_argument("--force", action="store_true", help="replace --json / --plot files that exist")
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> None:
    from rich.table import Table

    from ...prune.sensitivity import analyse, load_matching, plot, table_rows

    ckpt, ds = load_matching(args.checkpoint, args.dataset, args.data)
    split = ds.test.head(args.limit)
    to_stdout = args.json == "-"
    if args.plot is not None and Path(args.plot).is_dir():
        example = Path(args.plot) / "sensitivity.png"
        raise UserError(f"--plot {args.plot} is a folder; give a file name (e.g. {example})")
    if args.plot is not None and Path(args.plot).suffix.lower() not in (".png", ".pdf", ".svg"):
        if Path(args.plot).suffix:
            raise UserError(f"--plot {args.plot}: give a .png, .pdf or .svg file name")
        args.plot = f"{args.plot}.png"  # what matplotlib would write: say so, and check that name
    for option, path in (("--json", None if to_stdout else args.json), ("--plot", args.plot)):
        if path is not None:
            if Path(path).suffix.lower() in (".pt", ".onnx"):
                raise UserError(f"{option} {path} names a checkpoint or model; give a .json / .png file name")
            check_output(path, args.force, option=option)
    log = None if args.quiet or to_stdout else (lambda m: err_console.print(f"[dim]randomising {m}[/]"))
    result = analyse(ckpt.model(), split, draws=args.draws, seed=args.seed, replace=args.replace, progress=log)
    result["checkpoint"] = str(args.checkpoint)
    result["dataset"] = ds.name
    if to_stdout:
        print(json.dumps(result, indent=2))
    else:
        table = Table("bit", "acc. (%)", "drop (pp)", "LSB..bit", "kept", "acc. (%)", "drop (pp)",
                      title=f"bit-plane sensitivity of {args.checkpoint} on {len(split)} {ds.name} test images, "
                            + (f"{args.draws} random draws" if args.replace == "random" else
                               f"planes fixed to bit {args.replace}")
                            + f" (baseline {100 * result['baseline']:.2f}%)")
        for row in table_rows(result):
            table.add_row(*row)
        console.print(table)
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
            console.print(f"wrote {escape(str(args.json))}")
    if args.plot:
        plot(result, args.plot, title=f"{Path(args.checkpoint).name} on {ds.name}")
        (err_console if to_stdout else console).print(f"wrote {escape(str(args.plot))}")
