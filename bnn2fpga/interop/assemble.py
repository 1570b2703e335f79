"""Imported layer parameters -> a bnn2fpga model, shared by every importer.

Each hidden layer arrives as +-1 weights and the batch-norm (weight, bias, mean) whose sign
is the layer's activation at every reachable dot product; the variance is set so that
var + eps = 1 and the float layer computes exactly that threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..nn.layers import BinaryConv2d, BinaryLinear, ExactBatchNorm1d, ExactBatchNorm2d
from ..nn.models import BNN


@dataclass
class Layer:
    kind: str  # conv, pool, dense, output
    signs: np.ndarray | None = None  # +-1 weights, bnn2fpga layout (conv OIHW; dense [out, in] in HWC order)
    bn: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # weight, bias, running_mean per channel
    var: np.ndarray | None = None  # running_var, when the source gives the batch-norm as it is (else 1 - eps)


def to_model(arch: dict[str, Any], layers: list[Layer]) -> BNN:
    model = BNN(arch)
    model.eval()
    weighted = [layer for layer in layers if layer.kind != "pool"]
    blocks = [b for b, spec in zip(model.blocks, arch["layers"], strict=True) if spec["kind"] != "pool"]
    with torch.no_grad():
        for block, layer in zip(blocks, weighted, strict=True):
            linear = next(m for m in block.modules() if isinstance(m, BinaryLinear | BinaryConv2d))
            bn = next(m for m in block.modules() if isinstance(m, ExactBatchNorm1d | ExactBatchNorm2d))
            assert layer.signs is not None and layer.bn is not None
            linear.weight.copy_(torch.from_numpy(layer.signs.reshape(linear.weight.shape)))
            weight, bias, mean = layer.bn
            bn.weight.copy_(torch.from_numpy(weight))
            bn.bias.copy_(torch.from_numpy(bias))
            bn.running_mean.copy_(torch.from_numpy(mean))
            if layer.var is not None:
                bn.running_var.copy_(torch.from_numpy(layer.var))
            else:  # var + eps = 1 up to rounding: the thresholds sit half-way between reachable dots.
                bn.running_var.fill_(1.0 - bn.eps)
    return model
