"""Placeholder: being written (see issue for method flip)."""

from __future__ import annotations

import argparse


def add_arguments(group: argparse._ArgumentGroup | argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> None:
    from ..cli import UserError

    raise UserError("flip is not implemented yet")
