"""Pass: batch-norm -> integer thresholds, by evaluating the float layer at every integer popcount.

An integer-input first layer is evaluated at every reachable count S = 0..pc_max the same way
(its dot is S minus a per-channel constant, see ``graph._IntegerInput``).

Algebra (T = mean - bias*sqrt(var+eps)/weight ...) can round differently from the
float forward pass; evaluating PyTorch's own eval-mode arithmetic at each of the
MW+1 possible popcounts cannot (docs/architecture.md, numeric contract). The result is monotone in the
popcount, so one threshold and one comparison direction per channel capture it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..nn.layers import ExactBatchNorm1d
from .graph import BatchNorm, BinaryConv, BinaryDense, Graph, Leaf, Output, frozen_array, map_leaves


class ThresholdError(ValueError):
    pass


def evaluate_bn(bn: BatchNorm, mw: int, dots: np.ndarray | None = None) -> np.ndarray:
    """Float scores (N, C) of the layer's batch-norm at each dot product.

    Default: a binary layer, dot = 2*pc - MW for pc = 0..MW (N = MW+1). ``dots`` (N, C) gives
    other dots per channel (an integer-input layer's, see ``integer_dots``)."""
    channels = len(bn.mean)
    module = ExactBatchNorm1d(channels, eps=bn.eps)
    with torch.no_grad():
        module.running_mean.copy_(torch.from_numpy(np.array(bn.mean)))
        module.running_var.copy_(torch.from_numpy(np.array(bn.var)))
        module.weight.copy_(torch.from_numpy(np.array(bn.weight)))
        module.bias.copy_(torch.from_numpy(np.array(bn.bias)))
        module.eval()
        if dots is None:
            pc = torch.arange(mw + 1, dtype=torch.float32)
            table = (2.0 * pc - mw).unsqueeze(1).expand(mw + 1, channels).contiguous()
        else:
            table = torch.from_numpy(np.ascontiguousarray(dots, dtype=np.float32))
        return module(table).numpy()


def integer_dots(layer: BinaryDense | BinaryConv) -> np.ndarray:
    """(pc_max+1, MH) dots of an integer-input layer at every count S: dot = S - n_neg * sum 2^p.

    Exact in float32 (|dot| <= 255 * MW), as PyTorch's conv or linear on integer inputs."""
    flat = layer.weights.reshape(layer.mh, -1)
    negatives = (flat == 0).sum(axis=1).astype(np.int64)
    counts = np.arange(layer.pc_max + 1, dtype=np.int64)
    return (counts[:, None] - negatives[None, :] * layer.plane_weight_sum).astype(np.float32)


def thresholds_from_bits(bits: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """From the sign table (MW+1, C) of booleans, the (threshold, direction) per channel."""
    n = bits.shape[0] - 1
    thresholds = np.empty(bits.shape[1], dtype=np.int64)
    direction = np.empty(bits.shape[1], dtype=np.int8)
    for c in range(bits.shape[1]):
        col = bits[:, c]
        ones = np.flatnonzero(col)
        if len(ones) == 0:  # never fires: pc >= MW+1 is never true
            thresholds[c], direction[c] = n + 1, 1
        elif len(ones) == n + 1:  # always fires
            thresholds[c], direction[c] = 0, 1
        elif col[-1]:  # 0...0 1...1
            thresholds[c], direction[c] = ones[0], 1
            if not col[ones[0]:].all():
                raise ThresholdError(f"layer {name}, channel {c}: output is not monotone in the popcount")
        else:  # 1...1 0...0
            thresholds[c], direction[c] = ones[-1], -1
            if not col[:ones[-1] + 1].all():
                raise ThresholdError(f"layer {name}, channel {c}: output is not monotone in the popcount")
    return thresholds, direction


def _fold_layer(layer: Leaf) -> Leaf:
    if isinstance(layer, BinaryDense | BinaryConv) and layer.bn is not None:
        dots = integer_dots(layer) if layer.input_planes is not None else None
        scores = evaluate_bn(layer.bn, layer.mw, dots)
        t, d = thresholds_from_bits(scores >= 0, layer.name)
        return dataclasses.replace(layer, bn=None, thresholds=frozen_array(t, np.int64),
                                   direction=frozen_array(d, np.int8))
    if isinstance(layer, Output) and layer.bn is not None:
        table = evaluate_bn(layer.bn, layer.mw).T
        return dataclasses.replace(layer, bn=None, logit_table=frozen_array(table, np.float32))
    return layer


def fold_batchnorm(graph: Graph) -> Graph:
    return dataclasses.replace(graph, layers=map_leaves(graph.layers, _fold_layer))
