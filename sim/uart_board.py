"""A UART board core (``<name>_board``) simulated by Verilator behind a pseudo-terminal.

The C++ harness (``uart_board.cpp``) clocks the whole board core -- host bridge and accelerator --
and drives its ``rx`` / decodes its ``tx`` bit by bit from / into a pty. The host code then opens
the pty with pyserial exactly as it opens a board's USB-serial port::

    with UartBoardSim(config) as sim:
        port = serial.Serial(sim.port)
        ...
    sim.stats  # cycles simulated, wall time, bytes each way

The compiled harness is cached in ``<build>/sim_build/uart-<hash>/`` (keyed by the Verilog
sources, the harness and the Verilator options); the ``.mem`` files are read at run time from
a staged copy in a run folder of its own.
"""

from __future__ import annotations

import json
import os
import platform
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from ..contract.manifest import load_manifest
from .bulk import VERILATOR_ARGS, compile_harness
from .runner import SimulationError, check_memories_loaded, hash_files, stage_memories

if TYPE_CHECKING:
    from ..contract.manifest import UartRecord as UartConfig

__all__ = ["UartBoardSim", "HarnessStats", "build_uart_harness"]

#: Amaranth leaves the bridge's FSM case statements without a default: not an error here.
BOARD_ARGS: tuple[str, ...] = ("-Wno-CASEINCOMPLETE",)
#: Measured on tfc's board core: 0.85 M cycles/s with -O2, 2.0 M with -O3, 2.5 M with -O3 -march=native.
#: -march=native ties the binary to this CPU: the cache key names the CPU, so a build folder
#: copied to another machine compiles its own.
CFLAGS = "-O3 -march=native"
START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class HarnessStats:
    cycles: int          # clock cycles simulated (none while the board idled waiting for the host)
    wall_s: float        # the harness's lifetime
    waited_s: float      # of it, blocked waiting for the host
    bytes_in: int        # host to board
    bytes_out: int       # board to host
    framing_errors: int  # board bytes with a low stop bit (a broken transmitter)
    bridge_errors: int   # the board's own count of broken requests
    build_time_s: float  # 0.0 when the cached binary was reused

    @property
    def cycles_per_second(self) -> float:
        busy = self.wall_s - self.waited_s
        return self.cycles / busy if busy > 0 else 0.0


def _cpu() -> str:
    """What -march=native compiles for: the CPU's model and feature flags where Linux tells them."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return f"{platform.machine()} {platform.processor()}"
    wanted = ("model name", "flags", "Features", "CPU part")
    lines = {line.split(":")[0].strip(): line for line in info.splitlines() if line.split(":")[0].strip() in wanted}
    return f"{platform.machine()} " + " ".join(sorted(lines.values()))


def _harness_source() -> Path:
    return Path(str(resources.files("bnn2fpga.sim") / "uart_board.cpp"))


def build_uart_harness(config: UartConfig, jobs: int = 2) -> tuple[Path, float]:
    """Compile (or reuse) the pty harness for this board core; the binary and the seconds spent."""
    missing = [str(p) for p in config.sources if not p.is_file()]
    if missing:
        raise SimulationError(f"{config.build_dir}: the board core's sources are missing: {missing}; rebuild")
    source = _harness_source()
    args = (*VERILATOR_ARGS, *BOARD_ARGS)
    key = hash_files([*config.sources, source], config.top, *args, CFLAGS, _cpu())
    obj_dir = config.build_dir / "sim_build" / f"uart-{key}"
    binary = obj_dir / "uart_board"
    if binary.is_file():
        return binary, 0.0
    seconds = compile_harness(source, config.sources, config.top, obj_dir, "uart_board", args=args, cflags=CFLAGS,
                              jobs=jobs, what="Verilator build of the UART board harness")
    return binary, seconds


class UartBoardSim:
    """The harness as a context manager: ``port`` is the pty to open while inside."""

    def __init__(self, config: UartConfig, *, grace_ms: int = 500) -> None:
        self.config = config
        self.grace_ms = grace_ms
        self.port = ""
        self.stats: HarnessStats | None = None
        self.build_time_s = 0.0
        self._proc: subprocess.Popen[bytes] | None = None
        self._run_dir: Path | None = None
        self._log: IO[bytes] | None = None

    def __enter__(self) -> UartBoardSim:
        manifest = load_manifest(self.config.build_dir)
        manifest.check_files()
        binary, self.build_time_s = build_uart_harness(self.config)
        sim_build = self.config.build_dir / "sim_build"
        self._run_dir = Path(tempfile.mkdtemp(prefix="uart_run-", dir=sim_build))
        stage_memories(manifest, self._run_dir)
        self._log = (self._run_dir / "harness.log").open("wb")
        self._proc = subprocess.Popen(
            [str(binary), "--divisor", str(self.config.divisor), "--grace-ms", str(self.grace_ms)],
            cwd=self._run_dir, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log)
        try:
            self.port = self._first_line()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self._stop()
        except SimulationError:
            if kind is None:
                raise  # with an exception already on its way, that one tells more

    def _first_line(self) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        line = b""
        end = time.monotonic() + START_TIMEOUT_S
        while not line.endswith(b"\n"):
            ready, _, _ = select.select([fd], [], [], max(0.0, end - time.monotonic()))
            chunk = os.read(fd, 256) if ready else b""
            if not chunk:
                raise SimulationError(f"the UART board harness did not start (exit {self._proc.poll()}): "
                                      f"{self._log_text()[-1000:]}")
            line += chunk
        return line.decode().strip()

    def _log_text(self) -> str:
        if self._run_dir is None:
            return ""
        path = self._run_dir / "harness.log"
        return path.read_text(errors="replace") if path.is_file() else ""

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        out = b""
        try:
            # Closing stdin is the harness's signal to stop; it prints its statistics and exits.
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        finally:
            if self._log is not None:
                self._log.close()
        log = self._run_dir / "harness.log" if self._run_dir else None
        try:
            if log is not None:
                check_memories_loaded(log)
            lines = [s for s in out.decode(errors="replace").splitlines() if s.startswith("{")]
            if proc.returncode != 0 or not lines:
                raise SimulationError(f"the UART board harness failed (exit {proc.returncode}): "
                                      f"{self._log_text()[-1000:]}")
            raw: dict[str, Any] = json.loads(lines[-1])
            self.stats = HarnessStats(cycles=raw["cycles"], wall_s=raw["wall_s"], waited_s=raw["waited_s"],
                                      bytes_in=raw["bytes_in"], bytes_out=raw["bytes_out"],
                                      framing_errors=raw["framing_errors"], bridge_errors=raw["bridge_errors"],
                                      build_time_s=self.build_time_s)
        finally:
            if self._run_dir is not None:
                shutil.rmtree(self._run_dir, ignore_errors=True)
