"""bnn2fpga RTL library: Amaranth components, Verilog bundle generator, cycle and resource models.

Entry points: ``AcceleratorSpec`` / ``DenseLayerSpec`` (spec), ``generate`` (file bundle),
``manifest_entries`` (sources/memories for manifest.json), ``predict`` (exact cycles),
``estimate`` (rough LUT/FF/BRAM).
"""

from .generate import generate, manifest_entries
from .spec import AcceleratorSpec, DenseLayerSpec
from .timing import Timing, estimate, predict

__all__ = ["AcceleratorSpec", "DenseLayerSpec", "Timing", "estimate", "generate", "manifest_entries",
           "predict"]
