"""The whole accelerator: slicer -> deserializer -> MVTU chain -> output stage."""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .mvtu import MVTU
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

    Stream widths between engines: slicer -> deserializer P*PPB bits;
    deserializer -> MVTU 0 the whole input vector; MVTU k -> MVTU k+1 the whole
    MH_k-bit vector; last MVTU -> output stage MH*bits(MW) bits. Every hand-off
    is one registered beat per vector, which makes the timing exact
    (see ``timing.py``).

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
        self.deserializer = Deserializer(spec.bits_per_sample * spec.pixels_per_beat, spec.input_beats)
        self.mvtus = [MVTU(layer, rom=rom, levels_per_stage=spec.popcount_levels_per_stage,
                           rom_module=self.rom_module, accel_name=spec.name) for layer in spec.layers]
        last = spec.layers[-1]
        self.output = OutputSerializer(last.mh, last.acc_bits)
        super().__init__({
            "sink": In(stream.Signature(spec.tdata_bits)),
            "source": Out(stream.Signature(OUTPUT_LAYOUT)),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.submodules.slicer = self.slicer
        m.submodules.deserializer = self.deserializer
        for layer, mvtu in zip(self.spec.layers, self.mvtus, strict=True):
            m.submodules[f"mvtu_{layer.name}"] = mvtu
        m.submodules.output = self.output
        wiring.connect(m, wiring.flipped(self.sink), self.slicer.sink)
        wiring.connect(m, self.slicer.source, self.deserializer.sink)
        chain = [self.deserializer, *self.mvtus, self.output]
        for producer, consumer in zip(chain, chain[1:], strict=False):
            wiring.connect(m, producer.source, consumer.sink)
        wiring.connect(m, self.output.source, wiring.flipped(self.source))
        return m
