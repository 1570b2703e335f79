"""`bnn2fpga run`: stream test images to a UART board (or its Verilator model), check every reply."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from ...errors import UserError
from ..common import console, integer, real

if TYPE_CHECKING:

    pass

NAME = "run"


def add_arguments(sub: Any) -> argparse.ArgumentParser:
    """This command's parser, its arguments and its handler, on the subcommand table ``sub``."""
    from ...data import DATASETS

    p = sub.add_parser(NAME, help="stream test images to a UART board (or its Verilator model), check every reply",
                       description="Send test images one by one to a board built with a USB-serial bridge "
                                   "(--board ulx3s-85f or icebreaker) over its serial port, or with --sim to the "
                                   "Verilator model of the same board core behind a pseudo-terminal; check every "
                                   "reply's class popcounts against the bit-exact reference, report accuracy, "
                                   "frames/s and where the time went (the serial link or the rest). Broken replies "
                                   "and timeouts are resent (--retries); no frame is lost or counted twice.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       epilog="examples: bnn2fpga run build/tfc --port /dev/ttyUSB0 --images 1000; "
                              "bnn2fpga run build/tfc --sim --images 20")
    p.add_argument("build_dir")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--port", metavar="DEVICE", help="the board's serial port (e.g. /dev/ttyUSB0)")
    where.add_argument("--sim", action="store_true", help="the Verilator model of the board core behind a pty")
    p.add_argument("--images", type=integer(), default=100, help="test images to send")
    p.add_argument("--baud", type=integer(), help="serial rate (default: the build's)")
    p.add_argument("--timeout", type=real(0), metavar="S",
                   help="seconds to wait for each reply (default: 1 s plus the frame's wire time; --sim: 60 s)")
    p.add_argument("--retries", type=integer(0), default=3, help="resends of a frame before giving up")
    p.add_argument("--checkpoint", help="checkpoint the build came from (default: the one inside it)")
    p.add_argument("--dataset", choices=DATASETS, default=None, help="default: the checkpoint's dataset")
    p.add_argument("--data", metavar="DIR", help="dataset folder")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> None:
    from ...run import RunOptions, check, print_summary, run_board

    if args.sim and args.baud is not None:
        raise UserError("--baud sets a real port's rate; the simulated board runs at its build's rate (drop --baud)")
    options = RunOptions(build_dir=args.build_dir, port=args.port, sim=args.sim, images=args.images, baud=args.baud,
                         timeout=args.timeout, retries=args.retries, checkpoint=args.checkpoint,
                         dataset=args.dataset, data=args.data)
    summary = run_board(options, show_progress=not (args.quiet or args.json),
                        log=None if args.json else lambda m: console.print(escape(m)))
    if args.json:
        print(json.dumps(summary))
    else:
        print_summary(summary, console)
    check(summary)
