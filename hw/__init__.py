"""bnn2fpga RTL library: engines (Amaranth components with their cycle and resource models), the
Verilog bundle generator and the chain's timing.

Engines, one module each (spec, component, cycle model, resource model): ``mvtu`` (dense, conv and
integer-input layers; its spec ``DenseLayerSpec`` lives in ``spec``), ``window`` (sliding-window
unit), ``pool`` (binary max-pool), ``stream`` (flatten / deserializer and the output stage),
``slicer`` (input bit planes); ``engines`` is the table that dispatches on the spec type.

Entry points: ``AcceleratorSpec`` (spec), ``generate`` (file bundle), ``manifest_entries``
(sources/memories for manifest.json), ``predict`` (exact cycles), ``estimate`` (LUT/FF/BRAM).

The names are loaded on first use: importing this package (for a spec or the cycle model, say) does
not pull in Amaranth or every engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .generate import generate, manifest_entries
    from .pool import PoolSpec
    from .spec import AcceleratorSpec, DenseLayerSpec
    from .stream import FlattenSpec
    from .timing import Timing, estimate, predict
    from .window import WindowSpec

_HOME = {"generate": "generate", "manifest_entries": "generate", "PoolSpec": "pool",
         "AcceleratorSpec": "spec", "DenseLayerSpec": "spec", "FlattenSpec": "stream",
         "Timing": "timing", "estimate": "timing", "predict": "timing", "WindowSpec": "window"}

__all__ = ["AcceleratorSpec", "DenseLayerSpec", "FlattenSpec", "PoolSpec", "Timing", "WindowSpec", "estimate",
           "generate", "manifest_entries", "predict"]


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
