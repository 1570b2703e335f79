from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bnn2fpga import reference
from bnn2fpga.ir.frontend import from_checkpoint
from bnn2fpga.ir.graph import BatchNorm, BinaryDense, frozen_array
from bnn2fpga.ir.normalize import normalize_thresholds
from bnn2fpga.ir.pipeline import HARDWARE_STEPS, lower
from bnn2fpga.ir.thresholds import evaluate_bn, fold_batchnorm, thresholds_from_bits
from bnn2fpga.ir.verify import IRError, verify
from tests.conftest import random_checkpoint, random_pixels


def bn(mean: float, var: float, weight: float, bias: float) -> BatchNorm:
    def a(v: float) -> np.ndarray:
        return np.array([v], np.float32)
    return BatchNorm(a(mean), a(var), a(weight), a(bias), 1e-5)


def dense(b: BatchNorm, mw: int = 8) -> BinaryDense:
    return BinaryDense("d", frozen_array(np.ones((1, mw)), np.uint8), bn=b)


@pytest.mark.parametrize("batchnorm,expected", [
    # dot = 2*pc - 8; positive scale, BN(dot) >= 0 <=> dot >= 2 <=> pc >= 5 (tie at dot=2 -> fires)
    (bn(2.0, 1.0 - 1e-5, 1.0, 0.0), (5, 1)),
    # negative scale flips the comparison: fires while dot <= 2 <=> pc <= 5
    (bn(2.0, 1.0 - 1e-5, -1.0, 0.0), (5, -1)),
    # zero scale, non-negative bias: a constant 1 channel
    (bn(0.0, 1.0, 0.0, 0.5), (0, 1)),
    # zero scale, negative bias: a constant 0 channel
    (bn(0.0, 1.0, 0.0, -0.5), (9, 1)),
    # threshold beyond every popcount: never fires
    (bn(100.0, 1.0, 1.0, 0.0), (9, 1)),
])
def test_threshold_from_float_evaluation(batchnorm: BatchNorm, expected: tuple[int, int]) -> None:
    layer = fold_batchnorm_layer(dense(batchnorm))
    assert (int(layer.thresholds[0]), int(layer.direction[0])) == expected


def fold_batchnorm_layer(layer: BinaryDense) -> BinaryDense:
    from bnn2fpga.ir.graph import Graph, InputSpec, Output
    g = Graph(InputSpec(1, 1, 8, 8, (0,)), (layer, Output("output", frozen_array(np.ones((1, 1)), np.uint8),
                                                           bn=bn(0, 1, 1, 0))))
    return fold_batchnorm(g).layers[0]


def test_threshold_matches_every_popcount_of_the_float_function() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        b = bn(*rng.uniform(-20, 20, 1), rng.uniform(0.01, 30), rng.uniform(-3, 3), rng.uniform(-2, 2))
        scores = evaluate_bn(b, 40)
        t, d = thresholds_from_bits(scores >= 0, "x")
        pc = np.arange(41)
        fires = pc >= t[0] if d[0] > 0 else pc <= t[0]
        assert (fires == (scores[:, 0] >= 0)).all()


def test_non_monotone_sign_table_is_rejected() -> None:
    from bnn2fpga.ir.thresholds import ThresholdError
    with pytest.raises(ThresholdError, match="layer L, channel 0: output is not monotone"):
        thresholds_from_bits(np.array([[0], [1], [0], [1]], bool), "L")


def test_verifier_names_offending_layer() -> None:
    g = from_checkpoint(random_checkpoint("sfc", widths=[5, 4, 3]))
    bad = dataclasses.replace(g.layers[1], weights=frozen_array(np.ones((4, 6)), np.uint8))
    g2 = dataclasses.replace(g, layers=(g.layers[0], bad, *g.layers[2:]))
    with pytest.raises(IRError, match=r"layer dense1: weights \(4, 6\) but the input has 5 bits"):
        verify(g2)


def test_verifier_rejects_out_of_range_threshold() -> None:
    g = lower(random_checkpoint("sfc", widths=[5, 4, 3]))
    layer = g.layers[2]
    bad = dataclasses.replace(layer, thresholds=frozen_array(np.full(3, 99), np.int64))
    with pytest.raises(IRError, match=r"layer dense2: thresholds outside 0..5"):
        verify(dataclasses.replace(g, layers=(g.layers[0], g.layers[1], bad, g.layers[3])))


def test_ir_is_immutable() -> None:
    g = lower(random_checkpoint("sfc", widths=[5, 4, 3]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.layers[0].name = "x"  # type: ignore[misc]
    with pytest.raises(ValueError):
        g.layers[0].weights[0, 0] = 1


def test_normalized_thresholds_compute_the_same_function() -> None:
    ck = random_checkpoint("sfc", widths=[33, 17, 9])
    g = lower(ck)
    assert (g.layers[0].direction < 0).any(), "fixture should have negative batch-norm scales"
    hw = lower(ck, HARDWARE_STEPS)
    assert (np.concatenate([layer.direction for layer in hw.layers[:3]]) == 1).all()
    x = random_pixels(64)
    assert (reference.run(g, x).popcounts == reference.run(hw, x).popcounts).all()
    assert normalize_thresholds(hw).layers[0].thresholds.tolist() == hw.layers[0].thresholds.tolist()
