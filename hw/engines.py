"""The engine table: for every engine spec, its component, cycle model, resources and frame cost.

Each engine lives in its own module with its spec, Amaranth component, cycle model
and resource model (``mvtu.py``, ``window.py``, ``pool.py``, ``stream.py``); this
module only dispatches on the spec's type, so the accelerator, the timing and the
resource totals treat every engine alike and a new engine is one more row here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from amaranth.lib import wiring

from .branch import Branch, BranchModel, BranchSpec, estimate_branch
from .cycles import CycleModel
from .mvtu import MVTU, MVTUModel, estimate_mvtu, mvtu_period
from .pool import MaxPool, PoolModel, PoolSpec, estimate_pool
from .spec import DenseLayerSpec, bits_for
from .stream import Deserializer, DeserializerModel, FifoModel, FifoSpec, FlattenSpec, PixelFifo
from .window import SlidingWindow, WindowModel, WindowSpec, estimate_window, lutram_luts

__all__ = ["EngineOptions", "Engine", "component", "cycle_model", "describe", "estimate", "frame_cycles", "kind",
           "submodule_name"]

Engine = DenseLayerSpec | WindowSpec | PoolSpec | FlattenSpec | FifoSpec | BranchSpec


@dataclass(frozen=True)
class EngineOptions:
    """What the accelerator passes to every engine it instantiates."""

    levels_per_stage: int = 2
    rom: str = "memory"
    rom_module: str = "bnn2fpga_rom"
    accel_name: str = "bnn2fpga"


@dataclass(frozen=True)
class _Row:
    """One engine kind: its component, cycle model, frame cost, resources and description."""

    prefix: str  # submodule name prefix
    component: Callable[[Any, EngineOptions], wiring.Component]
    model: Callable[[Any, int], CycleModel]
    frame_cycles: Callable[[Any, int], int]
    estimate: Callable[[Any, int], dict[str, Any]]
    describe: Callable[[Any], dict[str, Any]]


def _mvtu_kind(spec: DenseLayerSpec) -> str:
    return "output" if spec.is_output else "conv" if spec.is_conv else "dense"


def _describe_mvtu(spec: DenseLayerSpec) -> dict[str, Any]:
    row: dict[str, Any] = {"mh": spec.mh, "mw": spec.mw, "pe": spec.pe, "simd": spec.simd}
    if spec.planes is not None:
        row["planes"] = list(spec.planes)
    if spec.is_conv:
        row.update(vectors=spec.vectors, out_slots=spec.out_slots)
    return row


def _flatten_estimate(spec: FlattenSpec, levels_per_stage: int) -> dict[str, Any]:
    bits = spec.width * spec.beats
    return {"lut": 12, "ff": bits + bits_for(spec.beats), "bram18": 0, "bram36": 0.0}


def _fifo_estimate(spec: FifoSpec, levels_per_stage: int) -> dict[str, Any]:
    # The head in an output register loaded from the LUT RAM or the input (a 2:1 mux per bit).
    counters = 4 * bits_for(spec.depth)
    return {"lut": lutram_luts(spec.depth - 1, spec.width) + spec.width + counters + 4,
            "ff": counters + spec.width + 3, "bram18": 0, "bram36": 0.0, "line_buffer": "distributed"}


_TABLE: dict[type, _Row] = {
    DenseLayerSpec: _Row(
        "mvtu",
        lambda spec, o: MVTU(spec, rom=o.rom, levels_per_stage=o.levels_per_stage, rom_module=o.rom_module,
                             accel_name=o.accel_name),
        MVTUModel,
        lambda spec, lps: spec.vectors * mvtu_period(spec, lps),
        estimate_mvtu,
        _describe_mvtu),
    WindowSpec: _Row(
        "swu",
        lambda spec, o: SlidingWindow(spec),
        lambda spec, lps: WindowModel(spec),
        lambda spec, lps: spec.steps,
        lambda spec, lps: estimate_window(spec),
        lambda spec: {"shape": [spec.height, spec.width, spec.channels], "kernel": spec.kernel,
                      "padding": spec.padding, "pad_bit": spec.pad_bit,
                      "line_buffer": estimate_window(spec)["line_buffer"]}),
    PoolSpec: _Row(
        "pool",
        lambda spec, o: MaxPool(spec),
        lambda spec, lps: PoolModel(spec),
        lambda spec, lps: spec.sink_beats,
        lambda spec, lps: estimate_pool(spec),
        lambda spec: {"shape": [spec.height, spec.width, spec.channels], "size": spec.size}),
    FlattenSpec: _Row(
        "flatten",
        lambda spec, o: Deserializer(spec.width, spec.beats),
        lambda spec, lps: DeserializerModel(spec.beats),
        lambda spec, lps: spec.beats,
        _flatten_estimate,
        lambda spec: {"pixels": spec.beats, "width": spec.width}),
    FifoSpec: _Row(
        "fifo",
        lambda spec, o: PixelFifo(spec),
        lambda spec, lps: FifoModel(spec.depth),
        lambda spec, lps: spec.beats,
        _fifo_estimate,
        lambda spec: {"depth": spec.depth, "width": spec.width}),
    # A branch's paths are engines of this table, so its row recurses into it.
    BranchSpec: _Row(
        "branch",
        lambda spec, o: Branch(spec, [[(submodule_name(e), component(e, o)) for e in path] for path in spec.paths]),
        lambda spec, lps: BranchModel([[cycle_model(e, lps) for e in path] for path in spec.paths]),
        lambda spec, lps: max(frame_cycles(e, lps) for path in spec.paths for e in path),
        lambda spec, lps: estimate_branch(spec, [[estimate(e, lps) for e in path] for path in spec.paths]),
        lambda spec: {"pixels": spec.beats, "width": spec.width,
                      "paths": [[describe(e) for e in path] for path in spec.paths]}),
}
_KINDS = {WindowSpec: "window", PoolSpec: "pool", FlattenSpec: "flatten", FifoSpec: "fifo", BranchSpec: "branch"}


def _row(spec: Engine) -> _Row:
    try:
        return _TABLE[type(spec)]
    except KeyError:
        raise TypeError(f"not an engine spec: {spec!r}") from None


def kind(spec: Engine) -> str:
    """Short name in reports and manifests: output, dense, conv, window, pool, flatten."""
    _row(spec)
    return _mvtu_kind(spec) if isinstance(spec, DenseLayerSpec) else _KINDS[type(spec)]


def submodule_name(spec: Engine) -> str:
    return f"{_row(spec).prefix}_{spec.name}"


def component(spec: Engine, options: EngineOptions) -> wiring.Component:
    return _row(spec).component(spec, options)


def cycle_model(spec: Engine, levels_per_stage: int) -> CycleModel:
    return _row(spec).model(spec, levels_per_stage)


def frame_cycles(spec: Engine, levels_per_stage: int) -> int:
    """Cycles per frame the engine needs at the least: no chain runs faster than its largest."""
    return _row(spec).frame_cycles(spec, levels_per_stage)


def estimate(spec: Engine, levels_per_stage: int) -> dict[str, Any]:
    """LUT / FF / BRAM18 / BRAM36 of one engine, plus what its memories became."""
    return _row(spec).estimate(spec, levels_per_stage)


def describe(spec: Engine) -> dict[str, Any]:
    """The engine's shape and folding for manifest.json and the report (``name`` and ``kind`` first)."""
    return {"name": spec.name, "kind": kind(spec), **_row(spec).describe(spec)}
