"""The IR: frozen dataclasses holding bit-level weights as read-only NumPy arrays.

Passes never mutate a node; they build new ones with :func:`dataclasses.replace`.
Feature maps are laid out HWC throughout (row, column, channel), the order in
which the hardware streams them; weights are 0/1 bits (1 = +1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np


def frozen_array(a: np.ndarray, dtype: type | np.dtype) -> np.ndarray:
    out = np.array(a, dtype=dtype, copy=True)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class InputSpec:
    """``encoding``: ``"planes"`` (each kept plane a binary channel) or ``"integer"`` (the kept
    bits of a pixel as one unsigned integer per colour channel, read by an integer first layer).
    ``table``: per colour channel, the code (0..255) of each pixel value, which the planes are then
    taken from; None when the codes are the pixels."""

    channels: int
    height: int
    width: int
    bits: int
    planes: tuple[int, ...]
    encoding: str = "planes"
    table: tuple[tuple[int, ...], ...] | None = None

    @property
    def features(self) -> int:
        """Channels per pixel the first layer sees: C*P bit planes, or C integers."""
        return self.channels * (1 if self.encoding == "integer" else len(self.planes))

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.features)


@dataclass(frozen=True, eq=False)
class BatchNorm:
    """The float batch-norm parameters of a layer, until a pass folds them into integers."""
    mean: np.ndarray
    var: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    eps: float


class _IntegerInput:
    """What an integer-input first layer adds: its popcount is weighted by the planes.

    With ``input_planes`` set, the input x_i is the unsigned integer of the kept planes and the
    layer's count is S = sum over planes p of 2^p * popcount(xnor(bit_p(x), w)), in 0..pc_max
    (pc_max = MW * sum 2^p). S = dot + n_neg * sum 2^p, where dot = sum_i w_i x_i (w = +-1) and
    n_neg the row's -1 weights, so thresholds on S are thresholds on the dot, and inverting a
    row maps S to pc_max - S exactly as for a binary layer.
    """

    input_planes: tuple[int, ...] | None
    mw: int

    @property
    def plane_weight_sum(self) -> int:
        """sum of 2^p over the kept planes: the largest input value (1 for a binary layer)."""
        return 1 if self.input_planes is None else sum(1 << p for p in self.input_planes)

    @property
    def pc_max(self) -> int:
        """Largest count: MW for a binary layer, MW * sum 2^p for an integer-input one."""
        return self.mw * self.plane_weight_sum


@dataclass(frozen=True, eq=False)
class BinaryDense(_IntegerInput):
    """out_j = [popcount(xnor(x, w_j)) >= T_j] if direction_j > 0 else [... <= T_j]."""
    name: str
    weights: np.ndarray  # (MH, MW) uint8 bits
    bn: BatchNorm | None = None
    thresholds: np.ndarray | None = None  # (MH,) int64
    direction: np.ndarray | None = None  # (MH,) int8, +1 or -1
    input_planes: tuple[int, ...] | None = None  # integer-input first layer (see _IntegerInput)

    @property
    def mh(self) -> int:
        return int(self.weights.shape[0])

    @property
    def mw(self) -> int:
        return int(self.weights.shape[1])


@dataclass(frozen=True, eq=False)
class BinaryConv(_IntegerInput):
    """A binary convolution; weights (OC, K, K, IC) so one output's fan-in is a flattened HWC patch.

    An integer-input conv pads with the pixel whose every kept plane is ``pad_bit``."""
    name: str
    weights: np.ndarray  # (OC, K, K, IC) uint8 bits
    in_shape: tuple[int, int, int]  # (H, W, C)
    padding: int
    pad_bit: int
    bn: BatchNorm | None = None
    thresholds: np.ndarray | None = None
    direction: np.ndarray | None = None
    input_planes: tuple[int, ...] | None = None  # integer-input first layer (see _IntegerInput)

    @property
    def kernel(self) -> int:
        return int(self.weights.shape[1])

    @property
    def mh(self) -> int:
        return int(self.weights.shape[0])

    @property
    def mw(self) -> int:
        return int(np.prod(self.weights.shape[1:]))

    @property
    def out_shape(self) -> tuple[int, int, int]:
        h, w, _ = self.in_shape
        k, p = self.kernel, self.padding
        return (h + 2 * p - k + 1, w + 2 * p - k + 1, self.mh)


@dataclass(frozen=True, eq=False)
class MaxPool:
    """Binary max-pool: OR over size x size windows (floor division of the map, as PyTorch)."""
    name: str
    size: int
    in_shape: tuple[int, int, int]

    @property
    def out_shape(self) -> tuple[int, int, int]:
        h, w, c = self.in_shape
        return (h // self.size, w // self.size, c)


@dataclass(frozen=True, eq=False)
class Output:
    """Class popcounts; ``logit_table[k, pc]`` is PyTorch's float score of class k at popcount pc."""
    name: str
    weights: np.ndarray  # (K, MW) uint8 bits
    bn: BatchNorm | None = None
    logit_table: np.ndarray | None = None  # (K, MW + 1) float32

    @property
    def mh(self) -> int:
        return int(self.weights.shape[0])

    @property
    def mw(self) -> int:
        return int(self.weights.shape[1])


@dataclass(frozen=True, eq=False)
class Concat:
    """A fork and a join: the map ``in_shape`` enters every path, and the paths' maps, all of one
    height and width, leave as one map with their channels concatenated in path order (path 0's
    channels lowest, each pixel HWC as everywhere).

    A path is a chain of convolutions, max-pools and nested ``Concat`` nodes; an empty path is the
    map itself (a skip). Paths nest, so any series-parallel network (Inception and DenseNet blocks;
    a residual skip, once an add join exists) is a chain of layers and ``Concat`` nodes; a skip
    that crosses another branch's fork or join is not expressible."""
    name: str
    in_shape: tuple[int, int, int]
    paths: tuple[tuple[Layer, ...], ...]

    @property
    def path_shapes(self) -> tuple[tuple[int, int, int], ...]:
        """The map each path hands the join."""
        return tuple(path[-1].out_shape if path else self.in_shape for path in self.paths)  # type: ignore[union-attr]

    @property
    def out_shape(self) -> tuple[int, int, int]:
        shapes = self.path_shapes
        h, w, _ = shapes[0]
        return (h, w, sum(shape[2] for shape in shapes))


Layer = BinaryDense | BinaryConv | MaxPool | Output | Concat
Leaf = BinaryDense | BinaryConv | MaxPool | Output


def leaves(layers: tuple[Layer, ...]) -> Iterator[Leaf]:
    """Every layer that computes, depth first: a ``Concat``'s paths in order, the node itself not."""
    for layer in layers:
        if isinstance(layer, Concat):
            for path in layer.paths:
                yield from leaves(path)
        else:
            yield layer


def nodes(layers: tuple[Layer, ...]) -> Iterator[Layer]:
    """Every node, ``Concat`` nodes included (before their paths)."""
    for layer in layers:
        yield layer
        if isinstance(layer, Concat):
            for path in layer.paths:
                yield from nodes(path)


def map_leaves(layers: tuple[Layer, ...], step: Callable[[Leaf], Leaf]) -> tuple[Layer, ...]:
    """``layers`` with ``step`` applied to every computing layer, inside branches too (a pass's walk)."""
    out: list[Layer] = []
    for layer in layers:
        if isinstance(layer, Concat):
            layer = replace(layer, paths=tuple(map_leaves(path, step) for path in layer.paths))
        else:
            layer = step(layer)
        out.append(layer)
    return tuple(out)


@dataclass(frozen=True, eq=False)
class Graph:
    input: InputSpec
    layers: tuple[Layer, ...]
    name: str = "bnn"

    @property
    def output(self) -> Output:
        last = self.layers[-1]
        assert isinstance(last, Output)
        return last

    @property
    def is_chain(self) -> bool:
        """No branch anywhere: every layer reads the one before it."""
        return not any(isinstance(layer, Concat) for layer in self.layers)

    def layer(self, name: str) -> Layer:
        for layer in nodes(self.layers):
            if layer.name == name:
                return layer
        raise KeyError(name)
