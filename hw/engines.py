"""The engine table: for every engine spec, its component, cycle model, resources and frame cost.

Each engine lives in its own module with its spec, Amaranth component, cycle model
and resource model (``mvtu.py``, ``window.py``, ``pool.py``, ``stream.py``); this
module only dispatches on the spec's type, so the accelerator, the timing and the
resource totals treat every engine alike and a new engine is one more row here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amaranth.lib import wiring

from .cycles import CycleModel
from .mvtu import MVTU, MVTUModel, estimate_mvtu, mvtu_period
from .pool import MaxPool, PoolModel, PoolSpec, estimate_pool
from .spec import DenseLayerSpec, bits_for
from .stream import Deserializer, DeserializerModel, FlattenSpec
from .window import SlidingWindow, WindowModel, WindowSpec, estimate_window

__all__ = ["EngineOptions", "Engine", "component", "cycle_model", "describe", "estimate", "frame_cycles", "kind",
           "submodule_name"]

Engine = DenseLayerSpec | WindowSpec | PoolSpec | FlattenSpec


@dataclass(frozen=True)
class EngineOptions:
    """What the accelerator passes to every engine it instantiates."""

    levels_per_stage: int = 2
    rom: str = "memory"
    rom_module: str = "bnn2fpga_rom"
    accel_name: str = "bnn2fpga"


def kind(spec: Engine) -> str:
    """Short name in reports and manifests."""
    if isinstance(spec, DenseLayerSpec):
        return "output" if spec.is_output else "conv" if spec.is_conv else "dense"
    if isinstance(spec, WindowSpec):
        return "window"
    if isinstance(spec, PoolSpec):
        return "pool"
    if isinstance(spec, FlattenSpec):
        return "flatten"
    raise TypeError(f"not an engine spec: {spec!r}")


def submodule_name(spec: Engine) -> str:
    prefix = {"output": "mvtu", "conv": "mvtu", "dense": "mvtu", "window": "swu", "pool": "pool",
              "flatten": "flatten"}[kind(spec)]
    return f"{prefix}_{spec.name}"


def component(spec: Engine, options: EngineOptions) -> wiring.Component:
    if isinstance(spec, DenseLayerSpec):
        return MVTU(spec, rom=options.rom, levels_per_stage=options.levels_per_stage,
                    rom_module=options.rom_module, accel_name=options.accel_name)
    if isinstance(spec, WindowSpec):
        return SlidingWindow(spec)
    if isinstance(spec, PoolSpec):
        return MaxPool(spec)
    if isinstance(spec, FlattenSpec):
        return Deserializer(spec.width, spec.beats)
    raise TypeError(f"not an engine spec: {spec!r}")


def cycle_model(spec: Engine, levels_per_stage: int) -> CycleModel:
    if isinstance(spec, DenseLayerSpec):
        return MVTUModel(spec, levels_per_stage)
    if isinstance(spec, WindowSpec):
        return WindowModel(spec)
    if isinstance(spec, PoolSpec):
        return PoolModel(spec)
    if isinstance(spec, FlattenSpec):
        return DeserializerModel(spec.beats)
    raise TypeError(f"not an engine spec: {spec!r}")


def frame_cycles(spec: Engine, levels_per_stage: int) -> int:
    """Cycles per frame the engine needs at the least: no chain runs faster than its largest."""
    if isinstance(spec, DenseLayerSpec):
        return spec.vectors * mvtu_period(spec, levels_per_stage)
    if isinstance(spec, WindowSpec):
        return spec.steps
    if isinstance(spec, PoolSpec | FlattenSpec):
        return spec.sink_beats
    raise TypeError(f"not an engine spec: {spec!r}")


def estimate(spec: Engine, levels_per_stage: int) -> dict[str, Any]:
    """LUT / FF / BRAM18 / BRAM36 of one engine, plus what its memories became."""
    if isinstance(spec, DenseLayerSpec):
        return estimate_mvtu(spec, levels_per_stage)
    if isinstance(spec, WindowSpec):
        return estimate_window(spec)
    if isinstance(spec, PoolSpec):
        return estimate_pool(spec)
    if isinstance(spec, FlattenSpec):
        bits = spec.width * spec.beats
        return {"lut": 12, "ff": bits + bits_for(spec.beats), "bram18": 0, "bram36": 0.0}
    raise TypeError(f"not an engine spec: {spec!r}")


def describe(spec: Engine) -> dict[str, Any]:
    """The engine's shape and folding for manifest.json and the report (``kind`` and ``name`` first)."""
    row: dict[str, Any] = {"name": spec.name, "kind": kind(spec)}
    if isinstance(spec, DenseLayerSpec):
        row.update(mh=spec.mh, mw=spec.mw, pe=spec.pe, simd=spec.simd)
        if spec.is_conv:
            row.update(vectors=spec.vectors, out_slots=spec.out_slots)
    elif isinstance(spec, WindowSpec):
        row.update(shape=[spec.height, spec.width, spec.channels], kernel=spec.kernel, padding=spec.padding,
                   pad_bit=spec.pad_bit, line_buffer=estimate_window(spec)["line_buffer"])
    elif isinstance(spec, PoolSpec):
        row.update(shape=[spec.height, spec.width, spec.channels], size=spec.size)
    elif isinstance(spec, FlattenSpec):
        row.update(pixels=spec.beats, width=spec.width)
    return row
