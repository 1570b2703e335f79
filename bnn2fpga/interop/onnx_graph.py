"""An ONNX graph as a chain of operations on one activation tensor, constants folded.

Exporters (Brevitas's QONNX export, with the TorchScript or the dynamo exporter, raw or after
``qonnx-cleanup``) differ in names, node order and in how much is already folded. This module
reduces all of them to the same thing: the constants (initializers, ``Constant`` nodes and every
node computed from constants only, such as a weight's ``BipolarQuant``), and the chain of nodes
that carry the image from the graph input to the output, in dataflow order. A graph that branches
(two nodes reading the activation) is refused: binary networks of the supported kind are chains.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError

QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general", "finn")


class OnnxImportError(UserError):
    """The model cannot be imported; the message names the node and the reason."""


@dataclass
class Op:
    """One node of the activation chain: its type, attributes and constant inputs (by position)."""

    op_type: str
    name: str
    attrs: dict[str, Any]
    consts: dict[int, np.ndarray] = field(default_factory=dict)
    domain: str = ""

    def where(self) -> str:
        return f"node {self.name!r} ({self.op_type})"


def _attr(a: Any) -> Any:
    import onnx

    value = onnx.helper.get_attribute_value(a)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [v.decode() if isinstance(v, bytes) else v for v in value]
    return value


def quant(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, bits: np.ndarray, *, signed: int,
           narrow: int, rounding_mode: str = "ROUND") -> np.ndarray:
    """QONNX ``Quant``: clip(round(x / scale) + zp) - zp, times scale (round half to even, as numpy and qonnx).

    A signed ``Quant`` of bit width 1 is bipolar, as qonnx executes it (``int_quant``) and Brevitas means
    it: ``x / scale + zp >= 0`` gives +1, else -1. Read literally it would clip to the empty range
    [0, 0] when narrow (or [-1, 0] otherwise): older Brevitas exports (the QONNX model zoo's first
    TFC_1W1A) write their binary weights and activations this way."""
    b = float(np.asarray(bits).reshape(-1)[0])
    if b == 1 and signed:
        y = np.asarray(x / scale + zero_point)
        return ((np.where(y >= 0, 1.0, -1.0) - zero_point) * scale).astype(np.float32)
    lo = -(2 ** (b - 1)) + narrow if signed else 0.0
    hi = 2 ** (b - 1) - 1 if signed else 2**b - 1 - narrow
    rounding = {"ROUND": np.round, "FLOOR": np.floor, "CEIL": np.ceil, "ROUND_TO_ZERO": np.trunc}
    if rounding_mode.upper() not in rounding:
        raise OnnxImportError(f"Quant rounding_mode {rounding_mode!r} is not supported")
    q = rounding[rounding_mode.upper()](x / scale + zero_point)
    return ((np.clip(q, lo, hi) - zero_point) * scale).astype(np.float32)


def bipolar(x: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return (np.where(x >= 0, 1.0, -1.0) * scale).astype(np.float32)


def multithreshold(x: np.ndarray, thresholds: np.ndarray, *, out_scale: float = 1.0, out_bias: float = 0.0,
                    data_layout: str = "NCHW", **_: Any) -> np.ndarray:
    """FINN/QONNX ``MultiThreshold``: out_scale * (number of thresholds <= x, per channel) + out_bias."""
    t = np.asarray(thresholds, dtype=np.float32)
    axis = 1 if data_layout.startswith("NC") else x.ndim - 1
    moved = np.moveaxis(x, axis, -1)
    rows = t if t.shape[0] == moved.shape[-1] else np.broadcast_to(t, (moved.shape[-1], t.shape[-1]))
    counts = (moved[..., None] >= rows).sum(-1)
    return np.moveaxis(out_scale * counts + out_bias, -1, axis).astype(np.float32)


# Elementwise numpy versions of the operations the chain may contain, for folding constants and for
# evaluating a layer's tail on every reachable dot product.
ELEMENTWISE: dict[str, Callable[..., np.ndarray]] = {
    "Mul": lambda a, b: a * b, "Add": lambda a, b: a + b, "Sub": lambda a, b: a - b,
    "Div": lambda a, b: a / b, "Pow": lambda a, b: np.power(a, b),
    "Sqrt": np.sqrt, "Neg": np.negative, "Identity": lambda a: a,
    "Sign": lambda a: np.sign(a).astype(np.float32),  # ONNX: Sign(0) = 0
}


def _fold(op_type: str, attrs: dict[str, Any], args: list[np.ndarray | None]) -> np.ndarray | None:
    """The value of a node whose inputs are all constants, or None when it is not one we fold."""
    a = args[0]
    if a is None:
        return None
    if op_type in ELEMENTWISE and None not in args:
        return np.asarray(ELEMENTWISE[op_type](*args))
    if op_type == "BipolarQuant":
        return bipolar(a, args[1])  # type: ignore[arg-type]
    if op_type == "Quant":
        return quant(a, args[1], args[2], args[3], signed=attrs.get("signed", 1),  # type: ignore[arg-type]
                      narrow=attrs.get("narrow", 0), rounding_mode=attrs.get("rounding_mode", "ROUND"))
    if op_type == "Transpose":
        return np.transpose(a, attrs.get("perm"))
    if op_type == "Reshape" and args[1] is not None:
        return np.reshape(a, [int(d) if d != 0 else a.shape[i] for i, d in enumerate(args[1])])
    if op_type in ("Cast", "Identity", "Dropout"):
        return a
    if op_type == "Concat" and None not in args:
        return np.concatenate([np.atleast_1d(v) for v in args], axis=int(attrs.get("axis", 0)))
    if op_type == "Gather" and args[1] is not None:
        return np.take(a, np.asarray(args[1], dtype=np.int64), axis=int(attrs.get("axis", 0)))
    if op_type in ("Unsqueeze", "Squeeze"):
        axes = attrs.get("axes", None if len(args) < 2 or args[1] is None else [int(v) for v in args[1]])
        if op_type == "Unsqueeze":
            return np.expand_dims(a, tuple(axes or ()))
        return np.squeeze(a, tuple(axes) if axes else None)
    return None


@dataclass
class Chain:
    input_name: str
    input_shape: list[int | None]
    ops: list[Op]
    producer: str
    metadata: dict[str, str] = field(default_factory=dict)
    #: the input's FINN data type annotation (``UINT8``: the graph takes the raw pixel), if the graph has one
    input_datatype: str | None = None


def read_chain(path: Path | str) -> Chain:
    """Load ``path`` and return its activation chain (constants folded into each op's ``consts``)."""
    import onnx
    from onnx import numpy_helper

    path = Path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf decode errors and friends: the file is not ONNX
        raise OnnxImportError(f"{path}: not a readable ONNX model ({type(e).__name__}: {str(e)[:120]})") from None
    if not model.graph.node:
        raise OnnxImportError(f"{path}: an ONNX model without nodes (truncated, or not a network)")
    _refuse_finn_hardware(model, path)
    for node in model.graph.node:  # FINN's DebugMarker (Brevitas's debug export) copies its input
        if node.op_type == "DebugMarker":
            node.op_type, node.domain = "Identity", ""
            del node.attribute[:]
    _load_external_data(model, path)
    graph = model.graph
    consts: dict[str, np.ndarray] = {}
    for init in graph.initializer:
        try:
            array = numpy_helper.to_array(init)
        except (ValueError, TypeError) as e:  # dimensions without the data they promise, an unknown type
            raise OnnxImportError(f"{path}: initializer {init.name!r} (dims {list(init.dims)}) cannot be read "
                                  f"({str(e)[:100]}); the file is truncated or was written without its data") from None
        consts[init.name] = array.astype(np.float32) if array.dtype.kind == "f" else array
    inputs = [i for i in graph.input if i.name not in consts]
    if len(inputs) != 1:
        raise OnnxImportError(f"{path}: expected one image input, found {len(inputs)} ({[i.name for i in inputs]})")
    dims = inputs[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    pending = list(graph.node)
    # Shape arithmetic of a raw export (torch's x.view(x.size(0), -1): Shape -> Gather -> Unsqueeze -> Concat ->
    # Reshape) folds to a constant: the batch dimension becomes 0, which Reshape reads as "keep this
    # dimension". Only that dimension is known without running the network, and only Reshape may read it.
    from_shape: set[str] = set()
    # Fold constants to a fixed point: node order is not dataflow order after qonnx-cleanup.
    changed = True
    while changed:
        changed = False
        for node in list(pending):
            attrs = {a.name: _attr(a) for a in node.attribute}
            if node.op_type == "Constant":
                consts[node.output[0]] = numpy_helper.to_array(attrs_raw(node))
            elif node.op_type == "Shape" and node.input and node.input[0] not in consts:
                consts[node.output[0]] = np.zeros(1, dtype=np.int64)  # [batch]: the rest is unknown here
                from_shape.add(node.output[0])
            elif node.input and all(n == "" or n in consts for n in node.input):
                if node.op_type == "Gather" and node.input[0] in from_shape and \
                        np.any(np.asarray(consts[node.input[1]]) != 0):
                    raise OnnxImportError(f"{path}: node {node.name!r} (Gather) reads dimension "
                                          f"{consts[node.input[1]].tolist()} of an activation's Shape; only the "
                                          "batch dimension (0) is known before running the network: export the "
                                          "flatten as Flatten or x.view(x.size(0), -1)")
                value = _fold(node.op_type, attrs, [consts.get(n) if n else None for n in node.input])
                if value is None:
                    continue
                consts[node.output[0]] = value
                if any(n in from_shape for n in node.input):
                    from_shape.add(node.output[0])
            else:
                continue
            pending.remove(node)
            changed = True
    outputs = {o.name for o in graph.output}
    # Nodes whose results reach neither the output nor another node (a dangling debug tensor): dropped.
    read = True
    while read:
        read = False
        needed = outputs | {n for node in pending for n in node.input}
        for node in list(pending):
            if not any(o in needed for o in node.output if o):
                pending.remove(node)
                read = True
    for node in pending:
        for i, n in enumerate(node.input):
            if n in from_shape and not (node.op_type == "Reshape" and i == 1):
                raise OnnxImportError(f"{path}: node {node.name!r} ({node.op_type}) computes with an activation's "
                                      "shape; bnn2fpga folds shapes only into a Reshape")
    consumers: dict[str, list[Any]] = {}
    for node in pending:
        for n in node.input:
            if n and n not in consts:
                consumers.setdefault(n, []).append(node)
    ops: list[Op] = []
    current = inputs[0].name
    while current not in outputs:
        readers = consumers.get(current, [])
        if len(readers) != 1:
            if not readers:
                raise OnnxImportError(f"{path}: tensor {current!r}: nothing reads it, and it is not the graph's "
                                      "output; bnn2fpga imports networks that are one chain of layers from the input "
                                      "to the output")
            names = ", ".join(f"{r.name!r} ({r.op_type})" for r in readers)
            raise OnnxImportError(f"{path}: tensor {current!r} branches: {len(readers)} nodes read it ({names}); "
                                  "bnn2fpga imports networks that are one chain of layers (no skip connections or "
                                  "residual adds): export the network without the branch")
        node = readers[0]
        variable = [i for i, n in enumerate(node.input) if n and n not in consts]
        lookup = node.op_type == "Gather" and variable == [1]  # a constant table indexed by the activation
        if variable != [0] and not (node.op_type in ("Mul", "Add") and variable == [1]) and not lookup:
            raise OnnxImportError(f"{path}: node {node.name!r} ({node.op_type}) combines two activations; only chains "
                               "of layers are supported")
        c = {i: consts[n] for i, n in enumerate(node.input) if n in consts}
        if variable == [1] and not lookup:  # constant * x written the other way round: commutative, normalise
            c = {1: c[0]}
        ops.append(Op(node.op_type, node.name or node.output[0], {a.name: _attr(a) for a in node.attribute}, c,
                      node.domain))
        # The output the chain goes on from: TopK's indices when only they are the graph's output.
        current = next((o for o in node.output if o and (o in consumers or o in outputs)), node.output[0])
    producer = f"{model.producer_name} {model.producer_version}".strip() or "unknown"
    metadata = {p.key: p.value for p in model.metadata_props}
    datatype = next((q.value for a in graph.quantization_annotation if a.tensor_name == inputs[0].name
                     for q in a.quant_parameter_tensor_names if q.key == "finn_datatype"), None)
    return Chain(inputs[0].name, shape, ops, producer, metadata, datatype)


#: FINN's hardware layers (after ``convert_to_hls_layers`` / ``to_hw``): old graphs put them in domain
#: ``finn`` with every other FINN op, or in none, so they are known by name as well as by domain
FINN_HARDWARE = re.compile(r"(StreamingFCLayer|MatrixVectorActivation|MVAU|VectorVectorActivation|VVAU|Streaming|"
                           r"ConvolutionInputGenerator|FMPadding|AddStreams|DuplicateStreams|Thresholding_|"
                           r"LabelSelect_|Mem2Stream|TLastMarker|IODMA|ChannelwiseOp|GlobalAccPool|Pool_|"
                           r"DownSampler|UpsampleNearestNeighbour_|FIFO$)")


def _refuse_finn_hardware(model: Any, path: Path) -> None:
    """One clear line for a graph of FINN's hardware layers: a dataflow FINN made, not a network."""
    hw = [n for n in model.graph.node
          if n.domain.startswith("finn.custom_op.fpgadataflow") or FINN_HARDWARE.match(n.op_type)]
    if not hw:
        return
    counts = Counter(n.op_type for n in hw)
    kinds = ", ".join(f"{t} x{k}" if k > 1 else t for t, k in counts.items())
    first = hw[0]
    raise OnnxImportError(f"{path}: node {first.name or first.output[0]!r} ({first.op_type}) is one of FINN's "
                          f"hardware layers ({len(hw)} of the graph's {len(model.graph.node)} nodes: {kinds}): the "
                          "graph is FINN's dataflow after its conversion to HLS/RTL layers, with weights and "
                          "thresholds in FINN's hardware layout, not a network bnn2fpga reads; import the graph FINN "
                          "started from (the QONNX or FINN-ONNX network before convert_to_hls_layers / to_hw, such "
                          "as the streamlined model)")


def _load_external_data(model: Any, path: Path) -> None:
    """Load initializers kept in files beside the model, refusing any that point outside its folder."""
    from onnx import external_data_helper

    folder = path.resolve().parent
    tensors = [*model.graph.initializer,
               *(a.t for node in model.graph.node for a in node.attribute if a.HasField("t"))]
    for tensor in tensors:
        if not external_data_helper.uses_external_data(tensor):
            continue
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        target = (folder / location).resolve()
        if not location or Path(location).is_absolute() or not target.is_relative_to(folder):
            raise OnnxImportError(f"{path}: tensor {tensor.name!r} keeps its data at {location!r}, outside the "
                                  "model's folder; bnn2fpga reads external data only from files beside the model")
        if not target.is_file():
            raise OnnxImportError(f"{path}: tensor {tensor.name!r} keeps its data in {location!r}, which is missing; "
                                  "copy it next to the model")
    try:
        external_data_helper.load_external_data_for_model(model, str(folder))
    except Exception as e:  # a short or unreadable data file
        raise OnnxImportError(f"{path}: cannot read its external data ({type(e).__name__}: {str(e)[:120]})") from None


def attrs_raw(node: Any) -> Any:
    """The tensor of a ``Constant`` node (its ``value`` attribute, or a value_float(s)/value_int(s))."""
    import onnx

    for a in node.attribute:
        if a.name == "value":
            return a.t
        if a.name in ("value_float", "value_floats", "value_int", "value_ints"):
            return onnx.numpy_helper.from_array(np.asarray(_attr(a), dtype=np.float32))
    raise OnnxImportError(f"Constant node {node.name!r} has no value")
