"""Lowering: an integer IR Graph (one comparison direction) + a Folding -> the RTL library's AcceleratorSpec.

One rule per IR node (``_RULES``): a dense layer becomes an MVTU; a convolution a
sliding-window unit (unless it is 1x1 without padding, whose window is the pixel)
and a conv MVTU over its OH*OW windows; a max-pool a pool engine; the first dense
layer after a feature map larger than one pixel gets the flatten hand-off in front.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ..hw.branch import BranchSpec
from ..hw.mvtu import full_rate_slots
from ..hw.pool import PoolSpec
from ..hw.spec import MUX_FOLDS, AcceleratorSpec, DenseLayerSpec
from ..hw.stream import FifoSpec, FlattenSpec
from ..hw.timing import branch_fifo_depths, settle_branch_fifos
from ..hw.window import WindowSpec
from ..ir.graph import BinaryConv, BinaryDense, Concat, Graph, Layer, MaxPool, Output, leaves
from .folding import Folding, LayerShape


class UnsupportedGraph(ValueError):
    pass


def check_supported(graph: Graph) -> None:
    """Refuse, naming the layer and what would work, a graph the hardware cannot express."""
    for layer in leaves(graph.layers):
        if isinstance(layer, BinaryDense | BinaryConv) and (layer.direction is None or (layer.direction != 1).any()):
            raise UnsupportedGraph(f"layer {layer.name}: run the hardware passes first (normalize_thresholds)")
        if isinstance(layer, MaxPool):
            h, w, _ = layer.in_shape
            if layer.size > min(h, w):
                raise UnsupportedGraph(f"layer {layer.name}: a {layer.size}x{layer.size} max-pool does not fit its "
                                       f"{h}x{w} input; use a pool size of at most {min(h, w)}")


def layer_shapes(graph: Graph) -> list[LayerShape]:
    """The folded layers (dense, conv, output) with their matrix and vectors per frame, those on a
    branch's paths in path order."""
    shapes: list[LayerShape] = []
    _chain_shapes(graph, graph.layers, shapes, top=True)
    return shapes


def _chain_shapes(graph: Graph, layers: tuple[Layer, ...], shapes: list[LayerShape], *, top: bool) -> int | None:
    """Append the folded layers of a chain; the channels of the map it leaves (None: no map since
    its last folded layer, a flatten in front of a dense layer would collect nothing new)."""
    channels = None  # the map's channels in front of a dense layer of a conv network (a flatten)
    for k, layer in enumerate(layers):
        planes = len(layer.input_planes) if getattr(layer, "input_planes", None) else 1
        if isinstance(layer, Concat):
            for path in layer.paths:
                _chain_shapes(graph, path, shapes, top=False)
            channels = layer.out_shape[2]
        elif isinstance(layer, BinaryConv) and whole_map_conv(layer) and layer.mw > layer.in_shape[2]:
            shapes.append(LayerShape(layer.name, layer.mh, layer.mw, 1, planes, collect_bits=layer.in_shape[2]))
            channels = None
        elif isinstance(layer, BinaryConv):
            oh, ow, channels = layer.out_shape
            shapes.append(LayerShape(layer.name, layer.mh, layer.mw, oh * ow, planes))
        elif isinstance(layer, MaxPool):
            continue
        elif isinstance(layer, BinaryDense | Output):
            # The first dense layer collects its vector from beats (hw/vecbuf.py): the input's
            # pixels (bits per pixel per plane x pixels per beat), or a flattened map's pixels.
            if top and k == 0:
                shape = LayerShape(layer.name, layer.mh, layer.mw, 1, planes,
                                   collect_bits=layer.mw // samples_per_frame(graph), collect_per_pixel=True)
            elif channels is not None and layer.mw > channels:
                shape = LayerShape(layer.name, layer.mh, layer.mw, 1, planes, collect_bits=channels)
            else:
                shape = LayerShape(layer.name, layer.mh, layer.mw, 1, planes)
            channels = None
            shapes.append(shape)
    return channels


def samples_per_frame(graph: Graph) -> int:
    i = graph.input
    return i.channels * i.height * i.width


def pixel_stream(graph: Graph) -> bool:
    """Whether the first layer takes the input as a pixel stream (conv networks) or a whole frame."""
    return not isinstance(graph.layers[0], BinaryDense | Output)


def fixed_cycles(graph: Graph) -> int:
    """Cycles per frame no folding can beat: the input pixels, each window unit's padded positions
    and each pool's input pixels (one per cycle). 1 for a dense network, whose input width is folded."""
    if not pixel_stream(graph):
        return 1
    inp = graph.input
    floor = inp.height * inp.width
    for layer in leaves(graph.layers):
        if isinstance(layer, BinaryConv) and (layer.kernel > 1 or layer.padding > 0):
            h, w, _ = layer.in_shape
            floor = max(floor, (h + 2 * layer.padding) * (w + 2 * layer.padding))
        elif isinstance(layer, MaxPool):
            h, w, _ = layer.in_shape
            floor = max(floor, h * w)
    return floor


def module_name(graph: Graph) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", graph.name) or "bnn"
    return f"bnn2fpga_{name}"


@dataclass
class _Stream:
    """What flows out of the engines lowered so far: an (H, W, C) map, one pixel per beat."""

    height: int
    width: int
    channels: int
    from_input: bool = True  # the pixels come straight from the input port (always offered)


def whole_map_conv(layer: BinaryConv) -> bool:
    """A convolution whose one window is the whole map (kernel = map size, no padding, 1x1 output).

    It is a dense layer over the flattened map (the window's bits are the map's in HWC order), and is
    lowered as one: a flatten and an MVTU that collects the map's pixels into memory, instead of a
    window unit that holds the map in flip-flops and an MVTU that reads it through a wide mux."""
    h, w, _ = layer.in_shape
    return (layer.padding == 0 and layer.kernel == h == w and layer.input_planes is None)


@dataclass(frozen=True)
class _Pipeline:
    """The pipeline parameters every engine is lowered with (the folding's, or the build's defaults)."""

    levels_per_stage: int  # popcount adder levels between registers
    mux_folds: int         # folds up to which a register-held vector is sliced by a mux


def _lower_conv(layer: BinaryConv, stream: _Stream, folding: Folding, pipe: _Pipeline) -> list:
    h, w, _ = layer.in_shape
    engines: list = []
    if whole_map_conv(layer):
        pe, simd = folding.of(layer.name)
        oc = layer.out_shape[2]
        if h * w > 1:
            engines.append(FlattenSpec(f"{layer.name}_flatten", stream.channels, h * w))
        engines.append(DenseLayerSpec(layer.name, layer.weights.reshape(oc, -1), layer.thresholds, pe, simd,
                                      mux_folds=pipe.mux_folds))
        stream.height, stream.width, stream.channels, stream.from_input = 1, 1, oc, False
        return engines
    if layer.kernel > 1 or layer.padding > 0:
        if not stream.from_input:
            # Lets the producer run into the next frame while this window unit finishes the
            # last rows of the current one (it needs K-1 rows and K pixels before a window).
            depth = (layer.kernel - 1) * (w + 2 * layer.padding) + layer.kernel
            engines.append(FifoSpec(f"{layer.name}_fifo", stream.channels, max(2, depth), h * w))
        # stream.channels: the bits of a pixel, C*P planes for an integer-input layer (the
        # pad pixel is then every kept plane at the pad bit, as the model pads)
        engines.append(WindowSpec(f"{layer.name}_window", h, w, stream.channels, layer.kernel, layer.padding,
                                  layer.pad_bit))
    oh, ow, oc = layer.out_shape
    pe, simd = folding.of(layer.name)
    mvtu = DenseLayerSpec(layer.name, layer.weights.reshape(oc, -1), layer.thresholds, pe, simd, vectors=oh * ow,
                          planes=layer.input_planes, mux_folds=pipe.mux_folds)
    engines.append(replace(mvtu, out_slots=full_rate_slots(mvtu, pipe.levels_per_stage)))
    stream.height, stream.width, stream.channels, stream.from_input = oh, ow, oc, False
    return engines


def _lower_pool(layer: MaxPool, stream: _Stream, folding: Folding, pipe: _Pipeline) -> list:
    h, w, c = layer.in_shape
    stream.height, stream.width, stream.from_input = h // layer.size, w // layer.size, False
    return [] if layer.size == 1 else [PoolSpec(layer.name, h, w, c, layer.size)]


def _lower_dense(layer: BinaryDense | Output, stream: _Stream, folding: Folding, pipe: _Pipeline) -> list:
    engines: list = []
    pixels = stream.height * stream.width
    if pixels > 1:
        engines.append(FlattenSpec(f"{layer.name}_flatten", stream.channels, pixels))
    pe, simd = folding.of(layer.name)
    thresholds = layer.thresholds if isinstance(layer, BinaryDense) else None
    planes = layer.input_planes if isinstance(layer, BinaryDense) else None
    engines.append(DenseLayerSpec(layer.name, layer.weights, thresholds, pe, simd, planes=planes,
                                  mux_folds=pipe.mux_folds))
    stream.height, stream.width, stream.channels = 1, 1, layer.mh
    return engines


def _lower_concat(layer: Concat, stream: _Stream, folding: Folding, pipe: _Pipeline) -> list:
    """A branch: each path lowered as a chain of its own, behind a FIFO sized from the paths' cycle
    models (``timing.branch_fifo_depths``), and the join."""
    paths, widths = [], []
    for path in layer.paths:
        sub = _Stream(stream.height, stream.width, stream.channels, from_input=False)
        engines: list = []
        for node in path:
            engines += _RULES[type(node)](node, sub, folding, pipe)
        paths.append(engines)
        widths.append(sub.channels)
    pixels = stream.height * stream.width
    # A path that starts at a window unit has the window's FIFO in front already: the path's FIFO
    # takes its place, as deep as the deeper of the two.
    window_fifos = [engines.pop(0).depth if engines and isinstance(engines[0], FifoSpec) else 0 for engines in paths]
    depths = branch_fifo_depths(paths, pixels, pipe.levels_per_stage)
    fifos = [FifoSpec(f"{layer.name}_p{i}_fifo", stream.channels, max(depth, window), pixels)
             for i, (depth, window) in enumerate(zip(depths, window_fifos, strict=True))]
    spec = BranchSpec(layer.name, stream.channels, pixels,
                      tuple((fifo, *engines) for fifo, engines in zip(fifos, paths, strict=True)))
    stream.height, stream.width = layer.out_shape[:2]
    stream.channels, stream.from_input = sum(widths), False
    return [spec]


_RULES = {BinaryConv: _lower_conv, MaxPool: _lower_pool, BinaryDense: _lower_dense, Output: _lower_dense,
          Concat: _lower_concat}


def to_spec(graph: Graph, folding: Folding, *, popcount_levels_per_stage: int = 2,
            mux_folds: int = MUX_FOLDS) -> AcceleratorSpec:
    """The accelerator of ``graph`` under ``folding``. The pipeline parameters the folding records
    (``popcount_levels_per_stage``, ``mux_folds``) win over the defaults given here, which the build
    chooses from the part's family and clock."""
    check_supported(graph)
    pipe = _Pipeline(
        popcount_levels_per_stage if folding.popcount_levels_per_stage is None else folding.popcount_levels_per_stage,
        mux_folds if folding.mux_folds is None else folding.mux_folds)
    inp = graph.input
    # A dense network's first layer reads the whole frame through the deserializer: no flatten.
    pixel_bits = inp.channels * len(inp.planes)  # the slicer's pixel, whatever the first layer reads
    stream = _Stream(inp.height, inp.width, pixel_bits) if pixel_stream(graph) else _Stream(1, 1, 0)
    engines = []
    for layer in graph.layers:
        engines += _RULES[type(layer)](layer, stream, folding, pipe)
    return settle_branch_fifos(AcceleratorSpec(
        name=module_name(graph), channels=inp.channels, samples_per_frame=samples_per_frame(graph),
        planes=inp.planes, pixels_per_beat=folding.pixels_per_beat, layers=tuple(engines),
        popcount_levels_per_stage=pipe.levels_per_stage, input_table=inp.table))
