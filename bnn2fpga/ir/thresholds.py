"""Pass: batch-norm -> integer thresholds, by evaluating the float layer at every integer popcount.

Algebra (T = mean - bias*sqrt(var+eps)/weight ...) can round differently from the
float forward pass; evaluating PyTorch's own eval-mode arithmetic at each of the
MW+1 possible popcounts cannot (DESIGN.md §2). The result is monotone in the
popcount, so one threshold and one comparison direction per channel capture it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..nn.layers import ExactBatchNorm1d
from .graph import BatchNorm, BinaryConv, BinaryDense, Graph, Output, frozen_array


class ThresholdError(ValueError):
    pass


def evaluate_bn(bn: BatchNorm, mw: int) -> np.ndarray:
    """Float scores (MW+1, C) of the layer's batch-norm at dot = 2*pc - MW for pc = 0..MW."""
    channels = len(bn.mean)
    module = ExactBatchNorm1d(channels, eps=bn.eps)
    with torch.no_grad():
        module.running_mean.copy_(torch.from_numpy(np.array(bn.mean)))
        module.running_var.copy_(torch.from_numpy(np.array(bn.var)))
        module.weight.copy_(torch.from_numpy(np.array(bn.weight)))
        module.bias.copy_(torch.from_numpy(np.array(bn.bias)))
        module.eval()
        pc = torch.arange(mw + 1, dtype=torch.float32)
        dots = (2.0 * pc - mw).unsqueeze(1).expand(mw + 1, channels).contiguous()
        return module(dots).numpy()


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


def fold_batchnorm(graph: Graph) -> Graph:
    layers = []
    for layer in graph.layers:
        if isinstance(layer, BinaryDense | BinaryConv) and layer.bn is not None:
            scores = evaluate_bn(layer.bn, layer.mw)
            t, d = thresholds_from_bits(scores >= 0, layer.name)
            layer = dataclasses.replace(layer, bn=None, thresholds=frozen_array(t, np.int64),
                                        direction=frozen_array(d, np.int8))
        elif isinstance(layer, Output) and layer.bn is not None:
            table = evaluate_bn(layer.bn, layer.mw).T
            layer = dataclasses.replace(layer, bn=None, logit_table=frozen_array(table, np.float32))
        layers.append(layer)
    return dataclasses.replace(graph, layers=tuple(layers))
