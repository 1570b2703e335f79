"""What a build carries from step to step, the options it was asked for, and what every backend shares:
the manifest's common sections, the bundle's writer and the :class:`Backend` interface."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import checkpoint as ckpt_mod
from ..boards import Board
from ..contract.manifest import FORMAT, CheckpointRecord, ClockRecord
from ..errors import UserError
from ..hw import timing as hwtiming
from ..hw.branch import BranchSpec
from ..hw.engines import describe, frame_cycles
from ..hw.generate import manifest_entries
from ..hw.spec import AcceleratorSpec
from ..ir.graph import Graph
from . import report as report_mod
from .folding import FitReport, Folding

__all__ = ["BuildError", "BuildOptions", "BuildState", "Overflow", "Sections", "Step", "Backend", "merge_sections",
           "DMA_MAX_BYTES", "DMA_LENGTH_WIDTH", "host_beat_bytes", "manifest_base", "write_bundle"]


class BuildError(UserError):
    """The build was refused; the message says why and what to change."""


@dataclass(frozen=True)
class BuildOptions:
    board: str = "pynq-z2"
    out: Path | None = None
    folding: Path | None = None
    target_fps: float | str | None = None  # None: what the board's host link can feed; "max": fastest that fits
    margin: float = 0.85
    synth: bool = True
    exact_roms: bool = False  # Yosys maps each block ROM with its own contents (slower; counts within a few LUTs)
    force: bool = False
    popcount_levels_per_stage: int | None = None  # None: chosen from the clock and family (folding.pipeline_levels)
    ecp5_proxy: bool = False  # Xilinx boards: place the core on an ECP5-85F for a measured proxy clock
    backend: str = "rtl"  # "rtl": Verilog (Amaranth) + Yosys; "hls": Vitis HLS C++ (backend/hls.py)


@dataclass
class BuildState:
    checkpoint_path: Path
    options: BuildOptions
    board: Board
    out: Path
    staging: Path
    checkpoint: ckpt_mod.Checkpoint | None = None
    graph: Graph | None = None
    fit: FitReport | None = None
    rate: dict[str, Any] = field(default_factory=dict)  # which bound sets the frame rate, and why
    spec: AcceleratorSpec | None = None
    timing: hwtiming.Timing | None = None
    estimate: dict[str, Any] = field(default_factory=dict)
    bundle: dict[str, str | bytes] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)
    synth: dict[str, Any] | None = None
    synth_seconds: float | None = None  # Yosys's own time (kept out of the manifest: builds are deterministic)
    synth_cached: bool = False
    report: str = ""
    progress: Callable[[str], None] | None = None  # what a long step is doing, for the progress bar
    # Open-toolchain boards: each folding the placer could not fit, and the interval (cycles per
    # frame) within which the next folding is the cheapest, to use fewer logic cells (see Refold).
    refolds: list[Overflow] = field(default_factory=list)
    interval_limit: int | None = None


@dataclass(frozen=True)
class Overflow:
    """A folding nextpnr could not place: its interval and the fullest logic resource's used / available."""

    folding: Folding
    interval: int
    overfill: float

    @property
    def text(self) -> str:
        return ", ".join(f"{name} {pe}x{simd}" for name, pe, simd in self.folding.layers)

    def to_json(self) -> dict[str, Any]:
        return {"folding": self.folding.to_json(), "interval": self.interval, "overfill": self.overfill}


#: What a step adds to the manifest: top-level sections, merged key by key into sections already there
#: (``{"resources": {"yosys": {...}}}`` keeps ``resources.estimate``). Only the build's step runner
#: merges them (:func:`merge_sections`); the manifest is written once, after the last step.
Sections = dict[str, Any]
Step = tuple[str, Callable[[BuildState], Sections | None]]


def merge_sections(manifest: dict[str, Any], sections: Sections) -> None:
    """Merge a step's sections into the manifest: objects key by key, anything else replaced."""
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(manifest.get(key), dict):
            merge_sections(manifest[key], value)
        else:
            manifest[key] = value


@dataclass(frozen=True)
class Backend:
    """One way of turning a folded accelerator into files: Verilog (``rtl``) or Vitis HLS C++ (``hls``).

    A build runs ``checks``, the shared front (load, lower, check memory, fold), the backend's
    ``steps`` (each may return manifest :data:`Sections`), then writes the manifest once, its ``report``
    and installs the folder. ``searchable`` narrows the
    folding search to the foldings the backend can express (None: all)."""

    name: str
    description: str
    checks: tuple[Step, ...]
    steps: tuple[Step, ...]
    report: Callable[[BuildState], None]
    searchable: Callable[[AcceleratorSpec], bool] | None = None


DMA_MAX_BYTES = 128  # AXI DMA streams 8..1024 bits, in powers of two (PG021)
# Width of the AXI DMA's buffer length register (c_sg_length_width, 8..26, PG021): one simple-mode
# transfer moves at most 2**26 - 1 bytes, so the driver splits larger batches.
DMA_LENGTH_WIDTH = 26


def host_beat_bytes(tdata_bits: int) -> int:
    """Bytes per beat of the host's stream into the accelerator: the accelerator's beat rounded up to
    a power of two, the widths an AXI DMA offers; the top bytes are padding the board design drops
    (an AXI4-Stream subset converter in vivado.tcl) and the driver writes as zeros."""
    return 1 << max(0, (-(-tdata_bits // 8) - 1).bit_length())


def manifest_base(s: BuildState) -> dict[str, Any]:
    """The manifest's sections every backend writes; later steps add theirs to ``BuildState.manifest``,
    and the build writes it once, when every step has run (:func:`bnn2fpga.contract.manifest.write_manifest`)."""
    assert s.graph is not None and s.spec is not None and s.timing is not None and s.fit is not None
    entries = manifest_entries(s.spec)
    inp = s.graph.input
    out = s.graph.output
    assert out.logit_table is not None
    digest = hashlib.sha256(s.checkpoint_path.read_bytes()).hexdigest()
    lps = s.spec.popcount_levels_per_stage
    layers = [_timed_paths({**describe(layer), "cycles": cycles, "period": period}, layer, lps)
              for layer, cycles, period in zip(s.spec.layers, s.timing.per_layer_cycles, s.timing.per_layer_period,
                                               strict=True)]
    clock = s.board.clock_mhz
    return {
        "format": FORMAT,
        "top": entries["top"],
        "board": s.board.name,
        "part": s.board.part,
        "clock_mhz": clock,
        "clock": ClockRecord(clock, "assumed",
                             "the board's fabric clock; Vivado's timing analysis checks it (vivado.tcl refuses a "
                             "bitstream with negative slack). Yosys's logic depth and `--ecp5-proxy` are the "
                             "evidence before Vivado runs (docs/timing.md)").to_json(),
        "checkpoint": CheckpointRecord("checkpoint.pt", s.checkpoint_path.name, digest).to_json(),
        "input": {"tdata_bits": s.spec.tdata_bits, "pixels_per_beat": s.spec.pixels_per_beat,
                  "host_beat_bytes": host_beat_bytes(s.spec.tdata_bits),
                  "beats_per_frame": s.spec.input_beats, "samples_per_frame": s.spec.samples_per_frame,
                  "shape": [inp.height, inp.width, inp.channels], "order": "HWC", "pixel_bits": 8,
                  "planes": list(inp.planes),
                  **({} if inp.table is None else {"table": [list(row) for row in inp.table]})},
        "output": {"tdata_bits": 32, "beats_per_frame": out.mh, "signed": False,
                   "meaning": "popcount of class k; score = logit_table[k][popcount]; prediction = argmax, "
                              "lowest index on ties",
                   "logit_table": [[float(v) for v in row] for row in out.logit_table]},
        "cycles": {"initiation_interval": s.timing.initiation_interval, "latency": s.timing.latency,
                   "fps": clock * 1e6 / s.timing.initiation_interval,
                   "bottleneck": report_mod.bottleneck(s.spec, s.timing)},
        "rate": s.rate,
        "layers": layers,
        "folding": s.fit.folding.to_json(),
        "resources": {"estimate": s.estimate["total"]},
        "sources": entries["sources"],
        "memories": entries["memories"],
    }


def _timed_paths(row: dict[str, Any], layer: object, lps: int) -> dict[str, Any]:
    """A branch's manifest row with every engine on its paths given its cycles and period too."""
    if isinstance(layer, BranchSpec):
        row["paths"] = [[_timed_paths({**inner, "cycles": hwtiming.engine_cycles(engine, lps),
                                       "period": frame_cycles(engine, lps)}, engine, lps)
                         for inner, engine in zip(rows, path, strict=True)]
                        for rows, path in zip(row["paths"], layer.paths, strict=True)]
    return row


def write_bundle(s: BuildState) -> None:
    """A fresh staging folder with the generated files and the checkpoint (`bnn2fpga sim` recomputes
    the expected outputs from the build's own copy)."""
    if s.staging.exists():
        shutil.rmtree(s.staging)
    s.staging.mkdir(parents=True)
    for name, content in s.bundle.items():
        path = s.staging / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    shutil.copyfile(s.checkpoint_path, s.staging / "checkpoint.pt")


