"""Hypothesis strategies shared by the property tests: small random integer IR graphs and foldings."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from bnn2fpga.backend.folding import Folding
from bnn2fpga.hw.spec import ceil_div
from bnn2fpga.ir.graph import BinaryConv, BinaryDense, Concat, Graph, InputSpec, MaxPool, Output, leaves


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


def _random_conv(rng: np.random.Generator, name: str, shape: tuple[int, int, int], out: int, kernel: int,
                 padding: int) -> BinaryConv:
    h, w, c = shape
    pc = kernel * kernel * c
    t = rng.integers(max(0, pc // 2 - 2), pc // 2 + 3, size=out).astype(np.int64)
    return BinaryConv(name, rng.integers(0, 2, size=(out, kernel, kernel, c), dtype=np.uint8), shape, padding,
                      int(rng.integers(0, 2)), thresholds=t, direction=np.ones(out, np.int8))


def branch_graph(seed: int, *, height: int = 6, width: int = 5, channels: int = 1, planes: tuple[int, ...] = (6, 7),
                 paths: tuple[tuple[tuple[int, int, int], ...], ...] = (((5, 3, 1),), (), ((3, 1, 0),)),
                 nested: bool = False, pool: int = 2, dense: int = 7, classes: int = 3,
                 folds: int = 2) -> tuple[Graph, Folding]:
    """A conv, a branch (each path a chain of (out, kernel, padding) convs that keep the map's size; an
    empty path is a skip; ``nested``: a branch of a conv and a skip at the end of path 0), a pool, a
    dense layer and the output; every layer folded into ``folds`` row groups and column folds."""
    rng = np.random.default_rng(seed)
    inp = InputSpec(channels, height, width, 8, planes)
    shape = (height, width, channels * len(planes))
    stem = _random_conv(rng, "stem", shape, 4, 3, 1)
    shape = stem.out_shape
    layers: list = [stem]
    built = []
    for i, path in enumerate(paths):
        at = shape
        chain: list = []
        for j, (out, k, p) in enumerate(path):
            chain.append(_random_conv(rng, f"b{i}_conv{j}", at, out, k, p))
            at = chain[-1].out_shape
        if nested and i == 0:
            inner = _random_conv(rng, "b0_inner", at, 2, 3, 1)
            chain.append(Concat("b0_join", at, ((inner,), ())))
        built.append(tuple(chain))
    join = Concat("join", shape, tuple(built))
    layers.append(join)
    shape = join.out_shape
    if pool > 1:
        layers.append(MaxPool("pool", pool, shape))
        shape = layers[-1].out_shape
    mw = int(np.prod(shape))
    layers.append(BinaryDense("dense", rng.integers(0, 2, size=(dense, mw), dtype=np.uint8),
                              thresholds=rng.integers(mw // 2 - 2, mw // 2 + 3, size=dense).astype(np.int64),
                              direction=np.ones(dense, np.int8)))
    layers.append(Output("output", rng.integers(0, 2, size=(classes, dense), dtype=np.uint8),
                         logit_table=np.zeros((classes, dense + 1), np.float32)))
    graph = Graph(inp, tuple(layers), name="branch")
    folded = []
    for layer in leaves(graph.layers):
        if isinstance(layer, BinaryConv | BinaryDense | Output):
            mh, mw = layer.mh, layer.mw
            folded.append((layer.name, ceil_div(mh, min(folds, mh)), ceil_div(mw, min(folds, mw))))
    return graph, Folding(channels, tuple(folded))


@st.composite
def branch_graphs(draw: st.DrawFn) -> tuple[Graph, Folding]:
    """``branch_graph`` with 2..3 paths of 0..2 convs each (1x1, or 3x3 padded), maybe a nested branch."""
    conv = st.tuples(st.integers(1, 6), st.sampled_from([(1, 0), (3, 1)])).map(lambda t: (t[0], *t[1]))
    paths = draw(st.lists(st.lists(conv, max_size=2).map(tuple), min_size=2, max_size=3).map(tuple))
    return branch_graph(draw(st.integers(0, 2**32 - 1)), height=draw(st.integers(3, 7)),
                        width=draw(st.integers(3, 7)), channels=draw(st.integers(1, 2)), paths=paths,
                        nested=draw(st.booleans()), pool=draw(st.sampled_from([1, 2])),
                        folds=draw(st.integers(1, 3)))
