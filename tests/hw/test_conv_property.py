"""Property: random small conv/pool/dense graphs and foldings, lowered and simulated, equal reference.py.

Each example draws an integer IR graph (odd map sizes, padding 0/1, pad bit 0/1, 1..40 channels,
optional pools, non-dividing folds, a bit-plane or an integer-input first layer), lowers it with
the compiler's own lowering, simulates the Amaranth accelerator on random pixels and compares
every class popcount with ``reference.run`` and every frame's first input and output handshake
with the cycle model. Folds are drawn as row groups and column folds (1..3 each) so every
example simulates in seconds.
"""

from __future__ import annotations

import numpy as np
from hwsim import assert_frames_as_modelled, run_stream
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bnn2fpga import reference
from bnn2fpga.backend.folding import Folding
from bnn2fpga.backend.lowering import to_spec
from bnn2fpga.hw.accelerator import Accelerator
from bnn2fpga.hw.spec import ceil_div
from bnn2fpga.ir.graph import BinaryConv, BinaryDense, Graph, InputSpec, MaxPool, Output


@st.composite
def graphs(draw: st.DrawFn) -> tuple[Graph, Folding]:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    channels = draw(st.integers(1, 2))
    planes = tuple(sorted(draw(st.sets(st.integers(0, 7), min_size=1, max_size=3))))
    integer = draw(st.booleans())  # integer-input first layer: C integers of the kept planes
    h, w = draw(st.integers(2, 13)), draw(st.integers(2, 9))
    c = channels if integer else channels * len(planes)
    scale = sum(1 << p for p in planes) if integer else 1  # pc_max = MW * scale for the first layer
    layers: list = []
    folds: list[tuple[str, int, int]] = []

    def fold(name: str, mh: int, mw: int) -> None:
        groups, cols = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        folds.append((name, ceil_div(mh, min(groups, mh)), ceil_div(mw, min(cols, mw))))

    def thresholds(mh: int, pc_max: int) -> np.ndarray:
        spread = max(2, pc_max // 8)
        t = rng.integers(max(0, pc_max // 2 - spread), pc_max // 2 + spread + 1, size=mh)
        t[rng.random(mh) < 0.1] = 0  # constant channels too
        t[rng.random(mh) < 0.05] = pc_max + 1
        return t.astype(np.int64)

    for i in range(draw(st.integers(1, 2))):
        k = draw(st.integers(1, min(3, h + 2, w + 2)))
        p = draw(st.integers(0, 1))
        if h + 2 * p < k or w + 2 * p < k:
            p = 1
        out = draw(st.integers(1, 40))
        weights = rng.integers(0, 2, size=(out, k, k, c), dtype=np.uint8)
        first = integer and i == 0
        conv = BinaryConv(f"conv{i}", weights, (h, w, c), p, draw(st.integers(0, 1)),
                          thresholds=thresholds(out, k * k * c * (scale if first else 1)),
                          direction=np.ones(out, np.int8), input_planes=planes if first else None)
        layers.append(conv)
        fold(conv.name, out, k * k * c)
        h, w, c = conv.out_shape
        if min(h, w) >= 2 and draw(st.booleans()):
            size = draw(st.integers(2, min(3, h, w)))
            layers.append(MaxPool(f"pool{i}", size, (h, w, c)))
            h, w = h // size, w // size
    mw = h * w * c
    if draw(st.booleans()):
        mh = draw(st.integers(1, 24))
        layers.append(BinaryDense("dense", rng.integers(0, 2, size=(mh, mw), dtype=np.uint8),
                                  thresholds=thresholds(mh, mw), direction=np.ones(mh, np.int8)))
        fold("dense", mh, mw)
        mw = mh
    classes = draw(st.integers(2, 5))
    layers.append(Output("output", rng.integers(0, 2, size=(classes, mw), dtype=np.uint8),
                         logit_table=np.zeros((classes, mw + 1), np.float32)))
    fold("output", classes, mw)
    inp = InputSpec(channels, layers[0].in_shape[0], layers[0].in_shape[1], 8, planes,
                    "integer" if integer else "planes")
    return Graph(inp, tuple(layers), name="prop"), Folding(channels, tuple(folds))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(), st.sampled_from([(1.0, 1.0), (0.6, 0.5)]))
def test_random_conv_graph_lowered_equals_reference(drawn, pressure):
    graph, folding = drawn
    spec = to_spec(graph, folding, popcount_levels_per_stage=2)
    i = graph.input
    frames = 3
    pixels = np.random.default_rng(7).integers(0, 256, size=(frames, i.channels, i.height, i.width), dtype=np.uint8)
    expected = reference.run(graph, pixels).popcounts
    hwc = pixels.transpose(0, 2, 3, 1).reshape(frames, -1)
    beats = [int.from_bytes(bytes(f[b:b + i.channels]), "little") for f in hwc
             for b in range(0, hwc.shape[1], i.channels)]
    valid, ready = pressure
    run = run_stream(Accelerator(spec), beats, expected.size, valid_prob=valid, ready_prob=ready, seed=3,
                     max_cycles=2_000_000)
    assert [o & 0xFFFFFFFF for o in run.outputs] == expected.reshape(-1).tolist()
    if pressure == (1.0, 1.0):
        assert_frames_as_modelled(spec, run.in_cycles, run.out_cycles, frames)
