"""Import pass: a validated checkpoint -> Graph (weights as bits, batch-norm still float)."""

from __future__ import annotations

import numpy as np
import torch

from ..checkpoint import Checkpoint
from ..nn.layers import BinaryConv2d, BinaryLinear, BinaryMaxPool2d
from ..nn.models import Concat as ConcatModule
from ..nn.models import input_encoding, input_table
from .graph import BatchNorm, BinaryConv, BinaryDense, Concat, Graph, InputSpec, Layer, MaxPool, Output, frozen_array


def _bits(weight: torch.Tensor) -> np.ndarray:
    # sign(0) = +1, as the binarize() of the training graph.
    return (weight.detach().cpu().numpy() >= 0).astype(np.uint8)


def _bn(module: torch.nn.Module) -> BatchNorm:
    def arr(t: torch.Tensor) -> np.ndarray:
        return frozen_array(t.detach().cpu().numpy(), np.float32)
    return BatchNorm(arr(module.running_mean), arr(module.running_var), arr(module.weight), arr(module.bias),
                     float(module.eps))


def from_checkpoint(ckpt: Checkpoint) -> Graph:
    model = ckpt.model()
    arch = ckpt.architecture
    inp = arch["input"]
    spec = InputSpec(inp["channels"], inp["height"], inp["width"], inp["bits"], tuple(inp["planes"]),
                     input_encoding(arch), input_table(arch))
    counts: dict[str, int] = {}

    def name(kind: str) -> str:
        counts[kind] = counts.get(kind, 0) + 1
        return f"{kind}{counts[kind] - 1}"

    def chain(blocks: list[torch.nn.Module], shape: tuple[int, int, int],
              integer_planes: tuple[int, ...] | None) -> tuple[list[Layer], tuple[int, int, int]]:
        layers: list[Layer] = []
        for block in blocks:
            if isinstance(block, BinaryMaxPool2d):
                pool = MaxPool(name("pool"), int(block.kernel_size), shape)
                layers.append(pool)
                shape = pool.out_shape
                continue
            if isinstance(block, ConcatModule):
                label = name("concat")
                paths = tuple(tuple(chain(list(path), shape, None)[0]) for path in block.paths)
                concat = Concat(label, shape, paths)
                layers.append(concat)
                shape = concat.out_shape
                continue
            weight_layer = next(m for m in block if isinstance(m, BinaryLinear | BinaryConv2d))
            bn = _bn(block[2] if isinstance(weight_layer, BinaryLinear) else block[1])
            bits = _bits(weight_layer.weight)
            planes, integer_planes = integer_planes, None
            if isinstance(weight_layer, BinaryConv2d):
                conv = BinaryConv(name("conv"), frozen_array(bits.transpose(0, 2, 3, 1), np.uint8), shape,
                                  int(weight_layer.pad), int(weight_layer.pad_bit), bn=bn, input_planes=planes)
                layers.append(conv)
                shape = conv.out_shape
            elif block is model.blocks[-1]:
                layers.append(Output("output", frozen_array(bits, np.uint8), bn=bn))
            else:
                layers.append(BinaryDense(name("dense"), frozen_array(bits, np.uint8), bn=bn, input_planes=planes))
                shape = (1, 1, bits.shape[0])
        return layers, shape

    # An integer first layer reads the kept planes as integers; every other layer reads bits.
    layers, _ = chain(list(model.blocks), spec.shape, spec.planes if spec.encoding == "integer" else None)
    return Graph(spec, tuple(layers), name=str(arch.get("name", "bnn")))
