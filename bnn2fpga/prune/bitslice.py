"""Placeholder: being written (see issue for method bitslice)."""

from __future__ import annotations

import argparse


def add_arguments(group: argparse._ArgumentGroup | argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> None:
    from ..cli import UserError

    raise UserError("bitslice is not implemented yet")
