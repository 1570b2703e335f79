"""The whole accelerator: input skid buffer -> slicer -> engines -> skid buffer -> output stage -> port skid buffer."""

from __future__ import annotations

from amaranth.hdl import Elaboratable, Module, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .engines import EngineOptions, component, submodule_name
from .input_table import InputTable
from .mvtu import MVTU, collected_inputs, linked_inputs
from .reset import reset_parts
from .slicer import BitSlicer
from .spec import AcceleratorSpec
from .stream import OUTPUT_LAYOUT, Deserializer, OutputSerializer, SkidBuffer

__all__ = ["Accelerator"]


class Accelerator(wiring.Component):
    """Dataflow accelerator for an :class:`AcceleratorSpec`.

    Ports
    -----
    ``sink``:   In(stream.Signature(8 * pixels_per_beat)) -- raw uint8 samples, HWC order,
                first sample of a beat in the low byte.
    ``source``: Out(stream.Signature(OUTPUT_LAYOUT)) -- one class popcount per beat
                (``data``, zero-extended), ``last`` on the last class of a frame.

    Input: skid buffer -> input table (when the spec has one, ``hw/input_table.py``) -> slicer.
    The skid buffer registers the input port's ``ready`` (the first engine's ``ready``, which
    depends on its own state, would otherwise reach the AXI port and the packet framer in front
    of it in the same cycle) and costs one cycle of latency; the table costs none.
    Dense chain: slicer -> MVTU 0 P*PPB bits, collected into its memory-backed
    vector buffer (a deserializer and a register copy when the layer reads its
    vector whole, in one fold); MVTU k -> MVTU k+1: each row group's PE_k bits written
    into MVTU k+1's vector buffer as it finishes (``linked_inputs``), or the whole MH_k-bit
    vector where MVTU k+1 reads it in one fold or PE_k does not divide MH_k.
    Pixel-stream chain: slicer -> first engine one pixel (C*P bits) per beat;
    windows, conv MVTUs and pools pass pixels or windows; a flatten collects a
    map into the first dense layer's vector (the dense MVTU's own buffer, as above).
    Last MVTU -> skid buffer -> output stage, MH*bits(MW) bits: the skid buffer registers
    both directions of that hand-off, which otherwise couples the output stage's ``ready``
    to the last MVTU. Output stage -> port skid buffer -> ``source``, one 33-bit beat: the
    output stage shifts its whole vector register on the port's ``ready``, so that ``ready``
    must come from a register beside it; the port skid buffer is that register, and only its
    narrow beat crosses the die to the port. Every hand-off is a registered beat, which makes
    the timing exact (see ``timing.py``).

    ``rom``: ``"memory"`` for the Python simulator, ``"instance"`` for Verilog
    output (ROM instances loading ``.mem`` files, see ``generate.py``).
    ``reset``: None, the ``sync`` domain's reset; else the design's reset input, distributed through
    a register per part (``hw/reset.py``; the input skid buffer, which faces the input port,
    takes it directly).
    """

    def __init__(self, spec: AcceleratorSpec, *, rom: str = "memory", rom_module: str | None = None,
                 reset: Value | None = None) -> None:
        if not isinstance(spec, AcceleratorSpec):
            raise TypeError(f"Accelerator spec must be an AcceleratorSpec, not {spec!r}")
        self.spec = spec
        self.rom = rom
        self.rom_module = rom_module or f"{spec.name}_rom"
        self.reset = reset
        self.in_skid = SkidBuffer(spec.tdata_bits)
        self.table = None if spec.input_table is None else InputTable(spec.input_table, spec.pixels_per_beat)
        self.slicer = BitSlicer(spec.planes, spec.pixels_per_beat)
        options = EngineOptions(levels_per_stage=spec.popcount_levels_per_stage, rom=rom,
                                rom_module=self.rom_module, accel_name=spec.name)
        beat = spec.bits_per_sample * spec.pixels_per_beat
        collected = collected_inputs(spec)
        linked = linked_inputs(spec)
        self.deserializer = None
        engines: list[wiring.Component | None] = []
        for k, layer in enumerate(spec.layers):
            if k in collected or k in linked or k + 1 in linked:
                # The MVTU collects its vector into memory (hw/vecbuf.py): from beats, the stage in
                # front going (a flatten), or from its producer's row groups (linked).
                if k in collected and k:
                    engines[k - 1] = None
                engines.append(MVTU(layer, rom=rom, levels_per_stage=spec.popcount_levels_per_stage,
                                    rom_module=self.rom_module, accel_name=spec.name,
                                    beat=collected.get(k, linked.get(k)),
                                    linked=k in linked, links_out=k + 1 in linked))
            else:
                engines.append(component(layer, options))
        first = engines[0]
        if spec.is_dense and not (isinstance(first, MVTU) and first.beat is not None):
            self.deserializer = Deserializer(beat, spec.input_beats)
        self.engines = engines
        last = spec.layers[-1]
        self.skid = SkidBuffer(last.mh * last.acc_bits)
        self.output = OutputSerializer(last.mh, last.acc_bits)
        self.port_skid = SkidBuffer(OUTPUT_LAYOUT)
        super().__init__({
            "sink": In(stream.Signature(spec.tdata_bits)),
            "source": Out(stream.Signature(OUTPUT_LAYOUT)),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        parts: dict[str, Elaboratable] = {"in_skid": self.in_skid, "slicer": self.slicer}
        chain: list[wiring.Component] = [self.in_skid, self.slicer]
        if self.table is not None:
            parts["input_table"] = self.table
            chain.insert(1, self.table)
        if self.deserializer is not None:
            parts["deserializer"] = self.deserializer
            chain.append(self.deserializer)
        for layer, engine in zip(self.spec.layers, self.engines, strict=True):
            if engine is not None:
                parts[submodule_name(layer)] = engine
        parts["skid"] = self.skid
        parts["output"] = self.output
        parts["port_skid"] = self.port_skid
        reset_parts(m, parts, self.reset, direct=frozenset({"in_skid"}))
        wiring.connect(m, wiring.flipped(self.sink), self.in_skid.sink)
        chain += [*(e for e in self.engines if e is not None), self.skid, self.output, self.port_skid]
        for producer, consumer in zip(chain, chain[1:], strict=False):
            wiring.connect(m, producer.source, consumer.sink)
        wiring.connect(m, self.port_skid.source, wiring.flipped(self.source))
        return m
