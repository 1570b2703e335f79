"""Spec validation: every bad value is rejected with a message that quotes it."""

from __future__ import annotations

import re

import numpy as np
import pytest

from bnn2fpga.hw.spec import AcceleratorSpec, DenseLayerSpec


def _layer(name="fc0", mh=4, mw=6, pe=2, simd=3, thresholds="mid", weights=None):
    w = np.ones((mh, mw), dtype=np.uint8) if weights is None else weights
    t = np.full(mh, mw // 2) if isinstance(thresholds, str) else thresholds
    return DenseLayerSpec(name=name, weights=w, thresholds=t, pe=pe, simd=simd)


def _accel(**overrides):
    kwargs = dict(name="acc", channels=1, samples_per_frame=6, planes=(7,), pixels_per_beat=2,
                  layers=(_layer(mw=6, mh=4), _layer(name="out", mw=4, mh=3, thresholds=None)))
    kwargs.update(overrides)
    return AcceleratorSpec(**kwargs)


def test_layer_properties_and_immutability():
    layer = _layer(mh=7, mw=179, pe=3, simd=16)
    assert (layer.mh, layer.mw, layer.nf, layer.ng, layer.cycles) == (7, 179, 12, 3, 36)
    assert (layer.acc_bits, layer.threshold_bits, layer.out_bits) == (8, 8, 1)
    out = _layer(mh=10, mw=256, pe=10, simd=256, thresholds=None)
    assert (out.acc_bits, out.threshold_bits, out.out_bits) == (9, 9, 9)
    with pytest.raises(ValueError):
        layer.weights[0, 0] = 0
    with pytest.raises(AttributeError):
        layer.pe = 2


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(name="fc-0"), "Layer name must be a plain identifier ([A-Za-z_][A-Za-z0-9_]*), not 'fc-0'"),
    (dict(weights=np.zeros(6, np.uint8)), "Layer fc0: weights must be a non-empty 2-D (mh, mw) array, "
                                          "not shape (6,)"),
    (dict(weights=np.full((4, 6), 2)), "Layer fc0: weights must be 0/1, found 2"),
    (dict(thresholds=np.array([0, 1, 8, 2])), "Layer fc0: thresholds must be in 0..7 (mw + 1), not 8"),
    (dict(thresholds=np.array([0, 1, -1, 2])), "Layer fc0: thresholds must be in 0..7 (mw + 1), not -1"),
    (dict(thresholds=np.zeros(3, int)), "Layer fc0: thresholds must have shape (4,), not (3,)"),
    (dict(pe=5), "Layer fc0: pe must be in 1..4, not 5"),
    (dict(pe=0), "Layer fc0: pe must be in 1..4, not 0"),
    (dict(simd=7), "Layer fc0: simd must be in 1..6, not 7"),
])
def test_layer_rejects(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message) + r"\Z"):
        _layer(**kwargs)


def test_layer_rejects_float_thresholds():
    with pytest.raises(TypeError, match=r"thresholds must be integers, not dtype float64"):
        _layer(thresholds=np.full(4, 2.5))


def test_thresholds_at_both_ends_are_accepted():
    layer = _layer(thresholds=np.array([0, 7, 3, 0]))
    assert layer.thresholds.tolist() == [0, 7, 3, 0]


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(name="1acc"), "Accelerator name must be a plain identifier ([A-Za-z_][A-Za-z0-9_]*), not '1acc'"),
    (dict(channels=4), "samples_per_frame (6) must be a multiple of channels (4)"),
    (dict(planes=()), "planes must be strictly ascending bit planes in 0..7 (at least one), not []"),
    (dict(planes=(8,)), "planes must be strictly ascending bit planes in 0..7 (at least one), not [8]"),
    (dict(planes=(6, 5)), "planes must be strictly ascending bit planes in 0..7 (at least one), not [6, 5]"),
    (dict(pixels_per_beat=4), "pixels_per_beat (4) must divide samples_per_frame (6)"),
    (dict(pixels_per_beat=0), "pixels_per_beat must be at least 1, not 0"),
    (dict(layers=()), "An accelerator needs at least one layer, not ()"),
    (dict(samples_per_frame=4), "Layer fc0: mw (6) must equal samples_per_frame * len(planes) = 4"),
    (dict(layers=(_layer(mw=6, mh=4), _layer(name="out", mw=5, mh=3, thresholds=None))),
     "Layer out: mw (5) must equal the mh of layer fc0 (4)"),
    (dict(layers=(_layer(mw=6, mh=4), _layer(name="out", mw=4, mh=3))),
     "Layer out: the last layer must be an output layer (thresholds None)"),
    (dict(layers=(_layer(mw=6, mh=4, thresholds=None), _layer(name="out", mw=4, mh=3, thresholds=None))),
     "Layer fc0: only the last layer may lack thresholds"),
    (dict(layers=(_layer(mw=6, mh=4), _layer(name="fc0", mw=4, mh=3, thresholds=None))),
     "Layer names must be unique, 'fc0' appears 2 times"),
    (dict(popcount_levels_per_stage=-1), "popcount_levels_per_stage must be at least 0, not -1"),
])
def test_accelerator_rejects(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message) + r"\Z"):
        _accel(**kwargs)


def test_accelerator_properties():
    spec = _accel(planes=(5, 7), samples_per_frame=3, pixels_per_beat=3)
    assert (spec.input_bits, spec.input_beats, spec.classes, spec.bits_per_sample) == (6, 1, 3, 2)
