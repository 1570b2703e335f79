"""C simulation of an HLS build (``--backend hls``) with g++: the design and its testbench compiled
once per source hash, then frames streamed through it. With ``-O3 -march=native`` the same code is
a native inference engine (``benchmarks/reference_speed.py``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..backend.hls import CSIM_FLAGS, HEADER, NATIVE_FLAGS
from ..contract.manifest import load_manifest
from .runner import SimulationError, hash_files

__all__ = ["CsimError", "CsimResult", "CSIM_FLAGS", "NATIVE_FLAGS", "find_compiler", "compile_design", "run_frames"]


class CsimError(SimulationError):
    """The C++ did not compile or the testbench failed to run (the CLI's one `error:` line)."""


@dataclass(frozen=True)
class CsimResult:
    outputs: np.ndarray      # (N, classes) int64 popcounts
    frames: int
    seconds: float           # the testbench's own time around the design calls
    wall_time_s: float       # the whole run: process start, file reads and writes included
    build_time_s: float      # 0.0 when the cached binary was reused
    tlast_errors: int        # output beats whose tlast differed from "last class of a packet's last frame"
    missing_beats: int
    extra_beats: int
    leftover_input_beats: int
    binary: Path
    packets: int = 1         # input packets the testbench sent (sizes 1, 3, the rest; a cut frame ends one)

    @property
    def protocol_ok(self) -> bool:
        return not (self.tlast_errors or self.missing_beats or self.extra_beats or self.leftover_input_beats)


def find_compiler() -> str:
    path = shutil.which("g++")
    if path is None:
        raise CsimError("g++ not found: the C simulation of an HLS build needs a C++17 compiler; "
                        "sudo apt-get install g++")
    return path


def compile_design(build_dir: Path, top: str, flags: tuple[str, ...] = CSIM_FLAGS) -> tuple[Path, float]:
    """Compile design + testbench into ``sim_build/csim-<hash>/`` (reused while sources and flags are unchanged)."""
    sources = [build_dir / f"{top}.cpp", build_dir / f"{top}_tb.cpp"]
    headers = [build_dir / f"{top}.h", build_dir / HEADER]
    missing = [str(p) for p in (*sources, *headers) if not p.is_file()]
    if missing:
        raise CsimError(f"{build_dir}: HLS sources missing: {missing}; rebuild with bnn2fpga build --backend hls")
    compiler = find_compiler()
    key = hash_files([*sources, *headers], *flags)
    out_dir = build_dir / "sim_build" / f"csim-{key}"
    binary = out_dir / f"{top}_tb"
    if binary.is_file():
        return binary, 0.0
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cmd = [compiler, *flags, "-I", str(build_dir), *map(str, sources), "-o", str(tmp / binary.name)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    (tmp / "build.log").write_text(" ".join(cmd) + "\n" + done.stdout + done.stderr)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        raise CsimError(f"g++ failed on the HLS design (exit {done.returncode}); log {tmp / 'build.log'}:\n{tail}")
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return binary, time.perf_counter() - t0


def run_frames(build_dir: Path | str, frames: np.ndarray, *, top: str | None = None, classes: int | None = None,
               flags: tuple[str, ...] = CSIM_FLAGS, cuts: Mapping[int, int] | None = None) -> CsimResult:
    """Run input streams ``frames`` (N, beats * PPB) uint8 through the compiled design; ``top`` and
    ``classes`` default to the build folder's manifest. The testbench sends them as packets of 1, 3
    and the rest of the frames; ``cuts`` {frame: beats} sends only that frame's first beats, tlast
    on the last of them (the design pads the frame with zero pixels and ends the packet there)."""
    build_dir = Path(build_dir).resolve()
    if top is None or classes is None:
        manifest = load_manifest(build_dir)
        top, classes = manifest.top, manifest.classes
    assert top is not None and classes is not None
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    if frames.ndim != 2 or len(frames) == 0:
        raise ValueError(f"frames must be a non-empty (N, bytes) uint8 array, not {frames.shape}")
    binary, build_time = compile_design(build_dir, top, flags)
    run_dir = binary.parent / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir()
    frames_path, out_path = run_dir / "frames.bin", run_dir / "outputs.bin"
    frames.tofile(frames_path)
    t0 = time.perf_counter()
    cut_args = [arg for frame, beats in sorted((cuts or {}).items()) for arg in ("--cut", f"{frame}:{beats}")]
    done = subprocess.run([str(binary), "--frames", str(frames_path), "--out", str(out_path), *cut_args],
                          cwd=run_dir, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    (run_dir / "tb.log").write_text(done.stdout + done.stderr)
    lines = done.stdout.strip().splitlines()
    if done.returncode not in (0, 1) or not lines:
        raise CsimError(f"the HLS testbench failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
    summary = json.loads(lines[-1])
    outputs = np.fromfile(out_path, dtype="<u4").astype(np.int64).reshape(len(frames), classes)
    outputs[outputs == 0xFFFFFFFF] = -1  # beats that never came
    return CsimResult(outputs=outputs, frames=summary["frames"], seconds=summary["seconds"], wall_time_s=wall,
                      build_time_s=build_time, tlast_errors=summary["tlast_errors"],
                      missing_beats=summary["missing_beats"], extra_beats=summary["extra_beats"],
                      leftover_input_beats=summary["leftover_input_beats"], binary=binary,
                      packets=summary["packets"])
