"""Conv engines (window unit, max-pool, conv MVTU, flatten) against numpy models and the cycle model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hwsim import (
    assert_frames_as_modelled,
    chain_model,
    pool_model,
    random_chain_spec,
    random_spec,
    run_stream,
    window_model,
)

from bnn2fpga.backend.lowering import to_spec
from bnn2fpga.hw.accelerator import Accelerator
from bnn2fpga.hw.branch import BranchSpec
from bnn2fpga.hw.cycles import CycleModel
from bnn2fpga.hw.pool import MaxPool, PoolSpec
from bnn2fpga.hw.stream import FifoModel, FifoSpec, PixelFifo
from bnn2fpga.hw.timing import chain_times, deepen_branch_fifos, frame_times, interval_bound, predict, steady_times
from bnn2fpga.hw.window import SlidingWindow, WindowModel, WindowSpec
from tests.strategies import branch_graph


def _pack(bits: np.ndarray) -> int:
    return sum(int(b) << i for i, b in enumerate(bits))


def _maps(rng: np.random.Generator, n: int, h: int, w: int, c: int) -> list[np.ndarray]:
    return [rng.integers(0, 2, size=(h, w, c), dtype=np.uint8) for _ in range(n)]


# --------------------------------------------------------------------------- window unit alone

WINDOWS = {
    # odd, non-square map; padding 1 with pad bit 1 (the zoo's choice)
    "13x9_c3_k3_p1_b1": WindowSpec("w", 13, 9, 3, 3, 1, 1),
    # pad bit 0, no padding, a pruned width of 7 channels
    "6x5_c7_k3_p0": WindowSpec("w", 6, 5, 7, 3, 0, 0),
    # even kernel, wide padding, one channel
    "4x7_c1_k2_p2_b1": WindowSpec("w", 4, 7, 1, 2, 2, 1),
    # 1x1 kernel with padding: the window is the pixel, pads framed around the map
    "3x4_c2_k1_p1_b0": WindowSpec("w", 3, 4, 2, 1, 1, 0),
    # the kernel covers the whole padded map: one window per frame
    "3x3_c5_k5_p1_b1": WindowSpec("w", 3, 3, 5, 5, 1, 1),
    # a line buffer in block RAM (66 x 36 bits): read synchronously, one position ahead
    "4x64_c18_k3_p1_b0": WindowSpec("w", 4, 64, 18, 3, 1, 0),
}


def _model_cycles(model: CycleModel, n_in: int, n_out: int) -> tuple[list[int], list[int]]:
    """Handshake cycles of one engine's cycle model between an always-valid source and an always-ready sink."""
    ins: list[int] = []
    outs: list[int] = []
    cycle = 0
    while len(outs) < n_out:
        valid = len(ins) < n_in
        ready = model.in_ready(True)
        out_fire = model.out_valid()
        if valid and ready:
            ins.append(cycle)
        if out_fire:
            outs.append(cycle)
        model.clock(valid, valid and ready, out_fire)
        cycle += 1
    return ins, outs


@pytest.mark.parametrize("key", list(WINDOWS))
@pytest.mark.parametrize(("valid", "ready"), [(1.0, 1.0), (0.6, 0.5), (0.95, 0.2)])
def test_window_unit_emits_every_window_in_weight_order(key, valid, ready):
    spec = WINDOWS[key]
    maps = _maps(np.random.default_rng(len(key)), 3, spec.height, spec.width, spec.channels)
    inputs = [_pack(px) for m in maps for px in m.reshape(-1, spec.channels)]
    expected = [_pack(win) for m in maps for win in window_model(spec, m).reshape(-1, spec.source_bits)]
    run = run_stream(SlidingWindow(spec), inputs, len(expected), valid_prob=valid, ready_prob=ready, seed=5)
    assert run.outputs == expected
    assert not run.trailing_valid
    if valid == ready == 1.0:  # handshake for handshake what the cycle model says
        ins, outs = _model_cycles(WindowModel(spec), len(inputs), len(expected))
        assert [t - run.in_cycles[0] for t in run.in_cycles] == [t - ins[0] for t in ins]
        assert [t - run.in_cycles[0] for t in run.out_cycles] == [t - ins[0] for t in outs]


def test_window_spec_rejects_a_kernel_larger_than_the_padded_map():
    with pytest.raises(ValueError, match=r"Window w: a 5x5 kernel does not fit the padded 4x6 map\Z"):
        WindowSpec("w", 2, 4, 1, 5, 1, 0)


# --------------------------------------------------------------------------- max-pool alone

@pytest.mark.parametrize(("h", "w", "c", "size"), [(7, 5, 3, 2), (9, 9, 1, 3), (4, 6, 13, 2), (5, 2, 2, 2)])
@pytest.mark.parametrize(("valid", "ready"), [(1.0, 1.0), (0.7, 0.3)])
def test_pool_is_or_over_windows_with_floor(h, w, c, size, valid, ready):
    spec = PoolSpec("p", h, w, c, size)
    maps = _maps(np.random.default_rng(h * w), 3, h, w, c)
    inputs = [_pack(px) for m in maps for px in m.reshape(-1, c)]
    expected = [_pack(px) for m in maps for px in pool_model(spec, m).reshape(-1, c)]
    run = run_stream(MaxPool(spec), inputs, len(expected), valid_prob=valid, ready_prob=ready, seed=9)
    assert run.outputs == expected
    assert not run.trailing_valid


# --------------------------------------------------------------------------- conv chains

H, W = 9, 7
STAGES = [("conv", 6, 3, 1, 1, None, None), ("pool", 2), ("conv", 5, 2, 0, 0, None, None),
          ("conv", 4, 1, 0, 0, None, None), ("dense", 7, None, None), ("output", 3, None, None)]
FOLDINGS = {
    # fully parallel conv layers (one cycle per window: output queues at work)
    "parallel": [(6, 18), (5, 24), (4, 5), (7, 12), (3, 7)],
    # non-dividing folds everywhere
    "ragged": [(4, 5), (2, 7), (3, 2), (3, 5), (2, 3)],
    # fully serial
    "serial": [(1, 1), (1, 1), (1, 1), (1, 1), (1, 1)],
}


def _conv_spec(folds, channels: int = 1, planes=(5, 7), levels_per_stage: int = 2):
    stages, k = [], 0
    for stage in STAGES:
        if stage[0] == "pool":
            stages.append(stage)
            continue
        pe, simd = folds[k]
        k += 1
        stages.append((*stage[:-2], pe, simd))
    return random_chain_spec(21, name="conv", height=H, width=W, channels=channels, planes=planes, stages=stages,
                             levels_per_stage=levels_per_stage)


def _frames(spec, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=spec.samples_per_frame, dtype=np.uint8) for _ in range(n)]


def _beats(spec, frames) -> list[int]:
    ppb = spec.pixels_per_beat
    return [int.from_bytes(bytes(f[b:b + ppb]), "little") for f in frames
            for b in range(0, spec.samples_per_frame, ppb)]


@pytest.mark.parametrize("folding", list(FOLDINGS))
@pytest.mark.parametrize(("valid", "ready"), [(0.7, 0.6), (0.9, 0.15)])
def test_conv_chain_bit_exact_under_backpressure(folding, valid, ready):
    spec = _conv_spec(FOLDINGS[folding])
    frames = _frames(spec, 3, seed=4)
    expected = [v for f in frames for v in chain_model(spec, f, H, W)]
    run = run_stream(Accelerator(spec), _beats(spec, frames), len(expected), valid_prob=valid, ready_prob=ready,
                     seed=17, max_cycles=400_000)
    assert [o & 0xFFFFFFFF for o in run.outputs] == expected
    assert [o >> 32 for o in run.outputs] == [int(i % spec.classes == spec.classes - 1) for i in range(len(expected))]
    assert not run.trailing_valid


@pytest.mark.parametrize("folding", list(FOLDINGS))
def test_conv_chain_cycles_equal_the_model(folding):
    spec = _conv_spec(FOLDINGS[folding], channels=3, planes=(7,), levels_per_stage=1)
    n = 5
    frames = _frames(spec, n, seed=2)
    expected = [v for f in frames for v in chain_model(spec, f, H, W)]
    run = run_stream(Accelerator(spec), _beats(spec, frames), len(expected), max_cycles=400_000)
    assert [o & 0xFFFFFFFF for o in run.outputs] == expected
    first_in, first_out = assert_frames_as_modelled(spec, run.in_cycles, run.out_cycles, n)
    timing = predict(spec)
    assert first_out[0] - first_in[0] == timing.latency
    assert first_out[-1] - first_out[-2] == timing.initiation_interval
    assert timing.initiation_interval >= interval_bound(spec)


def test_chain_model_reproduces_the_dense_recurrence():
    # The engine models composed clock by clock agree with the dense closed form, frame by frame.
    for seed, folds in enumerate([[(4, 27), (5, 6), (3, 7)], [(24, 108), (1, 1), (10, 17)], [(1, 1)] * 3]):
        spec = random_spec(seed, name="d", channels=1, pixels=36, planes=(5, 6, 7), ppb=4, widths=[24, 17, 10],
                           folds=folds)
        times = chain_times(spec, 6)
        want_in, want_out = frame_times(spec, 6)
        assert [t - times.first_in[0] for t in times.first_in] == want_in
        assert [t - times.first_in[0] for t in times.first_out] == want_out



@pytest.mark.parametrize(("valid", "ready"), [(1.0, 1.0), (0.7, 0.3), (0.3, 0.9)])
def test_pixel_fifo_keeps_order_and_its_model_is_exact(valid, ready):
    spec = FifoSpec("f", 11, 5, 40)
    rng = np.random.default_rng(3)
    beats = [int(x) for x in rng.integers(0, 1 << 11, size=40)]
    run = run_stream(PixelFifo(spec), beats, len(beats), valid_prob=valid, ready_prob=ready, seed=4)
    assert run.outputs == beats and not run.trailing_valid
    if valid == ready == 1.0:
        # Written in cycle t, readable in t+1; the model says the same handshake for handshake.
        ins, outs = _model_cycles(FifoModel(spec.depth), len(beats), len(beats))
        assert [t - run.in_cycles[0] for t in run.out_cycles] == [t - ins[0] for t in outs]


def test_branch_fifos_are_sized_so_the_join_never_starves():
    """The skip path's FIFO holds the pixels the conv path takes before its first output: with it the
    branch runs; with the smallest FIFO the fork stops feeding the conv path and the join waits forever."""
    graph, folding = branch_graph(2, height=7, width=6, paths=(((4, 3, 1),), ()))
    spec = to_spec(graph, folding)
    branch = next(layer for layer in spec.layers if isinstance(layer, BranchSpec))
    skip_fifo = branch.paths[1][0]
    assert skip_fifo.depth > 6 + 2  # the row and two pixels the window needs before its first window
    times = chain_times(spec, 3)
    assert len(set(times.intervals)) == 1
    starved = dataclasses.replace(branch, paths=(branch.paths[0], (dataclasses.replace(skip_fifo, depth=2),)))
    starved_spec = dataclasses.replace(spec, layers=tuple(starved if la is branch else la for la in spec.layers))
    with pytest.raises(RuntimeError, match="no progress"):
        chain_times(starved_spec, 3, max_cycles=20_000)


def test_branch_fifos_deepen_where_the_paths_burst():
    """Sized only to keep the join fed, this branch's FIFOs cost 13 cycles a frame (209 against 196)
    where the conv path takes its pixels in bursts; the lowering deepens them until the interval is
    that of FIFOs a frame deeper, and no further."""
    graph, folding = branch_graph(5, height=12, width=12, folds=1)
    spec = to_spec(graph, folding)
    assert predict(spec).initiation_interval == 196 == interval_bound(spec)
    assert predict(dataclasses.replace(spec, layers=deepen_branch_fifos(spec.layers, -1))).initiation_interval > 196


def test_branch_fifos_deepen_until_the_interval_stops_alternating():
    """With a nested branch on a 3x3 map, FIFOs a beat too shallow let the paths take turns stalling
    each other: the interval alternates 25/28/25 from frame to frame, which no single frame rate
    describes (found by the property test). The lowering deepens them to a constant 25 = the bound;
    asked for one number, the shallower spec's prediction refuses."""
    graph, folding = branch_graph(0, height=3, width=3, paths=(((1, 3, 1), (1, 3, 1)), ()), nested=True, pool=1,
                                  folds=1)
    spec = to_spec(graph, folding, popcount_levels_per_stage=2)
    assert steady_times(spec)[1] == (25,) == (interval_bound(spec),)
    shallower = dataclasses.replace(spec, layers=deepen_branch_fifos(spec.layers, -1))
    assert len(steady_times(shallower)[1]) > 1
    with pytest.raises(RuntimeError, match="alternates"):
        predict(shallower)

