"""Pass: make every threshold an upward comparison ``popcount >= T`` (the only one hardware implements).

A channel compared downward (negative batch-norm scale) gets its weight row
inverted: popcount(xnor(x, ~w)) = MW - popcount(xnor(x, w)), so ``pc <= T``
becomes ``pc' >= MW - T`` (``pc_max - T`` for an integer-input layer, whose count is
weighted by the planes).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .graph import BinaryConv, BinaryDense, Graph, Leaf, frozen_array, map_leaves


def _normalize_layer(layer: Leaf) -> Leaf:
    if isinstance(layer, BinaryDense | BinaryConv) and layer.direction is not None:
        assert layer.thresholds is not None
        down = layer.direction < 0
        flat = layer.weights.reshape(layer.mh, -1)
        weights = np.where(down[:, None], 1 - flat, flat).reshape(layer.weights.shape)
        thresholds = np.where(down, layer.pc_max - layer.thresholds, layer.thresholds)
        return dataclasses.replace(
            layer, weights=frozen_array(weights, np.uint8), thresholds=frozen_array(thresholds, np.int64),
            direction=frozen_array(np.ones(layer.mh), np.int8))
    return layer


def normalize_thresholds(graph: Graph) -> Graph:
    return dataclasses.replace(graph, layers=map_leaves(graph.layers, _normalize_layer))
