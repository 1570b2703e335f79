"""Verifier: structural invariants of a Graph, naming the offending layer."""

from __future__ import annotations

import numpy as np

from .graph import BinaryConv, BinaryDense, Concat, Graph, Layer, MaxPool, Output, nodes


class IRError(ValueError):
    pass


def _bits(name: str, a: np.ndarray) -> None:
    if a.dtype != np.uint8 or (a.size and a.max() > 1):
        raise IRError(f"layer {name}: weights must be uint8 bits 0/1")


def verify(graph: Graph) -> Graph:
    if not graph.layers or not isinstance(graph.layers[-1], Output):
        raise IRError("graph must end with an Output layer")
    first = graph.layers[0]
    if graph.input.encoding == "integer" and getattr(first, "input_planes", None) is None:
        raise IRError(f"layer {first.name}: an integer-encoded input needs an integer-input first layer "
                      "(conv or dense)")
    _chain(graph, graph.layers, graph.input.shape, top=True)
    return graph


def _chain(graph: Graph, layers: tuple[Layer, ...], shape: tuple[int, int, int], *, top: bool) -> tuple[int, int, int]:
    """Check a chain of layers reading a map of ``shape``; the shape it leaves. A branch's path
    (``top`` False) holds only layers that keep a map: convolutions, max-pools, branches."""
    for i, layer in enumerate(layers):
        name = layer.name
        if not top and not isinstance(layer, BinaryConv | MaxPool | Concat):
            raise IRError(f"layer {name}: a branch's path holds convolutions, max-pools and branches, "
                          f"not {type(layer).__name__}; put dense layers after the branch's join")
        if isinstance(layer, Output) and i != len(layers) - 1:
            raise IRError(f"layer {name}: Output must be last")
        if isinstance(layer, Concat):
            if layer.in_shape != shape:
                raise IRError(f"layer {name}: expects input {layer.in_shape}, receives {shape}")
            if len(layer.paths) < 2:
                raise IRError(f"layer {name}: a branch needs at least two paths, not {len(layer.paths)}")
            outs = [_chain(graph, path, shape, top=False) for path in layer.paths]
            if len({out[:2] for out in outs}) != 1:
                raise IRError(f"layer {name}: its paths end in maps of different sizes "
                              f"{[out[:2] for out in outs]}; a concatenation joins maps of one height and width")
            shape = layer.out_shape
        elif isinstance(layer, BinaryConv):
            if layer.in_shape != shape:
                raise IRError(f"layer {name}: expects input {layer.in_shape}, receives {shape}")
            if layer.weights.ndim != 4 or layer.weights.shape[3] != shape[2]:
                raise IRError(f"layer {name}: weights {layer.weights.shape} do not match {shape[2]} input channels")
            if layer.pad_bit not in (0, 1) or layer.padding < 0:
                raise IRError(f"layer {name}: bad padding {layer.padding} / pad bit {layer.pad_bit}")
            if min(layer.out_shape[:2]) < 1:
                raise IRError(f"layer {name}: output map {layer.out_shape} is empty")
            _bits(name, layer.weights)
            shape = layer.out_shape
        elif isinstance(layer, MaxPool):
            if layer.in_shape != shape:
                raise IRError(f"layer {name}: expects input {layer.in_shape}, receives {shape}")
            if layer.size < 1 or min(layer.out_shape[:2]) < 1:
                raise IRError(f"layer {name}: pool size {layer.size} does not fit {shape}")
            shape = layer.out_shape
        elif isinstance(layer, BinaryDense | Output):
            fan_in = int(np.prod(shape))
            if layer.weights.ndim != 2 or layer.mw != fan_in:
                raise IRError(f"layer {name}: weights {layer.weights.shape} but the input has {fan_in} bits")
            _bits(name, layer.weights)
            shape = (1, 1, layer.mh)
        else:
            raise IRError(f"layer {i}: unknown node {type(layer).__name__}")
        if isinstance(layer, BinaryDense | BinaryConv):
            if layer.input_planes is not None and (not top or i != 0 or graph.input.encoding != "integer"
                                                   or tuple(layer.input_planes) != tuple(graph.input.planes)):
                raise IRError(f"layer {name}: only the first layer of an integer-encoded input reads integers, "
                              f"over the input's planes {list(graph.input.planes)}")
            if layer.bn is None and layer.thresholds is None:
                raise IRError(f"layer {name}: has neither batch-norm nor thresholds")
            if layer.thresholds is not None:
                t, d = layer.thresholds, layer.direction
                if t.shape != (layer.mh,) or d is None or d.shape != (layer.mh,):
                    raise IRError(f"layer {name}: thresholds/direction must have shape ({layer.mh},)")
                if t.min() < 0 or t.max() > layer.pc_max + 1:
                    raise IRError(f"layer {name}: thresholds outside 0..{layer.pc_max + 1}")
                if not np.isin(d, (-1, 1)).all():
                    raise IRError(f"layer {name}: direction must be +1 or -1")
        if isinstance(layer, Output):
            if layer.bn is None and layer.logit_table is None:
                raise IRError(f"layer {name}: has neither batch-norm nor a logit table")
            if layer.logit_table is not None and layer.logit_table.shape != (layer.mh, layer.mw + 1):
                raise IRError(f"layer {name}: logit table {layer.logit_table.shape}, "
                              f"expected {(layer.mh, layer.mw + 1)}")
    names = [node.name for node in nodes(layers)] if top else []
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise IRError(f"layer name {duplicate!r} appears {names.count(duplicate)} times; names must be unique")
    return shape
