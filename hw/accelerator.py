"""The whole accelerator: slicer -> engine chain -> output stage."""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .engines import EngineOptions, component, submodule_name
from .slicer import BitSlicer
from .spec import AcceleratorSpec
from .stream import OUTPUT_LAYOUT, Deserializer, OutputSerializer

__all__ = ["Accelerator"]


class Accelerator(wiring.Component):
    """Dataflow accelerator for an :class:`AcceleratorSpec`.

    Ports
    -----
    ``sink``:   In(stream.Signature(8 * pixels_per_beat)) -- raw uint8 samples, HWC order,
                first sample of a beat in the low byte.
    ``source``: Out(stream.Signature(OUTPUT_LAYOUT)) -- one class popcount per beat
                (``data``, zero-extended), ``last`` on the last class of a frame.

    Dense chain: slicer -> deserializer P*PPB bits; deserializer -> MVTU 0 the
    whole input vector; MVTU k -> MVTU k+1 the whole MH_k-bit vector.
    Pixel-stream chain: slicer -> first engine one pixel (C*P bits) per beat;
    windows, conv MVTUs and pools pass pixels or windows; the flatten engine
    collects a map into the first dense layer's vector.
    Last MVTU -> output stage MH*bits(MW) bits. Every hand-off is a registered
    beat, which makes the timing exact (see ``timing.py``).

    ``rom``: ``"memory"`` for the Python simulator, ``"instance"`` for Verilog
    output (ROM instances loading ``.mem`` files, see ``generate.py``).
    """

    def __init__(self, spec: AcceleratorSpec, *, rom: str = "memory", rom_module: str | None = None) -> None:
        if not isinstance(spec, AcceleratorSpec):
            raise TypeError(f"Accelerator spec must be an AcceleratorSpec, not {spec!r}")
        self.spec = spec
        self.rom = rom
        self.rom_module = rom_module or f"{spec.name}_rom"
        self.slicer = BitSlicer(spec.planes, spec.pixels_per_beat)
        self.deserializer = (Deserializer(spec.bits_per_sample * spec.pixels_per_beat, spec.input_beats)
                             if spec.is_dense else None)
        options = EngineOptions(levels_per_stage=spec.popcount_levels_per_stage, rom=rom,
                                rom_module=self.rom_module, accel_name=spec.name)
        self.engines = [component(layer, options) for layer in spec.layers]
        last = spec.layers[-1]
        self.output = OutputSerializer(last.mh, last.acc_bits)
        super().__init__({
            "sink": In(stream.Signature(spec.tdata_bits)),
            "source": Out(stream.Signature(OUTPUT_LAYOUT)),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.submodules.slicer = self.slicer
        chain: list[wiring.Component] = [self.slicer]
        if self.deserializer is not None:
            m.submodules.deserializer = self.deserializer
            chain.append(self.deserializer)
        for layer, engine in zip(self.spec.layers, self.engines, strict=True):
            m.submodules[submodule_name(layer)] = engine
        m.submodules.output = self.output
        wiring.connect(m, wiring.flipped(self.sink), self.slicer.sink)
        chain += [*self.engines, self.output]
        for producer, consumer in zip(chain, chain[1:], strict=False):
            wiring.connect(m, producer.source, consumer.sink)
        wiring.connect(m, self.output.source, wiring.flipped(self.source))
        return m
