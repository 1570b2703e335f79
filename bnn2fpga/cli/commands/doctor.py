"""`bnn2fpga doctor`: check the toolchain (PyTorch, Amaranth/Yosys, Verilator, cocotb, dataset)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ...errors import UserError
from ..common import console

if TYPE_CHECKING:

    pass

NAME = "doctor"


def add_arguments(sub: Any) -> argparse.ArgumentParser:
    """This command's parser, its arguments and its handler, on the subcommand table ``sub``."""
    p = sub.add_parser(NAME, help="check the toolchain (PyTorch, Amaranth/Yosys, Verilator, cocotb, dataset)",
                       description="Report each tool bnn2fpga needs, with a one-line fix for anything missing.")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> None:
    from ...doctor import run_checks

    ok = True
    for check in run_checks():
        mark = "[green]ok[/]  " if check.ok else ("[yellow]warn[/]" if check.optional else "[red]FAIL[/]")
        console.print(f"{mark} {check.name:<14} {check.detail}")
        if not check.ok and check.fix:
            console.print(f"       fix: {check.fix}")
        ok = ok and (check.ok or check.optional)
    if not ok:
        raise UserError("some required tools are missing; apply the fixes above")
