"""Lowering: an integer IR Graph (one comparison direction) + a Folding -> the RTL library's AcceleratorSpec."""

from __future__ import annotations

import re

from ..hw.spec import AcceleratorSpec, DenseLayerSpec
from ..ir.graph import BinaryConv, BinaryDense, Graph, MaxPool, Output
from .folding import Folding, LayerShape


class UnsupportedGraph(ValueError):
    pass


def check_dense(graph: Graph) -> None:
    convs = [layer.name for layer in graph.layers if isinstance(layer, BinaryConv | MaxPool)]
    if convs:
        raise UnsupportedGraph(f"network {graph.name} has convolution/pool layers ({', '.join(convs)}); "
                               "bnn2fpga build generates dense (fully connected) accelerators so far. "
                               "Use a tfc/sfc/lfc model, or bnn2fpga eval for the conv model in software")
    for layer in graph.layers:
        if isinstance(layer, BinaryDense) and (layer.direction is None or (layer.direction != 1).any()):
            raise UnsupportedGraph(f"layer {layer.name}: run the hardware passes first (normalize_thresholds)")


def layer_shapes(graph: Graph) -> list[LayerShape]:
    return [LayerShape(layer.name, layer.mh, layer.mw) for layer in graph.layers
            if isinstance(layer, BinaryDense | Output)]


def samples_per_frame(graph: Graph) -> int:
    i = graph.input
    return i.channels * i.height * i.width


def module_name(graph: Graph) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", graph.name) or "bnn"
    return f"bnn2fpga_{name}"


def to_spec(graph: Graph, folding: Folding, *, popcount_levels_per_stage: int = 2) -> AcceleratorSpec:
    check_dense(graph)
    layers = []
    for layer in graph.layers:
        assert isinstance(layer, BinaryDense | Output)
        pe, simd = folding.of(layer.name)
        thresholds = layer.thresholds if isinstance(layer, BinaryDense) else None
        layers.append(DenseLayerSpec(layer.name, layer.weights, thresholds, pe, simd))
    return AcceleratorSpec(
        name=module_name(graph), channels=graph.input.channels, samples_per_frame=samples_per_frame(graph),
        planes=graph.input.planes, pixels_per_beat=folding.pixels_per_beat, layers=tuple(layers),
        popcount_levels_per_stage=popcount_levels_per_stage)
