# amaranth: UnusedElaboratable=no
# (constructor-check tests create components that are never elaborated on purpose)
"""MVTU against the numpy model: foldings that do and do not divide, back-pressure, timing."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest
from hwsim import bits_to_int, dense_model, random_layer, run_stream

from bnn2fpga.hw.mvtu import MVTU, PES_PER_X1, rotates_vector, two_stage_thresholds, x1_copies
from bnn2fpga.hw.popcount import popcount_levels, popcount_stages
from bnn2fpga.hw.rom import rom_is_block, rom_read_latency, threshold_rows, weight_words
from bnn2fpga.hw.spec import DenseLayerSpec
from bnn2fpga.hw.timing import mvtu_period, mvtu_pipeline_depth

# (mh, mw, pe, simd, levels_per_stage)
FOLDINGS = [
    (7, 179, 3, 16, 2),    # neither divides
    (5, 9, 1, 1, 2),       # fully folded
    (6, 20, 6, 20, 2),     # fully parallel: one cycle per vector
    (16, 64, 4, 8, 1),     # both divide, register after every level
    (10, 33, 4, 5, 0),     # one register after the whole tree
    (9, 50, 2, 49, 3),     # SIMD leaves a 1-bit last fold
    (21, 300, 2, 32, 2),   # block-RAM ROMs (two-cycle read, address fetched ahead), neither divides
    (12, 16, 5, 16, 2),    # one fold per row group: row groups finish on consecutive cycles
    (9, 40, 1, 1, 2),      # a deep ROM kept in logic (360 x 1): two-stage read, address fetched ahead
    (10, 40, 2, 1, 2),     # deep ROMs in logic (200 x 1) on two PEs: an address counter each, fetched ahead
    (130, 9, 2, 3, 2),     # a 65-row threshold table, three folds a row group: read in two stages
    (34, 24, 17, 6, 2),    # 17 PEs: three copies of the slice register x1, each serving up to 8 PEs
]


def test_foldings_cover_both_threshold_reads():
    layers = [random_layer(np.random.default_rng(0), "fc", mh, mw, pe, simd) for mh, mw, pe, simd, _ in FOLDINGS]
    assert {two_stage_thresholds(layer) for layer in layers} == {False, True}


def test_foldings_cover_every_rom_kind():
    kinds = {(rom_is_block(depth, simd), rom_read_latency(depth, simd))
             for depth, simd in ((-(-mh // pe) * -(-mw // simd), simd) for mh, mw, pe, simd, _ in FOLDINGS)}
    assert kinds == {(False, 1), (False, 2), (True, 2)}


def _run(layer: DenseLayerSpec, levels: int, vectors: int, valid: float, ready: float, seed: int):
    rng = np.random.default_rng(seed)
    xs = [rng.integers(0, 2, size=layer.mw, dtype=np.uint8) for _ in range(vectors)]
    # Include the all-zero and all-one inputs: they hit popcount 0 and mw on some rows.
    xs[0][:] = 0
    xs[1][:] = 1
    run = run_stream(MVTU(layer, levels_per_stage=levels), [bits_to_int(x) for x in xs], vectors,
                     valid_prob=valid, ready_prob=ready, seed=seed)
    expected = [bits_to_int(dense_model(layer, x), layer.out_bits) for x in xs]
    return run, expected



@pytest.mark.parametrize("output", [False, True], ids=["hidden", "output"])
@pytest.mark.parametrize(("mh", "mw", "pe", "simd", "levels"), FOLDINGS)
@pytest.mark.parametrize(("valid", "ready"), [(0.6, 0.5), (0.95, 0.15), (0.2, 0.95)])
def test_mvtu_matches_model_under_backpressure(mh, mw, pe, simd, levels, output, valid, ready):
    layer = random_layer(np.random.default_rng(mh * 1000 + mw), "fc", mh, mw, pe, simd, output=output)
    run, expected = _run(layer, levels, 10, valid, ready, seed=pe + simd)
    assert run.outputs == expected
    assert not run.trailing_valid


@pytest.mark.parametrize(("mh", "mw", "pe", "simd", "levels"), FOLDINGS)
def test_mvtu_timing_without_backpressure(mh, mw, pe, simd, levels):
    layer = random_layer(np.random.default_rng(7), "fc", mh, mw, pe, simd)
    run, expected = _run(layer, levels, 6, 1.0, 1.0, seed=1)
    assert run.outputs == expected
    period = mvtu_period(layer, levels)
    depth = mvtu_pipeline_depth(layer, levels)
    assert period >= layer.cycles == -(-mh // pe) * -(-mw // simd)
    # One vector per period, result valid P + D cycles after its handshake.
    assert run.in_cycles == [k * period for k in range(6)]
    assert run.out_cycles == [k * period + layer.cycles + depth for k in range(6)]


@pytest.mark.parametrize("mux_folds", [1, 3, 6, 64])
def test_slice_mux_or_rotation_is_bit_exact_and_keeps_the_timing(mux_folds):
    # Six folds a row group: a slice mux at 6 and 64, a rotating vector at 1 and 3.
    layer = replace(random_layer(np.random.default_rng(5), "fc", 6, 33, 2, 6), mux_folds=mux_folds)
    assert rotates_vector(layer) == (mux_folds < 6)
    run, expected = _run(layer, 2, 6, 1.0, 1.0, seed=2)
    assert run.outputs == expected
    period, depth = mvtu_period(layer, 2), mvtu_pipeline_depth(layer, 2)
    assert run.out_cycles == [k * period + layer.cycles + depth for k in range(6)]
    stalled, expected = _run(layer, 2, 8, 0.6, 0.4, seed=3)
    assert stalled.outputs == expected


def test_slice_register_copies_are_kept_for_synthesis():
    # Identical registers are merged by synthesisers unless kept: each copy must reach the
    # netlist with its keep attribute, and serve its own PEs.
    from amaranth.back import verilog

    layer = random_layer(np.random.default_rng(3), "fc", 34, 24, 17, 6)
    assert x1_copies(layer) == 3 == -(-17 // PES_PER_X1)
    text = verilog.convert(MVTU(layer), name="mvtu")
    for c in (1, 2):
        # the register's attributes are the lines of (* ... *) just above its declaration
        assert re.search(rf"\(\* keep = [^*]*\*\)\s*(\(\*[^*]*\*\)\s*)*reg \[5:0\] x1_copy{c}\b", text), c
    assert "x1_copy3" not in text


def test_thresholds_zero_and_above_mw_are_constant_channels():
    rng = np.random.default_rng(0)
    layer = random_layer(rng, "fc", 4, 30, 3, 7)
    assert layer.thresholds[0] == 0 and layer.thresholds[1] == 31
    run, expected = _run(layer, 2, 8, 0.7, 0.7, seed=3)
    assert run.outputs == expected
    assert all(o & 1 == 1 and (o >> 1) & 1 == 0 for o in run.outputs)


def test_weight_rom_padding():
    w = np.array([[1, 0, 1, 1, 0], [0, 1, 1, 0, 1], [1, 1, 1, 1, 1]], dtype=np.uint8)
    layer = DenseLayerSpec("fc", w, np.array([0, 1, 2]), pe=2, simd=2)
    words = weight_words(layer)
    # PE 0: rows 0 and 2; PE 1: row 1 and a masked row (all 0). Pad columns are 1.
    assert words[0] == [0b01, 0b11, 0b10, 0b11, 0b11, 0b11]
    assert words[1] == [0b10, 0b01, 0b11, 0, 0, 0]
    assert threshold_rows(layer) == [0 | (1 << 3), 2]


@pytest.mark.parametrize(("n", "levels", "stages"), [
    (1, 0, 1), (3, 1, 1), (4, 2, 1), (16, 4, 2), (49, 6, 3), (64, 6, 3), (1024, 10, 5),
])
def test_popcount_levels(n, levels, stages):
    assert popcount_levels(n) == levels
    assert popcount_stages(n, 2) == stages
    assert popcount_stages(n, 0) == 1
    assert popcount_stages(n, 1) == max(1, levels)


def test_mvtu_constructor_checks():
    layer = random_layer(np.random.default_rng(0), "fc", 2, 4, 1, 1)
    with pytest.raises(ValueError, match=r"ROM style must be one of \('memory', 'instance'\), not 'bram'\Z"):
        MVTU(layer, rom="bram")
    with pytest.raises(ValueError, match=r"levels_per_stage must be a non-negative integer, not -1\Z"):
        MVTU(layer, levels_per_stage=-1)
    with pytest.raises(TypeError, match=r"MVTU layer must be a DenseLayerSpec, not 3\Z"):
        MVTU(3)
