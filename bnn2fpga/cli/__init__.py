"""The ``bnn2fpga`` command: a dispatch table of subcommands, one module each in ``commands/``.

A command is one module with ``NAME``, ``add_arguments(sub)`` (its parser, arguments and handler)
and ``run(args)``, listed in :data:`COMMANDS`. Every failure a user can fix is a
:class:`~bnn2fpga.errors.UserError` and is printed as one ``error:`` line without a traceback;
so are the operating system's refusals (a full disk, a folder without write permission).
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from types import ModuleType

from rich.markup import escape

from ..errors import UserError
from .commands import (
    build,
    doctor,
    evaluate,
    explore,
    export,
    importer,
    info,
    prune,
    report,
    run,
    sensitivity,
    sim,
    train,
)
from .common import Parser, console, err_console

__all__ = ["COMMANDS", "UserError", "build_parser", "console", "err_console", "main"]

#: The subcommands, in the order ``bnn2fpga --help`` lists them.
COMMANDS: tuple[ModuleType, ...] = (train, importer, export, info, evaluate, doctor, prune, sensitivity, explore,
                                    build, report, sim, run)


def package_version() -> str:
    try:
        return version("bnn2fpga")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="bnn2fpga",
        description="Compile a pruned binary neural network into a verified FPGA accelerator.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="typical flow:\n"
               "  bnn2fpga train --model sfc --dataset fashion-mnist --epochs 5 --out base.pt\n"
               "  bnn2fpga info base.pt\n"
               "  bnn2fpga eval base.pt --dataset fashion-mnist\n"
               "  bnn2fpga build base.pt --board pynq-z2 --out build/\n"
               "  bnn2fpga sim build/ --images 100\n"
               "run `bnn2fpga COMMAND --help` for each command's options; `bnn2fpga doctor` checks the toolchain.")
    parser.add_argument("--version", action="version", version=f"bnn2fpga {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)
    for command in COMMANDS:
        command.add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2), already printed
        return int(e.code or 0)
    try:
        args.func(args)
    except UserError as e:
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False)
        return 2
    except OSError as e:  # the system refused (no space, no permission): what and where, without a traceback
        where = f": {e.filename}" if e.filename else ""
        err_console.print(f"[bold red]error:[/] {escape(e.strerror or str(e))}{escape(where)}", highlight=False)
        return 2
    except MemoryError:
        err_console.print("[bold red]error:[/] out of memory: try a smaller network, batch or --images",
                          highlight=False)
        return 2
    except KeyboardInterrupt:
        # Half-built Amaranth components warn as they are collected on the way out: one line, not fifty.
        warnings.simplefilter("ignore")
        err_console.print("[bold red]interrupted[/]")
        return 130
    return 0
