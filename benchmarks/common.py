"""What the benchmark scripts share: where things are, running the CLI with a log, cached JSON results.

Benchmarks drive bnn2fpga the way a user does (the ``bnn2fpga`` command, or the library's public
functions) so that what they measure is what a user gets.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
IMG = DOCS / "img"
# One thread per process: the machines are small and shared, and timings stay comparable.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run_cli(args: list[str | Path], *, log: Path | None = None, check: bool = True,
            echo: Callable[[str], None] = print) -> tuple[int, str]:
    """Run ``bnn2fpga ARGS`` from the repository root; print the command, keep its output in ``log``.

    Returns (exit status, stdout + stderr). With ``check``, a failure raises ``SystemExit`` naming
    the log."""
    cmd = ["bnn2fpga", *map(str, args)]
    echo(f"$ {shlex.join(cmd)}")
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, check=False, cwd=ROOT)
    text = done.stdout + done.stderr
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"$ {shlex.join(cmd)}\n{text}")
    if check and done.returncode:
        raise SystemExit(f"failed ({done.returncode}): {shlex.join(cmd)}" + (f"; see {log}" if log else f"\n{text}"))
    return done.returncode, text


def cached_json(path: Path, compute: Callable[[], Any]) -> Any:
    """``compute()``'s result, kept in ``path``: an interrupted benchmark resumes where it stopped."""
    if path.is_file():
        return json.loads(path.read_text())
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n")
    return value
