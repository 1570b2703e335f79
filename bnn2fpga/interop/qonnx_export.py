"""bnn2fpga checkpoint -> a QONNX graph with the same predictions (for FINN, qonnx, onnxruntime).

The graph takes the image as bnn2fpga's datasets give it to PyTorch: uint8 pixels / 255, NCHW,
float32, any batch size. It is written from the integer model the reference executes, so every
threshold is bnn2fpga's own:

- **input**: an input table (codes that never fall as the pixel rises) is a ``MultiThreshold`` on
  pixel / 255 whose count is the code, and what follows reads codes where it would read pixels;
  1-bit input at plane 7 is ``Add(-0.5)`` then ``BipolarQuant``; an integer first layer
  over all 8 planes is ``Mul(255)`` then an unsigned 8-bit ``Quant``. Other plane sets (bit planes
  as binary channels, or the kept planes of an integer first layer) are taken apart with
  standard ops: ``Mul(255)``, ``Round``, ``Reshape``, ``Div`` by 2^p, ``Floor``, ``Mod 2``
  (then ``Mul 2, Add -1`` for +-1 channels, colour-major, or ``Mul`` by 2^p and ``ReduceSum`` for
  the integer). FINN has no transformation for the latter form; qonnx and onnxruntime run it.
- **hidden layers**: ``Pad`` with the layer's padding value, ``Conv`` or ``MatMul`` with +-1
  weights (the integer dot product, exact in float32), ``Add`` of minus the threshold (half-way
  between two reachable dots) and ``Mul`` by the comparison's direction, ``BipolarQuant``;
  ``MaxPool`` after it. A dense layer after a conv reads ONNX's NCHW ``Flatten`` order.
- **output**: ``MatMul``, then the popcount ``(dot + MW) / 2`` looks up PyTorch's float score of
  each class in a ``Gather`` table, so the scores (and their argmax, ties included) are the
  reference's bit for bit. The output batch-norm is kept in the model's metadata, from which
  ``bnn2fpga import`` restores it exactly once it has checked that it gives the same table.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..checkpoint import Checkpoint
from ..errors import UserError
from ..ir.graph import BinaryConv, BinaryDense, Concat, Graph, MaxPool, Output
from ..ir.pipeline import lower

QONNX_DOMAIN = "qonnx.custom_op.general"
OPSET = 13
OUTPUT_BN_KEY = "bnn2fpga.output_batchnorm"
NAME_KEY = "bnn2fpga.name"  # the architecture's name, which names the generated Verilog top


class ExportError(UserError):
    pass


class _Builder:
    def __init__(self) -> None:
        self.nodes: list = []
        self.inits: list = []
        self.count = 0

    def const(self, value: np.ndarray, name: str) -> str:
        from onnx import numpy_helper

        self.count += 1
        full = f"{name}_{self.count}"
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), full))
        return full

    def node(self, op: str, inputs: list[str], *, domain: str = "", **attrs: object) -> str:
        from onnx import helper

        self.count += 1
        out = f"{op.lower()}_{self.count}"
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"{op}_{self.count}", domain=domain, **attrs))
        return out

    def scalar(self, op: str, x: str, value: float) -> str:
        return self.node(op, [x, self.const(np.array(value, np.float32), op.lower())])

    def bipolar(self, x: str) -> str:
        return self.node("BipolarQuant", [x, self.const(np.array(1.0, np.float32), "scale")], domain=QONNX_DOMAIN)


def _table_thresholds(table: tuple[tuple[int, ...], ...]) -> np.ndarray:
    """An input table as MultiThreshold thresholds on pixel / 255: per channel, code k begins at the first
    pixel whose code reaches k, so the count of thresholds passed is the code (codes must not fall)."""
    top = max(max(row) for row in table)
    rows = []
    for c, row in enumerate(table):
        if any(b < a for a, b in zip(row, row[1:], strict=False)):
            raise ExportError(f"the input table's codes fall as the pixel rises (channel {c}); QONNX has no table "
                              "lookup FINN reads, and a MultiThreshold can only count up: export needs codes that "
                              "never decrease")
        # Channels whose codes stop short get thresholds above every pixel.
        rows.append([(next((p for p, v in enumerate(row) if v >= k), 256) - 0.5) / 255 for k in range(1, top + 1)])
    return np.array(rows, np.float32)


def _input(b: _Builder, graph: Graph, x: str) -> str:
    inp = graph.input
    c, h, w = inp.channels, inp.height, inp.width
    planes = list(inp.planes)
    if inp.table is None and inp.encoding == "planes" and planes == [7]:
        return b.bipolar(b.scalar("Add", x, -0.5))  # pixel/255 >= 0.5  <=>  pixel >= 128
    pixels = b.scalar("Mul", x, 255.0)
    if inp.table is not None:  # the codes, counted by a MultiThreshold, stand in for the pixels
        pixels = b.node("MultiThreshold", [x, b.const(_table_thresholds(inp.table), "input_table")],
                        domain=QONNX_DOMAIN, out_dtype="UINT8")
    if inp.encoding == "integer" and planes == list(range(8)):
        if inp.table is not None:
            return pixels  # the MultiThreshold's count is already the 8-bit code
        zero, one, eight = (b.const(np.array(v, np.float32), n) for v, n in ((0.0, "zp"), (1.0, "scale"),
                                                                             (8.0, "bits")))
        return b.node("Quant", [pixels, one, zero, eight], domain=QONNX_DOMAIN, signed=0, narrow=0,
                      rounding_mode="ROUND")
    pixels = b.node("Round", [pixels])
    split = b.node("Reshape", [pixels, b.const(np.array([-1, c, 1, h, w], np.int64), "shape")])
    powers = np.array([2.0 ** p for p in planes], np.float32).reshape(1, 1, len(planes), 1, 1)
    bits = b.node("Floor", [b.node("Div", [split, b.const(powers, "plane_weights")])])
    bits = b.node("Mod", [bits, b.const(np.array(2.0, np.float32), "two")], fmod=1)
    if inp.encoding == "integer":
        kept = b.node("Mul", [bits, b.const(powers, "plane_weights")])
        return b.node("ReduceSum", [kept, b.const(np.array([2], np.int64), "axes")], keepdims=0)
    signs = b.scalar("Add", b.scalar("Mul", bits, 2.0), -1.0)
    return b.node("Reshape", [signs, b.const(np.array([-1, c * len(planes), h, w], np.int64), "shape")])


def _first_on(layer: BinaryConv | BinaryDense) -> tuple[np.ndarray, np.ndarray]:
    """(bias, sign) per channel so that sign * (dot + bias) >= 0 is the layer's activation."""
    assert layer.thresholds is not None and layer.direction is not None
    flat = np.asarray(layer.weights).reshape(layer.mh, -1)
    t = np.asarray(layer.thresholds, np.float64)
    if layer.input_planes is None:  # popcount pc = (dot + MW) / 2
        edge = 2 * t - layer.mw
    else:  # count S = dot + n_neg * sum 2^p
        edge = t - (flat == 0).sum(1) * layer.plane_weight_sum
    up = np.asarray(layer.direction) > 0
    bias = np.where(up, -(edge - 0.5), -(edge + 0.5))  # half-way to the next reachable dot
    return bias.astype(np.float32), np.where(up, 1.0, -1.0).astype(np.float32)


def _signs(bits: np.ndarray) -> np.ndarray:
    return (np.asarray(bits, np.float32) * 2 - 1).astype(np.float32)


def _dense_matrix(layer: BinaryDense | Output, shape: tuple[int, int, int]) -> np.ndarray:
    """(MW, MH) MatMul weights with rows in ONNX's NCHW flatten order (bnn2fpga's columns are HWC)."""
    h, w, c = shape
    signs = _signs(layer.weights)
    if h * w > 1:
        signs = signs.reshape(layer.mh, h, w, c).transpose(0, 3, 1, 2).reshape(layer.mh, -1)
    return np.ascontiguousarray(signs.T)


def build_graph(ckpt: Checkpoint):  # noqa: ANN201 (onnx.ModelProto, imported lazily)
    from onnx import TensorProto, helper

    graph = lower(ckpt)
    branch = next((layer for layer in graph.layers if isinstance(layer, Concat)), None)
    if branch is not None:
        raise ExportError(f"layer {branch.name}: this network branches (a concat), and the QONNX export writes "
                          "chains of layers; build it with `bnn2fpga build` (the RTL backend expresses branches)")
    b = _Builder()
    inp = graph.input
    x = _input(b, graph, "image")
    shape = (inp.height, inp.width, inp.features)  # HWC of what the next layer reads
    flat = False
    for layer in graph.layers:
        if isinstance(layer, MaxPool):
            s = layer.size
            x = b.node("MaxPool", [x], kernel_shape=[s, s], strides=[s, s])
            shape = layer.out_shape
            continue
        if isinstance(layer, BinaryConv):
            if layer.padding:
                p = layer.padding
                if layer.input_planes is not None:
                    value = float(sum(1 << q for q in layer.input_planes) * layer.pad_bit)
                else:
                    value = 1.0 if layer.pad_bit else -1.0
                x = b.node("Pad", [x, b.const(np.array([0, 0, p, p, 0, 0, p, p], np.int64), "pads"),
                                   b.const(np.array(value, np.float32), "pad_value")], mode="constant")
            weights = _signs(layer.weights).transpose(0, 3, 1, 2)  # (OC, K, K, IC) -> OIHW
            x = b.node("Conv", [x, b.const(np.ascontiguousarray(weights), "weights")],
                       kernel_shape=[layer.kernel, layer.kernel])
            per_channel = (1, layer.mh, 1, 1)
            shape = layer.out_shape
        else:
            if not flat:
                x = b.node("Flatten", [x], axis=1)
                flat = True
            x = b.node("MatMul", [x, b.const(_dense_matrix(layer, shape), "weights")])
            per_channel = (1, layer.mh)
            shape = (1, 1, layer.mh)
        if isinstance(layer, Output):
            assert layer.logit_table is not None
            k, mw = layer.mh, layer.mw
            pc = b.scalar("Mul", b.scalar("Add", x, float(mw)), 0.5)
            index = b.node("Add", [b.node("Cast", [pc], to=TensorProto.INT64),
                                   b.const(np.arange(k, dtype=np.int64).reshape(1, k) * (mw + 1), "row_offsets")])
            table = np.ascontiguousarray(np.asarray(layer.logit_table, np.float32).reshape(-1))
            x = b.node("Gather", [b.const(table, "class_scores"), index], axis=0)
            break
        bias, sign = _first_on(layer)
        x = b.node("Add", [x, b.const(bias.reshape(per_channel), "minus_threshold")])
        x = b.node("Mul", [x, b.const(sign.reshape(per_channel), "direction")])
        x = b.bipolar(x)
    b.nodes[-1].output[0] = "scores"
    k = graph.output.mh
    onnx_graph = helper.make_graph(
        b.nodes, ckpt.architecture.get("name", "bnn"),
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", inp.channels, inp.height, inp.width])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", k])], b.inits)
    model = helper.make_model(onnx_graph, producer_name="bnn2fpga", producer_version="1",
                              opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(QONNX_DOMAIN, 1)])
    model.ir_version = 8
    bn = ckpt.model().blocks[-1]
    norm = next(m for m in bn.modules() if hasattr(m, "running_var"))
    record = {name: [float(v) for v in getattr(norm, attr).detach().numpy().astype(np.float32)]
              for name, attr in (("weight", "weight"), ("bias", "bias"), ("mean", "running_mean"),
                                 ("var", "running_var"))}
    record["eps"] = float(norm.eps)
    helper.set_model_props(model, {OUTPUT_BN_KEY: json.dumps(record),
                                   NAME_KEY: str(ckpt.architecture.get("name", "bnn"))})
    return model


def export_qonnx(ckpt: Checkpoint, out: Path | str, *, overwrite: bool = False) -> None:
    import onnx

    out = Path(out)
    if out.exists() and not overwrite:
        raise ExportError(f"{out} already exists; choose another --out or pass --force to replace it")
    model = build_graph(ckpt)
    onnx.checker.check_model(model)
    staged = out.with_name(out.name + ".partial")
    onnx.save(model, str(staged))
    staged.replace(out)
