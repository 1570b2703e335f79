"""The IR: frozen dataclasses holding bit-level weights as read-only NumPy arrays.

Passes never mutate a node; they build new ones with :func:`dataclasses.replace`.
Feature maps are laid out HWC throughout (row, column, channel), the order in
which the hardware streams them; weights are 0/1 bits (1 = +1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def frozen_array(a: np.ndarray, dtype: type | np.dtype) -> np.ndarray:
    out = np.array(a, dtype=dtype, copy=True)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class InputSpec:
    channels: int
    height: int
    width: int
    bits: int
    planes: tuple[int, ...]

    @property
    def features(self) -> int:
        """Binary channels per pixel after bit slicing."""
        return self.channels * len(self.planes)

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


@dataclass(frozen=True, eq=False)
class BinaryDense:
    """out_j = [popcount(xnor(x, w_j)) >= T_j] if direction_j > 0 else [... <= T_j]."""
    name: str
    weights: np.ndarray  # (MH, MW) uint8 bits
    bn: BatchNorm | None = None
    thresholds: np.ndarray | None = None  # (MH,) int64
    direction: np.ndarray | None = None  # (MH,) int8, +1 or -1

    @property
    def mh(self) -> int:
        return int(self.weights.shape[0])

    @property
    def mw(self) -> int:
        return int(self.weights.shape[1])


@dataclass(frozen=True, eq=False)
class BinaryConv:
    """A binary convolution; weights (OC, K, K, IC) so one output's fan-in is a flattened HWC patch."""
    name: str
    weights: np.ndarray  # (OC, K, K, IC) uint8 bits
    in_shape: tuple[int, int, int]  # (H, W, C)
    padding: int
    pad_bit: int
    bn: BatchNorm | None = None
    thresholds: np.ndarray | None = None
    direction: np.ndarray | None = None

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


Layer = BinaryDense | BinaryConv | MaxPool | Output


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

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)
