"""A dozen graphs bnn2fpga cannot express exactly, each refused in one line that names the node, its op,
why, and what would make it importable (docs/import.md, "Refused, and why")."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from onnx import helper

from bnn2fpga.cli import main

from .test_import_qonnx import QONNX, Graph


def _one_bit_input() -> Graph:
    g = Graph([1, 1, 28, 28])
    return g.node("Flatten", axis=1).node("Mul", g.const(2.0)).node("Sub", g.const(1.0)).sign()


def _eight_bit_input() -> Graph:
    g = Graph([1, 1, 28, 28])
    return g.node("Quant", g.const(np.float32(1 / 255)), g.const(np.float32(0)), g.const(np.float32(8)),
                  domain=QONNX, signed=0, narrow=0, rounding_mode="ROUND")


def float_weights() -> Graph:
    g = _one_bit_input()
    return g.node("MatMul", g.const(g.rng.uniform(-1, 1, (784, 10)))).batchnorm(10)


def two_bit_weights() -> Graph:
    g = _one_bit_input()
    raw = g.const(g.rng.uniform(-1, 1, (784, 10)))
    g.nodes.append(helper.make_node("Quant", [raw, g.const(np.float32(0.5)), g.const(np.float32(0)),
                                              g.const(np.float32(2))], ["w2"], domain=QONNX, signed=1, narrow=1,
                                    rounding_mode="ROUND", name="weight_quant"))
    return g.node("MatMul", "w2").batchnorm(10)


def residual_add() -> Graph:
    g = _one_bit_input()
    g.node("MatMul", g.weight((784, 32))).batchnorm(32).sign()
    skip = g.current
    g.node("MatMul", g.weight((32, 32))).batchnorm(32).sign().node("Add", skip)
    return g.node("MatMul", g.weight((32, 10))).batchnorm(10)


def average_pool() -> Graph:
    g = _eight_bit_input()
    g.node("Conv", g.weight((4, 1, 3, 3)), kernel_shape=[3, 3]).batchnorm(4).sign()
    g.node("AveragePool", kernel_shape=[2, 2], strides=[2, 2]).node("Flatten", axis=1)
    return g.node("MatMul", g.weight((4 * 13 * 13, 10))).batchnorm(10)


def float_layer_in_the_middle() -> Graph:
    g = _one_bit_input()
    g.node("MatMul", g.weight((784, 32))).batchnorm(32)
    return g.node("MatMul", g.weight((32, 10))).batchnorm(10)


def split_input_into_the_output_layer() -> Graph:
    """A 1-bit input that switches off the MSB (between pixels 76 and 77) reads through an input table
    into an integer first layer, which cannot be the output layer."""
    g = Graph([1, 1, 28, 28])
    g.node("Flatten", axis=1).node("Sub", g.const(0.3)).sign()
    return g.node("MatMul", g.weight((784, 10))).batchnorm(10)


def two_bit_activations() -> Graph:
    g = _one_bit_input()
    g.node("MatMul", g.weight((784, 32))).batchnorm(32)
    g.node("MultiThreshold", g.const(np.tile(np.float32([-1, 0, 1]), (32, 1))), domain=QONNX, out_dtype="UINT2")
    return g.node("MatMul", g.weight((32, 10))).batchnorm(10)


def strided_conv() -> Graph:
    g = _eight_bit_input()
    g.node("Conv", g.weight((4, 1, 3, 3)), kernel_shape=[3, 3], strides=[2, 2]).batchnorm(4).sign()
    return g.node("Flatten", axis=1).node("MatMul", g.weight((4 * 13 * 13, 10))).batchnorm(10)


def grouped_conv() -> Graph:
    g = _eight_bit_input()
    g.node("Conv", g.weight((4, 1, 3, 3)), kernel_shape=[3, 3]).batchnorm(4).sign()
    g.node("Conv", g.weight((4, 2, 3, 3)), kernel_shape=[3, 3], group=2).batchnorm(4).sign()
    return g.node("Flatten", axis=1).node("MatMul", g.weight((4 * 24 * 24, 10))).batchnorm(10)


def zero_padding_of_bipolar_maps() -> Graph:
    g = _eight_bit_input()
    g.node("Conv", g.weight((4, 1, 3, 3)), kernel_shape=[3, 3]).batchnorm(4).sign()
    g.node("Conv", g.weight((4, 4, 3, 3)), kernel_shape=[3, 3], pads=[1, 1, 1, 1]).batchnorm(4).sign()
    return g.node("Flatten", axis=1).node("MatMul", g.weight((4 * 26 * 26, 10))).batchnorm(10)


def relu_activation() -> Graph:
    g = _one_bit_input()
    g.node("MatMul", g.weight((784, 32))).batchnorm(32).node("Relu")
    return g.node("MatMul", g.weight((32, 10))).batchnorm(10)


def top_k_of_two() -> Graph:
    g = _one_bit_input()
    g.node("MatMul", g.weight((784, 10))).batchnorm(10)
    k = g.const(np.int64([2]))
    g.nodes.append(helper.make_node("TopK", [g.current, k], ["values", "indices"], name="top2", axis=1))
    g.current = "indices"
    return g


#: (graph, the node the message must name, what it must say)
REFUSED: list[tuple[Callable[[], Graph], str, str]] = [
    (float_weights, "(MatMul)", "the weights are not binary"),
    (two_bit_weights, "(MatMul)", "quantise them to 1 bit"),
    (residual_add, "(Add)", "no skip connections or residual adds"),
    (average_pool, "(AveragePool)", "use MaxPool"),
    (float_layer_in_the_middle, "(MatMul)", "a float layer in the middle"),
    (split_input_into_the_output_layer, "(MatMul)", "the output layer reads the quantised input itself"),
    (two_bit_activations, "(MultiThreshold)", "the activation has 4 levels"),
    (strided_conv, "(Conv)", "strides [2, 2]"),
    (grouped_conv, "(Conv)", "group 2"),
    (zero_padding_of_bipolar_maps, "(Conv)", "use 0/1 activations"),
    (relu_activation, "(Relu)", "then a 1-bit activation"),
    (top_k_of_two, "(TopK)", "k > 1"),
]


@pytest.mark.parametrize(("make", "node", "why"), REFUSED, ids=[m.__name__ for m, _, _ in REFUSED])
def test_refused_in_one_line_naming_node_op_and_remedy(make: Callable[[], Graph], node: str, why: str,
                                                       tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = make().save(tmp_path / f"{make.__name__}.onnx")
    out = tmp_path / "out.pt"
    assert main(["import", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:") and "Traceback" not in err, err
    assert node in err and why in err, err
    assert not out.exists() and not list(tmp_path.glob(".out*"))
