"""Rough 7-series resource estimate (LUT6, FF, BRAM) of an accelerator: the sum of its engines.

Each engine module owns its formulas (``mvtu.estimate_mvtu``, ``window.estimate_window``,
``pool.estimate_pool``, the flatten row in ``engines``); this module adds them up with the
input and output stages. Calibrated against Yosys ``synth_xilinx -family xc7 -flatten`` of
whole generated designs (dense: within ~1% on the shipped builds; cnv-fmnist and nin-fmnist:
within ~3% LUT and ~1% FF); windows and pools alone are checked by
``benchmarks/engine_resources.py``. The real check is a Yosys run of the netlist (``bnn2fpga build``).

Per MVTU (P = NF*NG words per weight ROM, B = bits(MW), TB = bits(MW+1), OB = 1 or B for the
output layer, S = SHALLOW_ROM_WORDS = 4, Q = out_slots):

    LUT  = PE * (ceil(k*SIMD)             XNOR + popcount tree, k = 1.6 (0.7 against the
                                          constant weights of one-word ROMs)
                 + B                      accumulator (add + clear mux)
                 + [TB + TB*ceil(NG/64)]  compare + threshold table (hidden layers; the table
                                          only if NG > S)
           + SIMD * ceil(F/4)   if 1 < F <= 8   SIMD-slice mux of the input register (4:1 per LUT6;
                                          F = NF, or P*NF for an integer-input layer)
           + F * SIMD           if F > 8   the register rotating instead (a load/rotate mux per bit)
           + PE * bits(M)                 an address counter per PE (weight ROMs in logic, PE > 1,
                                          binary input)
           + 40                           sequencer and flags
           + (Q-1) * MH*OB      if Q > 2  output queue of a conv layer
           + PE * SIMD*ceil(P/64)         weight ROMs kept in logic (not rom_is_block), if P > S
    FF   = MW (input buffer) + SIMD (slice register)
           + NG*PE*OB (acc_out) + MH*OB (output register) + (Q-2)*MH*OB (queue)
           + PE * (B + popcount_register_bits(SIMD))
           + PE * TB  if NG > S (hidden)  registered threshold-table read
           + PE * SIMD          if P > S  ROM read registers: of ROMs in logic, and the
                                          output register of ROMs in block RAM (Yosys keeps it as
                                          flip-flops; Vivado packs it into the BRAM's DOA_REG)
           + 3*R + 2*bits(M) + 12         control (R tree stages, M period)
           + PE * bits(M)                 the per-PE address counters (ROMs in logic)
    BRAM18 = PE * bram18_count(P, SIMD)   for ROMs in block RAM; BRAM36 = BRAM18 / 2

An MVTU that collects its vector into a vector buffer (``vecbuf.estimate_vector_buffer``; the first
layer, a layer behind a flatten, a hidden layer linked to its producer) has neither the input
buffer, the slice register's copies nor the slice mux; a producer linked to its consumer has
neither acc_out nor the output register.

ROMs and threshold tables of at most S words cost neither LUTs nor read registers: each bit is
a function of two address bits, which Yosys maps onto flip-flop set/reset and data pins.
Deserializer (and flatten): LUT 12, FF = bits + bits(beats). Output stage: LUT = FF =
classes * bits(MW_last) + 8, and its skid buffer in front: FF = 2 * classes * bits(MW_last) + 2
(two entries), LUT = classes * bits(MW_last) + 2 (the main entry's load mux). The port skid
buffer behind it and the input skid buffer likewise: one word and ``last`` (bits(MW_last) + 1
bits; the data's zero extension is constant), 8 * PPB bits: FF = 2 * bits + 2, LUT = bits + 2.
An input table (``input_table.py``): LUT = PPB * P * 4 per table a lane reads (a 256-entry ROM
per kept code bit), no FF.
"""

from __future__ import annotations

from .engines import estimate as engine_estimate
from .engines import kind as engine_kind
from .input_table import table_luts
from .mvtu import (
    collected_inputs,
    estimate_collecting_mvtu,
    estimate_linking_mvtu,
    estimate_mvtu,
    linked_inputs,
    popcount_register_bits,
)
from .spec import AcceleratorSpec, bits_for

__all__ = ["estimate", "estimate_layer", "popcount_register_bits"]

estimate_layer = estimate_mvtu


def estimate(spec: AcceleratorSpec) -> dict:
    """``{"layers": [{name, kind, lut, ff, bram18, bram36, ...}...], "io": {...}, "total": {...}}``.

    One entry per engine of the chain (each engine module owns its formulas); "io" is the
    input side (the whole-frame deserializer of a dense chain) and the output stage.
    """
    lps = spec.popcount_levels_per_stage
    collected = collected_inputs(spec)
    layers = [{"name": layer.name, "kind": engine_kind(layer),
               **(estimate_collecting_mvtu(layer, collected[k], lps) if k in collected
                  else engine_estimate(layer, lps))}
              for k, layer in enumerate(spec.layers)]
    for k in collected:
        if k:  # the flatten in front collects nothing now
            layers[k - 1].update(lut=0, ff=0, bram18=0, bram36=0.0)
    for k, beat in linked_inputs(spec).items():
        layers[k].update(estimate_collecting_mvtu(spec.layers[k], beat, lps, linked=True))
        layers[k - 1].update(estimate_linking_mvtu(layers[k - 1], spec.layers[k - 1]))
    last = spec.layers[-1]
    out_bits = spec.classes * last.acc_bits
    in_bits = spec.tdata_bits  # the input skid buffer holds two raw beats
    port_bits = last.acc_bits + 1  # the port skid buffer: one class word and `last`
    skid = {"lut": sum(bits + 2 for bits in (out_bits, in_bits, port_bits)),
            "ff": sum(2 * bits + 2 for bits in (out_bits, in_bits, port_bits))}
    if spec.is_dense and 0 in collected:
        io = {"lut": out_bits + 8, "ff": out_bits + 8}
    elif spec.is_dense:
        io = {"lut": 12 + out_bits + 8, "ff": spec.input_bits + bits_for(spec.input_beats) + out_bits + 8}
    else:
        io = {"lut": out_bits + 8, "ff": out_bits + 8}
    io = {key: io[key] + skid[key] for key in io}
    if spec.input_table is not None:
        io["lut"] += table_luts(spec.channels, spec.pixels_per_beat, len(spec.planes))
    io.update(bram18=0, bram36=0.0)
    total = {key: sum(entry[key] for entry in [*layers, io]) for key in ("lut", "ff", "bram18", "bram36")}
    return {"layers": layers, "io": io, "total": total}
