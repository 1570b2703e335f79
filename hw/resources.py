"""Rough 7-series resource estimate (LUT6, FF, BRAM) of an accelerator.

Calibrated against Yosys ``synth_xilinx -family xc7`` on generated designs
(within ~15-20% per MVTU on LUTs, FFs close to exact); the real check is a
Yosys run of the netlist elsewhere. Per MVTU (P = NF*NG, B = bits(MW),
TB = bits(MW+1), OB = 1 or B for the output layer):

    LUT  = PE * (ceil(1.6*SIMD)           XNOR + popcount tree
                 + B                      accumulator (add + clear mux)
                 + [TB + TB*ceil(NG/64)]  compare + threshold table (hidden layers only))
           + SIMD * ceil(NF/4)  if NF > 1 SIMD-slice mux of the input buffer (4:1 per LUT6)
           + 40                           sequencer and flags
           + PE * SIMD*ceil(P/64)         weight ROMs kept in logic (not rom_is_block)
    FF   = MW (input buffer) + SIMD (slice register)
           + NG*PE*OB (acc_out) + MH*OB (output register)
           + PE * (B + popcount_register_bits(SIMD))
           + PE * TB  if NG > 1 (hidden)  registered threshold-table read
           + PE * SIMD                    ROM read registers: of ROMs in logic (P > 1), and the
                                          output register of ROMs in block RAM (Yosys keeps it as
                                          flip-flops; Vivado packs it into the BRAM's DOA_REG)
           + 3*R + 2*bits(M) + 12         control (R tree stages, M period)
    BRAM18 = PE * bram18_count(P, SIMD)   for ROMs in block RAM; BRAM36 = BRAM18 / 2

Deserializer: LUT 12, FF = input_bits + bits(NB). Output stage: LUT = FF =
classes * bits(MW_last) + 8.
"""

from __future__ import annotations

import math

from .popcount import popcount_stages
from .rom import bram18_count, distributed_luts, rom_is_block
from .spec import AcceleratorSpec, DenseLayerSpec, bits_for, ceil_div
from .timing import mvtu_period

__all__ = ["estimate", "estimate_layer", "popcount_register_bits"]


def popcount_register_bits(n: int, levels_per_stage: int) -> int:
    """Flip-flops inside one popcount tree (mirrors ``popcount.popcount_tree``)."""
    maxima = [1] * n
    level, group, bits = 0, 3, 0
    while len(maxima) > 1:
        maxima = [sum(maxima[k:k + group]) for k in range(0, len(maxima), group)]
        level += 1
        group = 2
        if levels_per_stage and level % levels_per_stage == 0 and len(maxima) > 1:
            bits += sum(bits_for(mx) for mx in maxima)
    return bits + bits_for(maxima[0])


def estimate_layer(layer: DenseLayerSpec, levels_per_stage: int) -> dict[str, float]:
    pe, simd, nf, ng = layer.pe, layer.simd, layer.nf, layer.ng
    depth, b, tb, ob = layer.cycles, layer.acc_bits, layer.threshold_bits, layer.out_bits
    block = rom_is_block(depth, simd)
    per_pe_lut = math.ceil(1.6 * simd) + b
    if not layer.is_output:
        per_pe_lut += tb + (tb * ceil_div(ng, 64) if ng > 1 else 0)
    lut = pe * per_pe_lut + (simd * ceil_div(nf, 4) if nf > 1 else 0) + 40
    ff = (layer.mw + simd + ng * pe * ob + layer.mh * ob
          + pe * (b + popcount_register_bits(simd, levels_per_stage))
          + 3 * popcount_stages(simd, levels_per_stage)
          + 2 * bits_for(mvtu_period(layer, levels_per_stage)) + 12)
    if not layer.is_output and ng > 1:
        ff += pe * tb
    if depth > 1:  # a one-word ROM is a constant; any other has PE x SIMD read (or output) registers
        ff += pe * simd
    bram18 = 0
    if block:
        bram18 = pe * bram18_count(depth, simd)
    elif depth > 1:
        lut += pe * distributed_luts(depth, simd)
    return {"lut": lut, "ff": ff, "bram18": bram18, "bram36": bram18 / 2,
            "weight_rom": "block" if block else "distributed"}


def estimate(spec: AcceleratorSpec) -> dict:
    """``{"layers": [{name, lut, ff, bram18, bram36, weight_rom}...], "io": {...}, "total": {...}}``."""
    lps = spec.popcount_levels_per_stage
    layers = []
    for layer in spec.layers:
        layers.append({"name": layer.name, **estimate_layer(layer, lps)})
    last = spec.layers[-1]
    out_bits = spec.classes * last.acc_bits
    io = {"lut": 12 + out_bits + 8, "ff": spec.input_bits + bits_for(spec.input_beats) + out_bits + 8,
          "bram18": 0, "bram36": 0.0}
    total = {key: sum(entry[key] for entry in [*layers, io]) for key in ("lut", "ff", "bram18", "bram36")}
    return {"layers": layers, "io": io, "total": total}
