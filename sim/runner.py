"""Build and run the cocotb testbench (:mod:`bnn2fpga.sim.tb_accelerator`) against a build folder.

Verilator is the default simulator, Icarus the second one (slow: short runs only). The
compiled simulator is cached per configuration in ``<build>/sim_build/<simulator>/`` and
rebuilt only when the sources or the build options change.

Data reaches the testbench as files, not environment blobs: the runner writes
``tb_config.json`` and ``stimulus.npz`` into ``<build>/sim_build/<simulator>/run/``,
points ``BNN2FPGA_TB_CONFIG`` at the config, and reads ``result.json`` and
``outputs.npy`` back. The simulator runs in that ``run/`` folder, which holds copies of
the build's ``.mem`` files at their manifest paths, so ``$readmemh`` finds them and
nothing is written into the build folder's own files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bnn2fpga.tools import find_iverilog, find_verilator

from ..contract.manifest import Manifest, check_expected, load_manifest, pack_frames
from ..errors import UserError

Simulator = Literal["verilator", "icarus"]
TB_MODULE = "bnn2fpga.sim.tb_accelerator"
# Amaranth's Verilog is not WIDTH-clean (docs/architecture.md, toolchain notes).
VERILATOR_ARGS: tuple[str, ...] = ("-Wno-WIDTH",)

# What simulators print when $readmemh cannot open its file (it is only a warning).
_READMEM_MISSING = re.compile(
    r"(\$readmem\S*.*(not found|unable to open|cannot open|can't open|no such file))"
    r"|((not found|unable to open|cannot open|can't open).*\$readmem)",
    re.IGNORECASE,
)


class SimulationError(UserError):
    """The simulation could not run to an answer (build failure, crash, missing memory file)."""


@dataclass(frozen=True)
class WordMismatch:
    phase: int   # 1 = timing run (no pauses), 2 = random back-pressure run
    image: int
    beat: int    # output beat within the frame == class index
    got: int
    expected: int


class MeasuredCycles:
    """Measured against predicted cycles, shared by the cocotb and the bulk results."""

    latency: int | None
    initiation_interval: int | None
    expected_latency: int
    expected_initiation_interval: int
    cycles: int
    wall_time_s: float

    @property
    def cycles_ok(self) -> bool:
        """Equal, not close: the manifest's cycle model is exact."""
        return (self.latency, self.initiation_interval) == (self.expected_latency, self.expected_initiation_interval)

    @property
    def cycles_per_second(self) -> float:
        return self.cycles / self.wall_time_s if self.wall_time_s > 0 else 0.0


@dataclass(frozen=True)
class SimResult(MeasuredCycles):
    simulator: str
    outputs: np.ndarray              # (N, classes) words of the back-pressure run; -1 = never arrived
    mismatch_count: int              # over both phases
    mismatches: tuple[WordMismatch, ...]  # the first 200
    tlast_errors: tuple[tuple[int, int, int, int], ...]  # (phase, image, beat, tlast seen)
    extra_beats: int                 # beats emitted beyond the frames sent
    latency: int | None              # measured; None if phase 1 did not finish
    initiation_interval: int | None
    ii_samples: tuple[int, ...]      # cycles between first output beats of consecutive frames
    expected_latency: int            # manifest.json
    expected_initiation_interval: int
    cycles: int                      # clock cycles simulated after reset
    in_stall_cycles: int             # cycles the design held s_axis_tready low against tvalid
    out_stall_cycles: int            # cycles the sink held m_axis_tready low against tvalid
    wall_time_s: float               # the simulation run, without the build
    build_time_s: float              # 0.0 when the cached simulator was reused
    log_path: Path
    error: str | None                # testbench error (stall, timeout), None if it ran through

    @property
    def bit_exact(self) -> bool:
        clean = self.mismatch_count == 0 and not self.tlast_errors and not self.extra_beats
        return self.error is None and clean

    @property
    def passed(self) -> bool:
        return self.bit_exact and self.cycles_ok


@contextlib.contextmanager
def _environ(updates: dict[str, str]) -> Iterator[None]:
    """cocotb's runner copies ``os.environ``; patch it for the call and restore it after."""
    saved = {k: os.environ.get(k) for k in updates}
    os.environ.update(updates)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def hash_files(paths: Sequence[Path], *extra: str) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    for e in extra:
        h.update(e.encode() + b"\0")
    return h.hexdigest()[:16]


def stage_memories(manifest: Manifest, run_dir: Path) -> None:
    """Copy the ``.mem`` files into ``run_dir`` at their manifest paths (the simulator's cwd); the caller
    has checked them against the manifest's digests (``Manifest.check_files``)."""
    for src in manifest.memories:
        dst = run_dir / src.relative_to(manifest.build_dir)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)


def check_memories_loaded(log: Path) -> None:
    for line in log.read_text(errors="replace").splitlines():
        if _READMEM_MISSING.search(line):
            raise SimulationError(f"a memory file was not loaded (the ROM would read zeros): {line.strip()}")


def _build(manifest: Manifest, simulator: Simulator, sim_dir: Path, extra_args: Sequence[str]) -> float:
    """Compile the simulator unless the cached one matches; return the seconds spent."""
    from cocotb_tools.runner import get_runner

    args = list(VERILATOR_ARGS if simulator == "verilator" else ()) + list(extra_args)
    key = hash_files(list(manifest.sources), simulator, manifest.top, *args)
    stamp = sim_dir / "build.stamp"
    product = sim_dir / (manifest.top if simulator == "verilator" else "sim.vvp")
    if stamp.is_file() and stamp.read_text() == key and product.is_file():
        return 0.0
    stamp.unlink(missing_ok=True)
    log = sim_dir / "build.log"
    env: dict[str, str] = {}
    if simulator == "verilator":
        keep = ("VERILATOR_ROOT", "PATH", "MAKEFLAGS")
        env = {k: v for k, v in find_verilator().env().items() if k in keep}
    elif find_iverilog() is None:
        raise SimulationError("iverilog not found: `apt-get install iverilog`")
    t0 = time.perf_counter()
    with _environ(env):
        runner = get_runner(simulator)
        try:
            runner.build(
                sources=list(manifest.sources),
                hdl_toplevel=manifest.top,
                build_dir=sim_dir,
                build_args=args,
                timescale=("1ns", "1ps"),  # Icarus needs one (pitfall 9); harmless for Verilator
                always=True,
                log_file=log,
            )
        except (RuntimeError, SystemExit) as e:
            msg = f"{simulator} build of {manifest.top} failed ({e}); log {log}:\n{_tail(log)}"
            raise SimulationError(msg) from None
    stamp.write_text(key)
    return time.perf_counter() - t0


def run_cocotb(
    build_dir: str | Path,
    images: np.ndarray,
    expected: np.ndarray,
    *,
    simulator: Simulator = "verilator",
    seed: int = 1,
    timing_frames: int = 8,
    stall_in: float = 0.3,
    stall_out: float = 0.3,
    build_args: Sequence[str] = (),
) -> SimResult:
    """Simulate ``images`` (N, H, W, C) uint8 on the build and compare with ``expected`` (N, classes).

    Returns a :class:`SimResult` whether or not the design is correct; raises
    :class:`SimulationError` only when no answer could be had (build failure, crash,
    missing memory file).
    """
    from cocotb_tools.runner import get_runner

    manifest = load_manifest(build_dir)
    manifest.check_files()
    images = np.asarray(images)
    pack_frames(manifest, images)  # validates shape and dtype before anything is built
    expected = check_expected(manifest, images, expected)
    if len(images) == 0:
        raise ValueError("no images to simulate")

    sim_dir = manifest.build_dir / "sim_build" / simulator
    run_dir = sim_dir / "run"
    sim_dir.mkdir(parents=True, exist_ok=True)
    build_time = _build(manifest, simulator, sim_dir, build_args)

    # A fresh run folder: a stale .mem or result.json from an earlier run must not be read.
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir()
    stage_memories(manifest, run_dir)
    np.savez(run_dir / "stimulus.npz", images=images, expected=expected)
    config = {
        "build_dir": str(manifest.build_dir),
        "stimulus": str(run_dir / "stimulus.npz"),
        "result": str(run_dir / "result.json"),
        "outputs": str(run_dir / "outputs.npy"),
        "seed": seed,
        "timing_frames": timing_frames,
        "stall_in": stall_in,
        "stall_out": stall_out,
    }
    config_path = run_dir / "tb_config.json"
    config_path.write_text(json.dumps(config, indent=1))

    log = sim_dir / "sim.log"
    runner = get_runner(simulator)
    t0 = time.perf_counter()
    try:
        runner.test(
            test_module=TB_MODULE,
            hdl_toplevel=manifest.top,
            hdl_toplevel_lang="verilog",
            build_dir=sim_dir,
            test_dir=run_dir,
            extra_env={"BNN2FPGA_TB_CONFIG": str(config_path)},
            results_xml=str(sim_dir / "results.xml"),
            timescale=("1ns", "1ps"),
            seed=seed,
            log_file=log,
        )
    except (SystemExit, RuntimeError):
        # The runner exits when the cocotb test fails (under pytest); result.json says why.
        pass
    wall = time.perf_counter() - t0
    check_memories_loaded(log)
    result_path = run_dir / "result.json"
    if not result_path.is_file():
        raise SimulationError(f"{simulator} simulation produced no result; log {log}:\n{_tail(log)}")
    res: dict[str, Any] = json.loads(result_path.read_text())
    outputs = np.load(run_dir / "outputs.npy")
    return SimResult(
        simulator=simulator,
        outputs=outputs,
        mismatch_count=int(res["mismatch_count"]),
        mismatches=tuple(WordMismatch(**x) for x in res["mismatches"]),
        tlast_errors=tuple(tuple(t) for t in res["tlast_errors"]),  # type: ignore[misc]
        extra_beats=int(res["extra_beats"]),
        latency=res.get("latency"),
        initiation_interval=res.get("initiation_interval"),
        ii_samples=tuple(res.get("ii_samples", ())),
        expected_latency=manifest.latency,
        expected_initiation_interval=manifest.initiation_interval,
        cycles=int(res.get("cycles", 0)),
        in_stall_cycles=int(res.get("in_stall_cycles", 0)),
        out_stall_cycles=int(res.get("out_stall_cycles", 0)),
        wall_time_s=wall,
        build_time_s=build_time,
        log_path=log,
        error=res.get("error"),
    )
