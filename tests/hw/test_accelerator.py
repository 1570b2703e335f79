"""The whole accelerator against the numpy model, and measured cycles against timing.predict."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hwsim import accelerator_model, random_spec, run_stream

from bnn2fpga.hw.accelerator import Accelerator
from bnn2fpga.hw.mvtu import linked_inputs
from bnn2fpga.hw.timing import frame_times, predict

SPECS = {
    # 6x6 grey, 3 planes, 4 px/beat; non-dividing foldings; the first layer is the bottleneck.
    "grey": dict(channels=1, pixels=36, planes=(5, 6, 7), ppb=4, widths=[24, 17, 10],
                 folds=[(4, 27), (5, 6), (3, 7)]),
    # 4x4 RGB, 1 plane, 1 px/beat: the input stream is the bottleneck; fully parallel output layer.
    "rgb": dict(channels=3, pixels=48, planes=(7,), ppb=1, widths=[9, 5], folds=[(2, 16), (5, 9)]),
    # Deep chain, tiny layers (period padded to the pipeline), popcount register after every level.
    "deep": dict(channels=1, pixels=8, planes=(0, 3, 6, 7), ppb=8, widths=[11, 7, 13, 3],
                 folds=[(11, 32), (1, 1), (13, 7), (3, 13)], levels_per_stage=1),
    # Hidden layers linked to their producers (row groups written into the consumer's buffer):
    # 4-bit beats into 8-bit rows, 2-bit beats into 12-bit rows (a short last row).
    "linked": dict(channels=1, pixels=16, planes=(7,), ppb=4, widths=[96, 60, 10],
                   folds=[(4, 16), (2, 8), (1, 12)]),
    # 3-bit beats into 6-bit rows, 1-bit beats into 9-bit rows.
    "linked_odd": dict(channels=1, pixels=16, planes=(6, 7), ppb=2, widths=[72, 63, 10],
                       folds=[(3, 16), (1, 6), (1, 9)]),
}
LINKED = {"linked": {1: 4, 2: 2}, "linked_odd": {1: 3, 2: 1}}


def _spec(key: str, seed: int = 11):
    return random_spec(seed, name=key, **SPECS[key])


def _frames(spec, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=spec.samples_per_frame, dtype=np.uint8) for _ in range(n)]


def _beats(spec, frames: list[np.ndarray]) -> list[int]:
    ppb = spec.pixels_per_beat
    return [int.from_bytes(bytes(f[b:b + ppb]), "little") for f in frames
            for b in range(0, spec.samples_per_frame, ppb)]


@pytest.mark.parametrize("key", list(SPECS))
@pytest.mark.parametrize(("valid", "ready"), [(0.7, 0.6), (0.3, 0.9), (0.95, 0.1)])
def test_accelerator_bit_exact_under_backpressure(key, valid, ready):
    spec = _spec(key)
    frames = _frames(spec, 5, seed=len(key))
    expected = [v for f in frames for v in accelerator_model(spec, f)]
    run = run_stream(Accelerator(spec), _beats(spec, frames), len(expected), valid_prob=valid,
                     ready_prob=ready, seed=13)
    assert [o & 0xFFFFFFFF for o in run.outputs] == expected
    classes = spec.classes
    assert [o >> 32 for o in run.outputs] == [int(i % classes == classes - 1) for i in range(len(expected))]
    assert not run.trailing_valid


@pytest.mark.parametrize("key", list(SPECS))
def test_measured_cycles_equal_prediction(key):
    spec = _spec(key)
    n = 8
    frames = _frames(spec, n, seed=1)
    expected = [v for f in frames for v in accelerator_model(spec, f)]
    run = run_stream(Accelerator(spec), _beats(spec, frames), len(expected))
    assert [o & 0xFFFFFFFF for o in run.outputs] == expected
    nb, classes = spec.input_beats, spec.classes
    first_in = [run.in_cycles[k * nb] for k in range(n)]
    first_out = [run.out_cycles[k * classes] for k in range(n)]
    timing = predict(spec)
    assert first_out[0] - first_in[0] == timing.latency
    assert first_out[-1] - first_out[-2] == timing.initiation_interval
    assert first_out[-2] - first_out[-3] == timing.initiation_interval
    # The recurrence reproduces every handshake of every frame, transient included.
    want_in, want_out = frame_times(spec, n)
    assert [t - first_in[0] for t in first_in] == want_in
    assert [t - first_in[0] for t in first_out] == want_out


@pytest.mark.parametrize(("key", "channels", "ppb"), [("grey", 1, 4), ("rgb", 3, 1), ("rgb", 3, 4)])
def test_input_table_maps_every_sample_by_its_channel(key, channels, ppb):
    """The table in front of the slicer: the accelerator on pixels equals the table-less one on codes,
    lanes of fixed channel (PPB a multiple of C) and lanes whose channel moves beat by beat (RGB at 4)."""
    params = {**SPECS[key], "channels": channels, "ppb": ppb}
    spec = random_spec(11, name=key, **params)
    rng = np.random.default_rng(5)
    rows = [tuple(int(v) for v in rng.permutation(256)) for _ in range(channels)]
    tabled = dataclasses.replace(spec, input_table=tuple(rows))
    frames = _frames(spec, 4, seed=9)
    codes = [np.array([rows[s % channels][v] for s, v in enumerate(f)], dtype=np.uint8) for f in frames]
    expected = [v for c in codes for v in accelerator_model(spec, c)]
    assert expected != [v for f in frames for v in accelerator_model(spec, f)]  # the table matters
    run = run_stream(Accelerator(tabled), _beats(spec, frames), len(expected), valid_prob=0.8, ready_prob=0.7,
                     seed=4)
    assert [o & 0xFFFFFFFF for o in run.outputs] == expected
    assert predict(tabled) == predict(spec)  # no cycle added


def test_timing_formulas():
    spec = _spec("grey")
    timing = predict(spec)
    # Layer cycles ceil(MH/PE)*ceil(MW/SIMD): 6*4, 4*3, 4*3 (widths 24, 17, 10).
    assert timing.per_layer_cycles == [24, 16, 12]
    assert (timing.input_cycles, timing.output_cycles) == (9, 10)
    assert timing.initiation_interval == 24
    # Depth D = popcount stages + 4: SIMD 27 -> 5 levels -> 3 stages; 6 -> 2 -> 1; 7 -> 3 -> 2;
    # then the input skid buffer, the output skid buffer and the output stage, a cycle each.
    assert timing.latency == 9 + (24 + 7) + (16 + 5) + (12 + 6) + 4


def test_interval_is_steady_for_long_runs():
    for key in SPECS:
        spec = _spec(key)
        _, out = frame_times(spec, 60)
        diffs = {b - a for a, b in zip(out[20:], out[21:], strict=False)}
        assert diffs == {predict(spec).initiation_interval}, key


@pytest.mark.parametrize("key", list(LINKED))
def test_linked_specs_link_their_hidden_layers(key):
    """The linked specs above exercise the linked hand-off only while the compiler links them."""
    spec = _spec(key)
    assert linked_inputs(spec) == LINKED[key]
    accel = Accelerator(spec)
    assert [e.links_out for e in accel.engines] == [k + 1 in LINKED[key] for k in range(len(spec.layers))]
