"""Hypothesis strategies shared by the property tests: small random integer IR graphs and foldings."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from bnn2fpga.backend.folding import Folding
from bnn2fpga.hw.spec import ceil_div
from bnn2fpga.ir.graph import BinaryConv, BinaryDense, Graph, InputSpec, MaxPool, Output


@st.composite
def graphs(draw: st.DrawFn, *, max_channels: int = 2, heights: tuple[int, int] = (2, 13),
           widths: tuple[int, int] = (2, 9), max_conv_out: int = 40, max_dense_out: int = 24,
           always_conv: bool = True, few_folds: bool = True) -> tuple[Graph, Folding]:
    """Convs (odd map sizes, padding 0/1, pad bit 0/1), optional pools with a floor, an optional dense
    layer, the output layer; a bit-plane or an integer-input first layer; folds that divide nothing.

    ``few_folds``: each layer folds into 1..3 row groups and column folds, so a simulation of the
    Amaranth design takes seconds; otherwise PE and SIMD are anything from 1 to the layer's size.
    ``always_conv=False`` also draws dense-only networks, whose frames arrive several pixels a beat."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    channels = draw(st.integers(1, max_channels))
    planes = tuple(sorted(draw(st.sets(st.integers(0, 7), min_size=1, max_size=3))))
    integer = draw(st.booleans())  # integer-input first layer: C integers of the kept planes
    h, w = draw(st.integers(*heights)), draw(st.integers(*widths))
    c = channels if integer else channels * len(planes)
    scale = sum(1 << p for p in planes) if integer else 1  # pc_max = MW * scale for the first layer
    layers: list = []
    folds: list[tuple[str, int, int]] = []

    def fold(name: str, mh: int, mw: int) -> None:
        if few_folds:
            groups, cols = draw(st.integers(1, 3)), draw(st.integers(1, 3))
            folds.append((name, ceil_div(mh, min(groups, mh)), ceil_div(mw, min(cols, mw))))
        else:
            folds.append((name, draw(st.integers(1, mh)), draw(st.integers(1, mw))))

    def thresholds(mh: int, pc_max: int) -> np.ndarray:
        spread = max(2, pc_max // 8)
        t = rng.integers(max(0, pc_max // 2 - spread), pc_max // 2 + spread + 1, size=mh)
        t[rng.random(mh) < 0.1] = 0  # constant channels too
        t[rng.random(mh) < 0.05] = pc_max + 1
        return np.minimum(t, pc_max + 1).astype(np.int64)

    conv = always_conv or draw(st.booleans())
    for i in range(draw(st.integers(1, 2)) if conv else 0):
        k = draw(st.integers(1, min(3, h + 2, w + 2)))
        p = draw(st.integers(0, 1))
        if h + 2 * p < k or w + 2 * p < k:
            p = 1
        out = draw(st.integers(1, max_conv_out))
        first = integer and i == 0
        layer = BinaryConv(f"conv{i}", rng.integers(0, 2, size=(out, k, k, c), dtype=np.uint8), (h, w, c), p,
                           draw(st.integers(0, 1)), thresholds=thresholds(out, k * k * c * (scale if first else 1)),
                           direction=np.ones(out, np.int8), input_planes=planes if first else None)
        layers.append(layer)
        fold(layer.name, out, k * k * c)
        h, w, c = layer.out_shape
        if min(h, w) >= 2 and draw(st.booleans()):
            size = draw(st.integers(2, min(3, h, w)))
            layers.append(MaxPool(f"pool{i}", size, (h, w, c)))
            h, w = h // size, w // size
    mw = h * w * c
    if not conv or draw(st.booleans()):
        mh = draw(st.integers(1, max_dense_out))
        first = integer and not layers
        layers.append(BinaryDense("dense", rng.integers(0, 2, size=(mh, mw), dtype=np.uint8),
                                  thresholds=thresholds(mh, mw * (scale if first else 1)),
                                  direction=np.ones(mh, np.int8), input_planes=planes if first else None))
        fold("dense", mh, mw)
        mw = mh
    classes = draw(st.integers(2, 5))
    layers.append(Output("output", rng.integers(0, 2, size=(classes, mw), dtype=np.uint8),
                         logit_table=np.zeros((classes, mw + 1), np.float32)))
    fold("output", classes, mw)
    height, width = layers[0].in_shape[:2] if conv else (h, w)
    inp = InputSpec(channels, height, width, 8, planes, "integer" if integer else "planes")
    samples = channels * height * width
    divisors = [d for d in range(1, samples + 1) if samples % d == 0][:6]
    ppb = channels if conv else draw(st.sampled_from(divisors))
    return Graph(inp, tuple(layers), name="prop"), Folding(ppb, tuple(folds))
