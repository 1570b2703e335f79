"""Bulk co-simulation through the Verilator C++ harness (``harness.cpp``): the fast path.

cocotb drives every cycle from Python (~20-40 k cycles/s); the harness runs the same
protocol in C++ (hundreds of k cycles/s), fast enough for the whole 10k test set.
The compiled harness is cached in ``<build>/sim_build/harness-<hash>/``, keyed by the
Verilog sources, the harness source and the Verilator options; memories are read at
run time from a staged copy, so changing only a ``.mem`` file needs no rebuild.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from bnn2fpga.tools import find_verilator

from ..contract.manifest import Manifest, load_manifest, pack_frames
from .runner import MeasuredCycles, SimulationError, check_memories_loaded, hash_files, stage_memories

VERILATOR_ARGS: tuple[str, ...] = (
    "-O3",
    "--x-assign", "fast",
    "--x-initial", "fast",
    "-Wno-WIDTH",  # Amaranth's Verilog is not WIDTH-clean (docs/architecture.md, toolchain notes)
)


@dataclass(frozen=True)
class BulkResult(MeasuredCycles):
    outputs: np.ndarray               # (N, classes) int64 popcounts, -1 where nothing arrived
    lasts: np.ndarray                 # (N, classes) bool: m_axis_tlast of each output word
    latency: int | None               # measured; None when run with stalls
    initiation_interval: int | None   # last inter-frame distance (the steady state); None with stalls
    ii_tail: tuple[int, ...]          # the last few inter-frame distances
    expected_latency: int
    expected_initiation_interval: int
    cycles: int                       # simulated after reset, drain included
    tlast_errors: int
    extra_beats: int
    stalled: bool                     # the design stopped making progress
    wall_time_s: float                # harness run only
    build_time_s: float               # 0.0 when the cached binary was reused
    log_path: Path

    @property
    def protocol_ok(self) -> bool:
        return not self.stalled and self.tlast_errors == 0 and self.extra_beats == 0

    def mismatches(self, expected: np.ndarray) -> np.ndarray:
        """Indices (image, class) of the words that differ from ``expected``."""
        return np.argwhere(self.outputs != np.asarray(expected))


def _harness_source() -> Path:
    return Path(str(resources.files("bnn2fpga.sim") / "harness.cpp"))


def build_harness(manifest: Manifest, jobs: int = 2) -> tuple[Path, float]:
    """Compile (or reuse) the harness for this build; return the binary and seconds spent."""
    source = _harness_source()
    key = hash_files([*manifest.sources, source], manifest.top, *VERILATOR_ARGS)
    obj_dir = manifest.build_dir / "sim_build" / f"harness-{key}"
    binary = obj_dir / "harness"
    if binary.is_file():
        return binary, 0.0
    seconds = compile_harness(source, manifest.sources, manifest.top, obj_dir, "harness",
                              args=VERILATOR_ARGS, cflags="-O2", jobs=jobs, what="Verilator harness build")
    return binary, seconds


def compile_harness(source: Path, sources: list[Path] | tuple[Path, ...], top: str, obj_dir: Path, exe: str, *,
                    args: tuple[str, ...], cflags: str, jobs: int, what: str) -> float:
    """Verilate ``sources`` with the C++ harness ``source`` into ``obj_dir/exe``; the seconds it took.

    It builds in a folder of its own and renames it into place only at the end, so a killed build
    never leaves a half-built cache entry behind."""
    verilator = find_verilator()
    tmp_dir = obj_dir.with_name(f"{obj_dir.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)
    cmd = [str(verilator.binary), "--cc", "--exe", "--build", "-j", str(jobs), *args,
           "--top-module", top, "--prefix", "Vtop", "-Mdir", str(tmp_dir), "-o", exe,
           "-CFLAGS", cflags, str(source), *map(str, sources)]
    log = tmp_dir / "build.log"
    t0 = time.perf_counter()
    with log.open("w") as fh:
        # env(): VERILATOR_ROOT, PATH and the MAKEFLAGS PCH fix (docs/architecture.md, toolchain notes).
        done = subprocess.run(cmd, env=verilator.env(), stdout=fh, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise SimulationError(f"{what} failed (exit {done.returncode}); log {log}:\n{tail}")
    shutil.rmtree(obj_dir, ignore_errors=True)
    tmp_dir.rename(obj_dir)
    return time.perf_counter() - t0


def run(
    build_dir: str | Path,
    images: np.ndarray,
    *,
    stall_in: float = 0.0,
    stall_out: float = 0.0,
    seed: int = 1,
) -> BulkResult:
    """Run ``images`` (N, H, W, C) uint8 through the design back to back; return outputs and timing.

    With ``stall_in``/``stall_out`` > 0 the harness pauses tvalid/tready at random
    (protocol check); latency and II are only the contract's numbers without stalls.
    """
    return run_frames(build_dir, pack_frames(load_manifest(build_dir), images), stall_in=stall_in,
                      stall_out=stall_out, seed=seed)


def run_frames(
    build_dir: str | Path,
    frames: np.ndarray,
    *,
    stall_in: float = 0.0,
    stall_out: float = 0.0,
    seed: int = 1,
    frames_per_packet: int = 1,
) -> BulkResult:
    """Run input streams as they go over the wire: ``frames`` (N, beats * pixels per beat) uint8,
    byte ``k`` of a frame on lane ``k % PPB`` of beat ``k // PPB`` (what a host's DMA sends), in
    packets of ``frames_per_packet`` frames (``tlast`` on each packet's last beat; the last packet
    may be shorter). ``protocol_ok`` includes the output's ``tlast`` on each packet's last word."""
    manifest = load_manifest(build_dir)
    manifest.check_files()
    if manifest.out_bits > 32:
        raise SimulationError(f"the harness reads 32-bit outputs; output.tdata_bits is {manifest.out_bits}")
    frames = np.asarray(frames)
    width = manifest.in_beats * manifest.pixels_per_beat
    if frames.dtype != np.uint8 or frames.ndim != 2 or frames.shape[1] != width:
        raise ValueError(f"frames must be uint8 (N, {width}): {manifest.in_beats} beats of "
                         f"{manifest.pixels_per_beat} bytes, not {frames.dtype} {frames.shape}")
    if len(frames) == 0:
        raise ValueError("no images to simulate")
    if isinstance(frames_per_packet, bool) or not isinstance(frames_per_packet, int) or frames_per_packet < 1:
        raise ValueError(f"frames_per_packet must be a positive integer, not {frames_per_packet!r}")
    binary, build_time = build_harness(manifest)

    run_dir = manifest.build_dir / "sim_build" / "bulk_run"
    shutil.rmtree(run_dir, ignore_errors=True)  # no stale .mem from an earlier run
    run_dir.mkdir(parents=True)
    stage_memories(manifest, run_dir)
    frames_path, out_path, log = run_dir / "frames.bin", run_dir / "outputs.bin", run_dir / "harness.log"
    lasts_path = run_dir / "lasts.bin"
    frames.tofile(frames_path)
    m = manifest
    idle_limit = 4 * (m.latency + m.initiation_interval + m.in_beats + m.out_beats) + 1000
    cmd = [
        str(binary), "--frames", str(frames_path), "--out", str(out_path),
        "--in-bytes", str(m.in_bytes), "--in-beats", str(m.in_beats), "--out-beats", str(m.out_beats),
        "--frames-per-packet", str(frames_per_packet), "--lasts", str(lasts_path),
        "--stall-in", repr(stall_in), "--stall-out", repr(stall_out), "--seed", str(seed),
        "--idle-limit", str(idle_limit),
    ]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=run_dir, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SimulationError(f"harness failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
    check_memories_loaded(log)
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    outputs = np.fromfile(out_path, dtype="<u4").astype(np.int64).reshape(len(frames), m.classes)
    outputs[summary["frames_out"]:] = -1  # frames that never came out
    lasts = np.fromfile(lasts_path, dtype=np.uint8).astype(bool).reshape(len(frames), m.classes)
    # Under random stalls the distances measure the stall pattern, not the design.
    timed = stall_in == 0 and stall_out == 0
    return BulkResult(
        outputs=outputs,
        lasts=lasts,
        latency=summary["latency"] if timed and summary["latency"] >= 0 else None,
        initiation_interval=(
            summary["initiation_interval"] if timed and summary["initiation_interval"] >= 0 else None
        ),
        ii_tail=tuple(summary["ii_tail"]),
        expected_latency=m.latency,
        expected_initiation_interval=m.initiation_interval,
        cycles=summary["cycles"],
        tlast_errors=summary["tlast_errors"],
        extra_beats=summary["extra_beats"],
        stalled=summary["stalled"],
        wall_time_s=wall,
        build_time_s=build_time,
        log_path=log,
    )
