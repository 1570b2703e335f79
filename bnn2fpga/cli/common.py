"""What the commands share: the consoles, the parser class, and argument checks (one clear error each)."""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from rich.console import Console

from ..errors import UserError

__all__ = ["console", "err_console", "Parser", "integer", "real", "SEED_MAX", "rate_or_max", "parse_widths",
           "parse_planes",
           "check_output", "floats", "ints"]

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one ``error:`` line like every other error (and names --help)."""

    def error(self, message: str) -> NoReturn:
        err_console.print(f"[bold red]error:[/] {self.prog}: {message} (see {self.prog} --help)", highlight=False)
        raise SystemExit(2)


def parse_widths(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        widths = [int(x) for x in text.split(",")]
    except ValueError:
        raise UserError(f"--widths takes comma-separated channel counts (e.g. 256,179,256), not {text!r}") from None
    if any(w < 1 for w in widths):
        raise UserError(f"--widths: every layer needs at least one channel, not {text!r} (to remove a layer, "
                        "pick a smaller model)")
    return widths


def parse_planes(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        planes = sorted({int(p) for p in text.split(",") if p.strip()})
    except ValueError:
        raise UserError(f"--planes takes comma-separated bit positions 0..7 (e.g. 7,6,5), not {text!r}") from None
    if not planes or not all(0 <= p <= 7 for p in planes):
        raise UserError(f"--planes takes bit positions 0..7 (e.g. 7,6,5), not {text!r}")
    return planes


SEED_MAX = 2**32 - 1  # NumPy's and PyTorch's seeds alike


def integer(lo: int = 1, hi: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: a whole number in ``lo..hi``, else one ``error:`` line naming the range."""
    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            value = None
        if value is None or value < lo or (hi is not None and value > hi):
            want = ("a positive integer" if lo == 1 and hi is None else
                    "an integer >= 0" if lo == 0 and hi is None else f"an integer in {lo}..{hi}")
            raise argparse.ArgumentTypeError(f"must be {want}, not {text!r}")
        return value
    parse.__name__ = "integer"  # argparse names the type in its own messages
    return parse


def real(lo: float, hi: float = math.inf, *, lo_open: bool = True, hi_open: bool = False) -> Callable[[str], float]:
    """An argparse ``type``: a finite number in the interval, else one ``error:`` line naming it."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        ok = math.isfinite(value) and (value > lo if lo_open else value >= lo) and \
            (value < hi if hi_open else value <= hi)
        if not ok:
            left, right = "(" if lo_open else "[", ")" if hi_open or math.isinf(hi) else "]"
            want = "a positive number" if lo == 0 and lo_open and math.isinf(hi) else \
                f"a finite number in {left}{lo:g}, {'inf' if math.isinf(hi) else f'{hi:g}'}{right}"
            raise argparse.ArgumentTypeError(f"must be {want}, not {text!r}")
        return value
    parse.__name__ = "number"
    return parse


def rate_or_max(text: str) -> float | str:
    """An argparse ``type``: a positive frame rate, or ``max``."""
    if text == "max":
        return text
    try:
        return real(0)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be a positive frame rate or 'max', not {text!r}") from None


rate_or_max.__name__ = "frame rate"


def check_output(out: Path | str, force: bool, *, option: str = "--out", folder: bool = False) -> Path:
    """Refuse, before any work, an output path that could not be written or would replace something
    unasked: a missing or unwritable parent folder, an existing file without ``--force``, a folder
    where a file is wanted (or the reverse), a name too long for its temporary sibling."""
    path = Path(out)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise UserError(f"{option} {out}: the folder {parent} does not exist; create it first (mkdir -p {parent})")
    if not parent.is_dir():
        raise UserError(f"{option} {out}: {parent} is a file, not a folder")
    try:  # the real test: permissions, read-only mounts and pseudo file systems (/proc) all answer it
        fd, probe = tempfile.mkstemp(dir=parent, prefix=".bnn2fpga-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError(f"{option} {out}: cannot write in {parent} ({e.strerror}); choose another place") from None
    if len(path.name.encode()) + len(".partial") + 1 > 255:  # +1: the hidden staging name's dot
        raise UserError(f"{option} {out}: the name is too long (at most {255 - len('.partial') - 1} bytes)")
    if path.exists():
        if path.is_dir() != folder:
            want = "a folder" if folder else "a file"
            raise UserError(f"{option} {out} exists and is not {want}; choose another {option}")
        if not force:
            raise UserError(f"{out} already exists; choose another {option} or pass --force to replace it")
    return path


def floats(text: str, option: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{option} takes comma-separated numbers, not {text!r}") from None
    if not values or any(not 0 < v <= 1 for v in values):
        raise UserError(f"{option} takes multipliers in (0, 1], e.g. 1,0.75,0.5; got {text!r}")
    return values


def ints(text: str, option: str, hi: int) -> list[int]:
    try:
        values = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise UserError(f"{option} takes comma-separated plane counts, not {text!r}") from None
    if not values or any(not 1 <= v <= hi for v in values):
        raise UserError(f"{option} takes plane counts 1..{hi} (the base keeps {hi} planes); got {text!r}")
    return values
