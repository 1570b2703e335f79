"""bnn2fpga RTL library: engines (Amaranth components with their cycle and resource models), the
Verilog bundle generator and the chain's timing.

Engines, one module each (spec, component, cycle model, resource model): ``mvtu`` (dense, conv and
integer-input layers; its spec ``DenseLayerSpec`` lives in ``spec``), ``window`` (sliding-window
unit), ``pool`` (binary max-pool), ``stream`` (flatten / deserializer and the output stage),
``slicer`` (input bit planes); ``engines`` is the table that dispatches on the spec type.

Entry points: ``AcceleratorSpec`` (spec), ``generate`` (file bundle), ``manifest_entries``
(sources/memories for manifest.json), ``predict`` (exact cycles), ``estimate`` (LUT/FF/BRAM).
"""

from .generate import generate, manifest_entries
from .pool import PoolSpec
from .spec import AcceleratorSpec, DenseLayerSpec
from .stream import FlattenSpec
from .timing import Timing, estimate, predict
from .window import WindowSpec

__all__ = ["AcceleratorSpec", "DenseLayerSpec", "FlattenSpec", "PoolSpec", "Timing", "WindowSpec", "estimate",
           "generate", "manifest_entries", "predict"]
