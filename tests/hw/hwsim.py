"""Shared helpers of the hardware tests: numpy models, random specs, stream drivers."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

import numpy as np
from amaranth.hdl import ClockDomain, Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from bnn2fpga.hw.mvtu import full_rate_slots
from bnn2fpga.hw.pool import PoolSpec
from bnn2fpga.hw.spec import AcceleratorSpec, DenseLayerSpec
from bnn2fpga.hw.stream import FlattenSpec
from bnn2fpga.hw.timing import frame_times
from bnn2fpga.hw.window import WindowSpec

# ---------------------------------------------------------------------------- models


def dense_model(layer: DenseLayerSpec, x: np.ndarray) -> np.ndarray:
    """Popcounts (output layer) or threshold bits (hidden layer) of one input bit vector."""
    pc = (layer.weights == x[None, :]).sum(axis=1).astype(np.int64)
    return pc if layer.thresholds is None else (pc >= layer.thresholds).astype(np.int64)


def slice_model(spec: AcceleratorSpec, pixels: np.ndarray) -> np.ndarray:
    """Feature vector of one frame of uint8 samples: bit s*P + i = pixel_s[planes[i]]."""
    return ((pixels[:, None] >> np.array(spec.planes)[None, :]) & 1).reshape(-1).astype(np.uint8)


def accelerator_model(spec: AcceleratorSpec, pixels: np.ndarray) -> list[int]:
    x = slice_model(spec, pixels)
    for layer in spec.layers:
        x = dense_model(layer, x)
    return [int(v) for v in x]


def bits_to_int(bits: np.ndarray, width: int = 1) -> int:
    return sum(int(b) << (i * width) for i, b in enumerate(bits))


def int_to_bits(value: int, n: int) -> np.ndarray:
    return np.array([(value >> i) & 1 for i in range(n)], dtype=np.uint8)


def random_layer(rng: np.random.Generator, name: str, mh: int, mw: int, pe: int, simd: int,
                 output: bool = False) -> DenseLayerSpec:
    weights = rng.integers(0, 2, size=(mh, mw), dtype=np.uint8)
    thresholds = None
    if not output:
        # Mostly near the middle (so bits vary), plus the constant channels 0 and mw+1.
        thresholds = rng.integers(max(0, mw // 2 - 4), min(mw + 1, mw // 2 + 5) + 1, size=mh)
        thresholds[0] = 0
        if mh > 1:
            thresholds[1] = mw + 1
    return DenseLayerSpec(name=name, weights=weights, thresholds=thresholds, pe=pe, simd=simd)


def random_spec(seed: int, *, name: str, channels: int, pixels: int, planes: tuple[int, ...], ppb: int,
                widths: list[int], folds: list[tuple[int, int]], levels_per_stage: int = 2) -> AcceleratorSpec:
    """``widths``: MH of each layer (the last is the class count); ``folds``: (pe, simd) per layer."""
    rng = np.random.default_rng(seed)
    mw = pixels * len(planes)
    layers = []
    for k, (mh, (pe, simd)) in enumerate(zip(widths, folds, strict=True)):
        layers.append(random_layer(rng, f"fc{k}", mh, mw, pe, simd, output=k == len(widths) - 1))
        mw = mh
    return AcceleratorSpec(name=name, channels=channels, samples_per_frame=pixels, planes=planes,
                           pixels_per_beat=ppb, layers=tuple(layers),
                           popcount_levels_per_stage=levels_per_stage)


# ---------------------------------------------------------------------------- simulation


@dataclass
class StreamRun:
    """What a stream simulation observed. Cycle c is the cycle ending at clock edge c+1."""

    outputs: list[int] = field(default_factory=list)
    in_cycles: list[int] = field(default_factory=list)     # handshake cycle of every input beat
    out_cycles: list[int] = field(default_factory=list)    # handshake cycle of every output beat
    cycles: int = 0
    trailing_valid: bool = False    # source.valid seen after the expected outputs (duplicates)


def run_stream(dut: wiring.Component, inputs: list[int], n_outputs: int, *, valid_prob: float = 1.0,
               ready_prob: float = 1.0, seed: int = 0, max_cycles: int = 100_000) -> StreamRun:
    """Push ``inputs`` into ``dut.sink`` and collect ``n_outputs`` payloads from ``dut.source``.

    ``valid_prob`` / ``ready_prob``: chance per cycle that the producer offers a
    beat / the consumer accepts one (1.0: no back-pressure). Once valid, the
    producer holds the beat until it is taken (AXI-Stream rule).
    """
    run = StreamRun()
    rng_in = random.Random(seed)
    rng_out = random.Random(seed + 1)
    sink, source = dut.sink, dut.source
    in_payload = sink.payload.as_value() if hasattr(sink.payload, "as_value") else sink.payload
    out_payload = source.payload.as_value() if hasattr(source.payload, "as_value") else source.payload

    async def producer(ctx) -> None:
        cycle = 0
        for item in inputs:
            while rng_in.random() >= valid_prob:
                ctx.set(sink.valid, 0)
                await ctx.tick()
                cycle += 1
            ctx.set(in_payload, item)
            ctx.set(sink.valid, 1)
            while True:
                _, _, ready = await ctx.tick().sample(sink.ready)
                cycle += 1
                if ready:
                    run.in_cycles.append(cycle - 1)
                    break
        ctx.set(sink.valid, 0)

    async def consumer(ctx) -> None:
        cycle = 0
        while len(run.outputs) < n_outputs:
            if cycle > max_cycles:
                raise AssertionError(f"timeout: {len(run.outputs)} of {n_outputs} outputs after "
                                     f"{max_cycles} cycles")
            ready = rng_out.random() < ready_prob
            ctx.set(source.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(source.valid, out_payload)
            cycle += 1
            if ready and valid:
                run.outputs.append(payload)
                run.out_cycles.append(cycle - 1)
        ctx.set(source.ready, 0)
        # A few more cycles: nothing else may come out.
        for _ in range(40):
            _, _, valid = await ctx.tick().sample(source.valid)
            run.trailing_valid |= bool(valid)
        run.cycles = cycle

    simulate(dut, producer, consumer)
    return run


def simulate(dut: wiring.Component, *testbenches) -> None:  # noqa: ANN002 (async testbench functions)
    """Run ``testbenches`` against ``dut`` on a 100 MHz clock until they all return."""
    # Define the clock domain explicitly so purely combinational parts (the slicer) simulate too.
    top = Module()
    top.domains.sync = ClockDomain()
    top.submodules.dut = dut
    sim = Simulator(top)
    sim.add_clock(1e-8)
    for bench in testbenches:
        sim.add_testbench(bench)
    sim.run()


# ---------------------------------------------------------------------------- pixel-stream chains


def window_model(spec: WindowSpec, fmap: np.ndarray) -> np.ndarray:
    """(H, W, C) bits -> (OH, OW, K*K*C) windows in (ky, kx, c) order, padded with the pad bit."""
    p, k = spec.padding, spec.kernel
    padded = np.pad(fmap, ((p, p), (p, p), (0, 0)), constant_values=spec.pad_bit)
    return np.concatenate([padded[ky:ky + spec.out_height, kx:kx + spec.out_width, :]
                           for ky in range(k) for kx in range(k)], axis=-1)


def pool_model(spec: PoolSpec, fmap: np.ndarray) -> np.ndarray:
    s, oh, ow = spec.size, spec.out_height, spec.out_width
    return fmap[:oh * s, :ow * s, :].reshape(oh, s, ow, s, -1).max(axis=(1, 3))


def chain_model(spec: AcceleratorSpec, pixels: np.ndarray, height: int, width: int) -> list[int]:
    """Class popcounts of one frame through any chain; ``pixels`` is the frame's uint8 samples (HWC)."""
    if spec.is_dense:
        return accelerator_model(spec, pixels)
    fmap = slice_model(spec, pixels).reshape(height, width, -1)
    for layer in spec.layers:
        if isinstance(layer, WindowSpec):
            fmap = window_model(layer, fmap)
        elif isinstance(layer, PoolSpec):
            fmap = pool_model(layer, fmap)
        elif isinstance(layer, FlattenSpec):
            fmap = fmap.reshape(1, 1, -1)
        else:
            h, w, _ = fmap.shape
            fmap = np.stack([dense_model(layer, v) for v in fmap.reshape(h * w, -1)]).reshape(h, w, -1)
    return [int(v) for v in fmap.reshape(-1)]


def random_chain_spec(seed: int, *, name: str, height: int, width: int, channels: int, planes: tuple[int, ...],
                      stages: list[tuple], levels_per_stage: int = 2) -> AcceleratorSpec:
    """A pixel-stream chain with random weights. ``stages``:
    ``("conv", out, kernel, padding, pad_bit, pe, simd)``, ``("pool", size)``,
    ``("dense", out, pe, simd)`` (flattens first if needed), ``("output", classes, pe, simd)``.
    Conv MVTUs get the slots for full rate (as lowering does)."""
    rng = np.random.default_rng(seed)
    h, w, c = height, width, channels * len(planes)
    layers: list = []
    flat = False
    for i, stage in enumerate(stages):
        kind = stage[0]
        if kind == "conv":
            _, out, k, p, pad_bit, pe, simd = stage
            if k > 1 or p > 0:
                layers.append(WindowSpec(f"win{i}", h, w, c, k, p, pad_bit))
            h, w = h + 2 * p - k + 1, w + 2 * p - k + 1
            layer = random_layer(rng, f"conv{i}", out, k * k * c, pe, simd)
            layer = DenseLayerSpec(layer.name, layer.weights, layer.thresholds, pe, simd, vectors=h * w)
            layers.append(replace(layer, out_slots=full_rate_slots(layer, levels_per_stage)))
            c = out
        elif kind == "pool":
            layers.append(PoolSpec(f"pool{i}", h, w, c, stage[1]))
            h, w = h // stage[1], w // stage[1]
        else:
            _, out, pe, simd = stage
            if not flat and h * w > 1:
                layers.append(FlattenSpec(f"flatten{i}", c, h * w))
            flat = True
            layers.append(random_layer(rng, f"fc{i}", out, h * w * c, pe, simd, output=kind == "output"))
            h, w, c = 1, 1, out
    return AcceleratorSpec(name=name, channels=channels, samples_per_frame=height * width * channels, planes=planes,
                           pixels_per_beat=channels, layers=tuple(layers), popcount_levels_per_stage=levels_per_stage)


def assert_frames_as_modelled(spec: AcceleratorSpec, in_cycles: list[int], out_cycles: list[int],
                              frames: int) -> tuple[list[int], list[int]]:
    """Every frame's first input and first output handshake equals ``timing.frame_times``;
    returns them (first_in, first_out) for further checks."""
    nb, classes = spec.input_beats, spec.classes
    first_in = [in_cycles[k * nb] for k in range(frames)]
    first_out = [out_cycles[k * classes] for k in range(frames)]
    want_in, want_out = frame_times(spec, frames)
    assert [t - first_in[0] for t in first_in] == want_in
    assert [t - first_in[0] for t in first_out] == want_out
    return first_in, first_out
