"""Branches in the IR: a fork into paths joined by concatenation, checked by the verifier, walked by
the passes, and run by reference.py exactly as PyTorch computes the same network."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from bnn2fpga import data, reference
from bnn2fpga.ir.graph import BinaryConv, BinaryDense, Concat, Graph, MaxPool, Output, frozen_array, leaves
from bnn2fpga.ir.normalize import normalize_thresholds
from bnn2fpga.ir.verify import IRError, verify
from tests.conftest import random_pixels
from tests.strategies import branch_graph


def _torch_layer(x: torch.Tensor, layer) -> torch.Tensor:  # noqa: ANN001
    """One layer on NCHW float maps of 0/1, as a float network computes it: +-1 values, conv2d/linear."""
    if isinstance(layer, Concat):
        outs = []
        for path in layer.paths:
            y = x
            for step in path:
                y = _torch_layer(y, step)
            outs.append(y)
        return torch.cat(outs, dim=1)
    if isinstance(layer, MaxPool):
        return F.max_pool2d(x, layer.size)
    signs = 2 * x - 1
    if isinstance(layer, BinaryConv):
        w = torch.from_numpy(2 * layer.weights.astype(np.float32) - 1).permute(0, 3, 1, 2)  # OIHW
        p = layer.padding
        signs = F.pad(signs, (p, p, p, p), value=2.0 * layer.pad_bit - 1)
        dot = F.conv2d(signs, w)
    else:
        flat = signs.permute(0, 2, 3, 1).reshape(len(x), -1)  # HWC order, as the IR's weight columns
        dot = flat @ torch.from_numpy(2 * layer.weights.astype(np.float32) - 1).T
    pc = (dot + layer.mw) / 2
    if isinstance(layer, Output):
        return pc
    t = torch.from_numpy(layer.thresholds.astype(np.float32))
    d = torch.from_numpy(layer.direction.astype(np.float32))
    shape = (1, -1, 1, 1) if isinstance(layer, BinaryConv) else (1, -1)
    up = pc >= t.reshape(shape)
    down = pc <= t.reshape(shape)
    out = torch.where(d.reshape(shape) > 0, up, down).float()
    return out if isinstance(layer, BinaryConv) else out.reshape(len(x), -1, 1, 1)


def _torch_popcounts(graph: Graph, pixels: np.ndarray) -> np.ndarray:
    planes = torch.tensor(graph.input.planes)
    px = torch.from_numpy(pixels.astype(np.int64))
    bits = (px[:, :, None] >> planes[None, None, :, None, None]) & 1  # (B, C, P, H, W): channel c*P + i
    x = bits.reshape(len(pixels), -1, *pixels.shape[2:]).float()
    with torch.no_grad():
        for layer in graph.layers:
            x = _torch_layer(x, layer)
    return x.numpy().astype(np.int64)


def _flip_some_directions(graph: Graph, seed: int) -> Graph:
    """Every conv inside the branch compares some channels downward (``<=``), as a negative batch-norm
    scale gives; the hardware pass must reach inside the paths to turn them upward."""
    rng = np.random.default_rng(seed)

    def flip(path: tuple) -> tuple:
        out = []
        for layer in path:
            if isinstance(layer, Concat):
                layer = dataclasses.replace(layer, paths=tuple(flip(p) for p in layer.paths))
            elif isinstance(layer, BinaryConv):
                layer = dataclasses.replace(layer, direction=frozen_array(np.where(rng.random(layer.mh) < 0.5, -1, 1),
                                                                          np.int8))
            out.append(layer)
        return tuple(out)

    join = next(layer for layer in graph.layers if isinstance(layer, Concat))
    layers = tuple(dataclasses.replace(layer, paths=tuple(flip(p) for p in layer.paths)) if layer is join else layer
                   for layer in graph.layers)
    return dataclasses.replace(graph, layers=layers)


@pytest.mark.parametrize("nested", [False, True])
def test_reference_runs_branches_as_pytorch_does_on_fashion_mnist_and_random_pixels(nested: bool) -> None:
    graph, _ = branch_graph(3, height=28, width=28, planes=(4, 5, 6, 7), nested=nested, dense=16, classes=10)
    graph = verify(_flip_some_directions(graph, seed=1))
    images = np.concatenate([data.load("fashion-mnist").test.images[:300], random_pixels(100, seed=2)])
    want = _torch_popcounts(graph, images)
    got = reference.run(graph, images).popcounts
    assert np.array_equal(got, want)
    assert len(np.unique(got, axis=0)) > 100  # the scores depend on the image


def test_hardware_pass_reaches_inside_the_paths() -> None:
    graph, _ = branch_graph(4, nested=True)
    flipped = verify(_flip_some_directions(graph, seed=3))
    assert any((layer.direction < 0).any() for layer in leaves(flipped.layers) if isinstance(layer, BinaryConv))
    normal = verify(normalize_thresholds(flipped))
    assert all((layer.direction > 0).all() for layer in leaves(normal.layers) if isinstance(layer, BinaryConv))
    pixels = random_pixels(50, h=6, w=5, seed=4)
    assert np.array_equal(reference.run(normal, pixels).popcounts, reference.run(flipped, pixels).popcounts)
    assert normal.layer("b0_inner").name == "b0_inner"  # found inside a nested branch


def test_branch_shapes() -> None:
    graph, _ = branch_graph(5, height=6, width=5, planes=(6, 7), paths=(((5, 3, 1),), (), ((3, 1, 0),)))
    join = graph.layer("join")
    assert isinstance(join, Concat)
    assert join.in_shape == (6, 5, 4) and join.path_shapes == ((6, 5, 5), (6, 5, 4), (6, 5, 3))
    assert join.out_shape == (6, 5, 12)
    assert not graph.is_chain


def _with_join(graph: Graph, **changes: object) -> Graph:
    layers = tuple(dataclasses.replace(layer, **changes) if layer.name == "join" else layer for layer in graph.layers)
    return dataclasses.replace(graph, layers=layers)


def test_verifier_refuses_branches_it_cannot_join() -> None:
    graph, _ = branch_graph(6, height=6, width=5)
    join = graph.layer("join")
    assert isinstance(join, Concat)
    shrink = BinaryConv("shrink", np.ones((2, 3, 3, 4), np.uint8), join.in_shape, 0, 0,
                        thresholds=np.zeros(2, np.int64), direction=np.ones(2, np.int8))
    with pytest.raises(IRError, match="paths end in maps of different sizes"):
        verify(_with_join(graph, paths=((shrink,), ())))
    with pytest.raises(IRError, match="at least two paths"):
        verify(_with_join(graph, paths=((),)))
    dense = BinaryDense("inner_dense", np.ones((3, 120), np.uint8), thresholds=np.zeros(3, np.int64),
                        direction=np.ones(3, np.int8))
    with pytest.raises(IRError, match="put dense layers after the branch's join"):
        verify(_with_join(graph, paths=((dense,), ())))
    with pytest.raises(IRError, match="expects input"):
        verify(_with_join(graph, in_shape=(6, 5, 3)))
    twin = dataclasses.replace(join.paths[0][0], name="stem")
    with pytest.raises(IRError, match="'stem' appears 2 times"):
        verify(_with_join(graph, paths=((twin,), *join.paths[1:])))
