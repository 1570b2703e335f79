"""QONNX import: hand-built graphs of each supported pattern, checked against qonnx's own executor.

The graphs are written the way Brevitas exports binary networks (float weights behind
``BipolarQuant``, ``BatchNormalization``, 1-bit activations, an input quantiser), and every
imported checkpoint must predict what the ONNX model predicts, image for image, on Fashion-MNIST
and on random pixels. Patterns bnn2fpga cannot express exactly are refused in one clear line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import qonnx.core.onnx_exec as qonnx_exec
from onnx import TensorProto, helper, numpy_helper

from bnn2fpga import data
from bnn2fpga.checkpoint import load
from bnn2fpga.cli import main
from bnn2fpga.ir.pipeline import lower
from bnn2fpga.reference import run as reference_run

QONNX = "qonnx.custom_op.general"


class Graph:
    """A tiny builder: each call appends one node reading the current activation."""

    def __init__(self, shape: list[int | str], seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list = []
        self.inits: list = []
        self.current = "x"
        self.input = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
        self.count = 0

    def const(self, value: np.ndarray | float) -> str:
        self.count += 1
        name = f"c{self.count}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def node(self, op: str, *consts: str, domain: str = "", **attrs) -> Graph:
        self.count += 1
        out = f"t{self.count}"
        self.nodes.append(helper.make_node(op, [self.current, *consts], [out], name=f"{op}_{self.count}",
                                           domain=domain, **attrs))
        self.current = out
        return self

    def weight(self, shape: tuple[int, ...], scale: float = 1.0) -> str:
        """Float latent weights behind a weight BipolarQuant (folded by the importer)."""
        raw = self.const(self.rng.uniform(-1, 1, shape))
        self.count += 1
        out = f"w{self.count}"
        self.nodes.append(helper.make_node("BipolarQuant", [raw, self.const(np.float32([scale]))], [out],
                                           domain=QONNX, name=f"wq{self.count}"))
        return out

    def batchnorm(self, channels: int, scale: float = 1.0) -> Graph:
        """Random statistics (negative gammas included) for inputs of the given scale."""
        r = self.rng
        return self.node("BatchNormalization", self.const(r.uniform(-1.5, 1.5, channels)),
                         self.const(r.normal(0, 2, channels)), self.const(r.normal(0, 3 * scale, channels)),
                         self.const(r.uniform(0.5, 4, channels) * scale**2), epsilon=1e-4 * scale**2)

    def sign(self, scale: float = 1.0) -> Graph:
        return self.node("BipolarQuant", self.const(np.float32([scale])), domain=QONNX)

    def save(self, path: Path) -> Path:
        out = helper.make_tensor_value_info(self.current, TensorProto.FLOAT, None)
        graph = helper.make_graph(self.nodes, "bnn", [self.input], [out], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX, 1)],
                                  producer_name="test")
        onnx.save(model, str(path))
        return path


def dense_net(widths: tuple[int, ...] = (32, 24), weight_scale: float = 1.0) -> Graph:
    """TFC-like: 1-bit input (2x - 1 then a bipolar quantiser), dense layers, BN, bipolar activations."""
    g = Graph([1, 1, 28, 28])
    g.node("Reshape", g.const(np.int64([-1, 784]).astype(np.float32)))
    g.inits[-1] = numpy_helper.from_array(np.int64([-1, 784]), g.inits[-1].name)
    g.node("Mul", g.const(2.0)).node("Sub", g.const(1.0)).sign()
    fan_in = 784
    for w in widths:
        g.node("MatMul", g.weight((fan_in, w), weight_scale)).batchnorm(w, weight_scale).sign()
        fan_in = w
    g.node("MatMul", g.weight((fan_in, 10), weight_scale)).batchnorm(10, weight_scale)
    return g


def conv_net(zero_one: bool = False) -> Graph:
    """CNV-like: 8-bit input quantiser (the pixel as an unsigned integer), valid 3x3 convs, max-pool, dense."""
    g = Graph([1, 1, 28, 28], seed=1)
    g.node("Quant", g.const(np.float32(1 / 255)), g.const(np.float32(0)), g.const(np.float32(8)), domain=QONNX,
           signed=0, narrow=0, rounding_mode="ROUND")
    g.node("Conv", g.weight((6, 1, 3, 3), 0.1), kernel_shape=[3, 3], pads=[0, 0, 0, 0]).batchnorm(6, 0.1)
    if zero_one:  # FINN-style {0, 1} activations: MultiThreshold at 0
        g.node("MultiThreshold", g.const(np.zeros((6, 1))), domain=QONNX, out_dtype="BINARY")
        g.node("Conv", g.weight((8, 6, 3, 3)), kernel_shape=[3, 3], pads=[1, 1, 1, 1]).batchnorm(8)
        g.node("MultiThreshold", g.const(np.zeros((8, 1))), domain=QONNX, out_dtype="BINARY")
    else:
        g.sign().node("Conv", g.weight((8, 6, 3, 3)), kernel_shape=[3, 3]).batchnorm(8).sign()
    g.node("MaxPool", kernel_shape=[2, 2], strides=[2, 2])
    side = 13 if zero_one else 12
    g.node("Flatten", axis=1)
    g.node("Gemm", g.weight((16, 8 * side * side)), transB=1).batchnorm(16).sign()
    g.node("Gemm", g.weight((10, 16)), transB=1).node("Mul", g.const(0.5)).node("Add", g.const(np.arange(10) * 0.1))
    return g


def finn_style_net() -> Graph:
    """FINN-ONNX's form: the 8-bit input as MultiThreshold (255 steps) -> Add -> Mul, +-1 weight initializers,
    bipolar MultiThreshold activations (out_scale 2, out_bias -1), a LabelSelect-like TopK at the end."""
    g = Graph([1, 1, 28, 28], seed=2)
    steps = (np.arange(1, 256, dtype=np.float32) - 0.5) / 255
    g.node("MultiThreshold", g.const(steps.reshape(1, 255)), domain=QONNX, out_dtype="UINT8")
    g.node("Add", g.const(-128.0)).node("Mul", g.const(1 / 128))
    signs = np.where(g.rng.uniform(-1, 1, (6, 1, 3, 3)) >= 0, 1.0, -1.0)
    g.node("Conv", g.const(signs), kernel_shape=[3, 3]).batchnorm(6, 0.02)
    g.node("MultiThreshold", g.const(np.zeros((6, 1))), domain=QONNX, out_scale=2.0, out_bias=-1.0)
    g.node("Flatten", axis=1)
    g.node("MatMul", g.const(np.where(g.rng.uniform(-1, 1, (6 * 26 * 26, 10)) >= 0, 1.0, -1.0)))
    g.node("Mul", g.const(0.25))
    k = g.const(np.int64([1]))
    g.inits[-1] = numpy_helper.from_array(np.int64([1]), k)
    g.count += 1
    g.nodes.append(helper.make_node("TopK", [g.current, k], [f"t{g.count}", f"i{g.count}"], name="topk", axis=1))
    g.current = f"t{g.count}"
    return g


def onnx_predictions(path: Path, pixels: np.ndarray) -> np.ndarray:
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    proto = onnx.load(str(path))
    proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value = len(pixels)  # the whole batch in one run
    model = cleanup_model(ModelWrapper(proto))  # shape inference: qonnx executes typed graphs only
    x = pixels.astype(np.float32) / 255.0
    out = qonnx_exec.execute_onnx(model, {model.graph.input[0].name: x})[model.graph.output[0].name]
    return np.asarray(out).argmax(1)


def imported_predictions(ckpt_path: Path, pixels: np.ndarray) -> np.ndarray:
    graph = lower(load(ckpt_path))
    return reference_run(graph, pixels).predictions


def check_parity(tmp_path: Path, g: Graph, name: str) -> None:
    onnx_path = g.save(tmp_path / f"{name}.onnx")
    ckpt = tmp_path / f"{name}.pt"
    assert main(["import", str(onnx_path), "--out", str(ckpt)]) == 0
    fm = data.load("fashion-mnist").test.images[:300]
    rand = np.random.default_rng(0).integers(0, 256, (200, 1, 28, 28), dtype=np.uint8)
    for pixels in (fm, rand):
        ours, theirs = imported_predictions(ckpt, pixels), onnx_predictions(onnx_path, pixels)
        assert (ours == theirs).all(), f"{(ours != theirs).sum()} of {len(ours)} predictions differ"
    assert len(set(imported_predictions(ckpt, fm).tolist())) >= 2  # not a degenerate constant network
    source = load(ckpt).training["imported_from"]
    assert source["file"] == f"{name}.onnx" and len(source["sha256"]) == 64 and source["producer"] == "test"


def test_dense_one_bit_input(tmp_path: Path) -> None:
    check_parity(tmp_path, dense_net(), "dense")
    arch = load(tmp_path / "dense.pt").architecture
    assert arch["input"]["planes"] == [7] and [layer["out"] for layer in arch["layers"]] == [32, 24, 10]


def test_dense_with_scaled_weights(tmp_path: Path) -> None:
    check_parity(tmp_path, dense_net((16,), weight_scale=0.1), "scaled")  # Brevitas's SignedBinaryWeight: 0.1


@pytest.mark.parametrize("zero_one", [False, True], ids=["bipolar", "multithreshold-01-padded"])
def test_conv_integer_input(tmp_path: Path, zero_one: bool) -> None:
    check_parity(tmp_path, conv_net(zero_one), "conv")
    arch = load(tmp_path / "conv.pt").architecture
    assert arch["input"].get("encoding") == "integer" and arch["input"]["planes"] == list(range(8))
    assert [layer["kind"] for layer in arch["layers"]] == ["conv", "conv", "pool", "dense", "output"]


def test_refusals_are_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A 1-bit input split that is not the MSB (x - 0.3 >= 0 switches between pixels 76 and 77: an input
    # table) straight into the output layer.
    g = Graph([1, 1, 28, 28])
    g.node("Flatten", axis=1).node("Sub", g.const(0.3)).sign()
    g.node("MatMul", g.weight((784, 10))).batchnorm(10)
    path = g.save(tmp_path / "split.onnx")
    assert main(["import", str(path), "--out", str(tmp_path / "a.pt")]) == 2
    err = capsys.readouterr().err
    assert "(MatMul): the output layer reads the quantised input itself" in err and "Traceback" not in err
    # Weights that are not binary.
    g = Graph([1, 1, 28, 28])
    g.node("Flatten", axis=1).node("Sub", g.const(0.5)).sign()
    g.node("MatMul", g.const(np.random.default_rng(0).uniform(-1, 1, (784, 10)))).batchnorm(10)
    assert main(["import", str(g.save(tmp_path / "float.onnx")), "--out", str(tmp_path / "b.pt")]) == 2
    assert "the weights are not binary" in capsys.readouterr().err
    # Not an ONNX file at all.
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"definitely not protobuf")
    assert main(["import", str(bogus), "--out", str(tmp_path / "c.pt")]) == 2
    assert "not a readable ONNX model" in capsys.readouterr().err
    assert not any((tmp_path / n).exists() for n in ("a.pt", "b.pt", "c.pt"))


def test_finn_onnx_form(tmp_path: Path) -> None:
    g = finn_style_net()
    onnx_path = g.save(tmp_path / "finn.onnx")
    ckpt = tmp_path / "finn.pt"
    assert main(["import", str(onnx_path), "--out", str(ckpt)]) == 0
    assert load(ckpt).architecture["input"]["encoding"] == "integer"
    g.nodes.pop()  # qonnx's reference output: the scores before TopK
    g.current = g.nodes[-1].output[0]
    scores_path = g.save(tmp_path / "scores.onnx")
    fm = data.load("fashion-mnist").test.images[:300]
    assert (imported_predictions(ckpt, fm) == onnx_predictions(scores_path, fm)).all()


def raw_export_net() -> Graph:
    """What a raw Brevitas / torch export looks like before qonnx-cleanup: the flatten as a shape subgraph
    (the input read by Shape and by Reshape), Identity and Dropout in the chain, a dangling debug node,
    and a TopK whose values nobody reads (its indices are the graph's output)."""
    g = Graph([1, 1, 28, 28], seed=3)
    x = g.current
    g.count += 1
    shape, batch, unsq, target = (f"s{g.count}_{i}" for i in range(4))
    zero, minus_one = g.const(np.int64(0)), g.const(np.int64([-1]))
    g.inits[-2] = numpy_helper.from_array(np.int64(0), zero)
    g.inits[-1] = numpy_helper.from_array(np.int64([-1]), minus_one)
    axes = g.const(np.int64([0]))
    g.inits[-1] = numpy_helper.from_array(np.int64([0]), axes)
    g.nodes += [helper.make_node("Shape", [x], [shape], name="shape"),
                helper.make_node("Gather", [shape, zero], [batch], name="gather", axis=0),
                helper.make_node("Unsqueeze", [batch, axes], [unsq], name="unsqueeze"),
                helper.make_node("Concat", [unsq, minus_one], [target], name="concat", axis=0),
                helper.make_node("Shape", [x], ["debug_shape"], name="dangling")]
    g.node("Reshape", target).node("Identity").node("Mul", g.const(2.0)).node("Sub", g.const(1.0)).sign()
    for fan_in, w in ((784, 24), (24, 16)):
        g.node("MatMul", g.weight((fan_in, w))).batchnorm(w).sign().node("Dropout")
    g.node("MatMul", g.weight((16, 10))).batchnorm(10)
    k = g.const(np.int64([1]))
    g.inits[-1] = numpy_helper.from_array(np.int64([1]), k)
    g.count += 1
    g.nodes.append(helper.make_node("TopK", [g.current, k], [f"values{g.count}", f"indices{g.count}"], name="topk",
                                    axis=1))
    g.current = f"indices{g.count}"  # the graph's output: the class index; the values reach nothing
    return g


def test_a_raw_export_imports_as_downloaded(tmp_path: Path) -> None:
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    path = raw_export_net().save(tmp_path / "raw.onnx")
    proto = onnx.load(str(path))
    proto.graph.output[0].type.tensor_type.elem_type = TensorProto.INT64
    onnx.save(proto, str(path))
    ckpt = tmp_path / "raw.pt"
    assert main(["import", str(path), "--out", str(ckpt)]) == 0
    pixels = np.concatenate([data.load("fashion-mnist").test.images[:300],
                             np.random.default_rng(1).integers(0, 256, (200, 1, 28, 28), dtype=np.uint8)])
    proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value = len(pixels)
    model = cleanup_model(ModelWrapper(proto))
    theirs = qonnx_exec.execute_onnx(model, {model.graph.input[0].name: pixels.astype(np.float32) / 255.0})
    indices = np.asarray(theirs[model.graph.output[0].name]).reshape(len(pixels))
    ours = imported_predictions(ckpt, pixels)
    assert (ours == indices).all(), f"{(ours != indices).sum()} of {len(ours)} predictions differ"
    assert len(set(ours.tolist())) >= 2


def test_a_shape_used_for_more_than_a_flatten_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    g = raw_export_net()
    gather = next(n for n in g.nodes if n.name == "gather")
    one = g.const(np.int64(1))
    g.inits[-1] = numpy_helper.from_array(np.int64(1), one)
    gather.input[1] = one  # the channel count: not known without running the network
    path = g.save(tmp_path / "bad.onnx")
    assert main(["import", str(path), "--out", str(tmp_path / "bad.pt")]) == 2
    err = capsys.readouterr().err
    assert "only the batch dimension (0) is known" in err and "gather" in err
    assert not (tmp_path / "bad.pt").exists()
