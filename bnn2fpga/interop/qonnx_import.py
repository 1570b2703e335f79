"""Binary networks in QONNX / FINN-ONNX form (as Brevitas exports them) -> bnn2fpga checkpoints.

The graph is read as a chain (:mod:`.onnx_graph`) and cut into layers:

- **input quantiser**: elementwise pre-processing (``Mul``/``Add``/``Sub``/``Div`` by constants,
  ``Reshape``/``Flatten``) and a quantiser (``BipolarQuant``, ``Quant``, ``Sign``, ``MultiThreshold``).
  It is evaluated on every pixel value 0..255 (the image given to the model is ``pixel / divisor``,
  ``divisor`` 1 when the graph declares its input ``UINT8``, else 255 as torchvision's ``ToTensor``):
  a 1-bit result must switch once, between pixels 127 and 128 (the most significant bit plane); a
  multi-bit one must be an affine function of the pixel (the integer-input first layer over all 8
  planes), or levels on one grid (an input table). Anything else is refused naming the pixels where
  it departs, and a pixel divisor under which it would import if one does.
- **layers**: ``MatMul``/``Gemm``/``Conv`` with constant weights of one magnitude per output channel
  (binary weights times a positive scale, as ``BipolarQuant`` exports them), then elementwise
  constants and ``BatchNormalization``, then a 1-bit activation (``BipolarQuant``, ``Sign``,
  ``MultiThreshold`` with one threshold); ``MaxPool`` after an activation is a binary max-pool.
  Shape-only ops (``Reshape``, ``Flatten``, ``Unsqueeze``, ``Squeeze``) may sit anywhere; after a
  weight layer, each constant is broadcast against the tensor's shape there and must be per channel.
- **output**: the last weight layer and the elementwise ops after it, then optionally
  ``TopK``/``ArgMax``/``LabelSelect``.

Every hidden layer's function of its integer dot product is evaluated at every reachable dot,
so the threshold bnn2fpga uses is the one the graph computes (with a clear refusal when the
result is not a threshold). Dense layers after a conv are re-ordered from ONNX's NCHW flattening
to bnn2fpga's HWC streaming order.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import Checkpoint
from .assemble import Layer, to_model
from .onnx_graph import ELEMENTWISE, Chain, OnnxImportError, Op, bipolar, multithreshold, quant, read_chain

SHAPE_OPS = ("Reshape", "Flatten", "Unsqueeze", "Squeeze", "Identity", "Cast", "Dropout")
QUANTISERS = ("BipolarQuant", "Quant", "Sign", "MultiThreshold")
WEIGHT_OPS = ("MatMul", "Gemm", "Conv")
HEADS = ("TopK", "ArgMax", "LabelSelect", "Softmax", "LogSoftmax")


def _per_channel(value: np.ndarray, channels: int, where: str) -> np.ndarray:
    """A constant broadcast against a layer's channels: a scalar or one value per channel, as (1, C)."""
    v = np.asarray(value, dtype=np.float32)
    if v.size == 1:
        return np.full((1, channels), v.reshape(-1)[0], np.float32)
    squeezed = v.reshape(-1)
    if squeezed.size != channels:
        raise OnnxImportError(f"{where}: a constant of shape {list(v.shape)} does not match the layer's "
                              f"{channels} channels")
    return squeezed.reshape(1, channels)


def apply_elementwise(op: Op, x: np.ndarray, channels: int) -> np.ndarray:
    """``op`` on values (K, C) of one layer's channels (per-channel constants broadcast along C)."""
    t = op.op_type
    if t == "BatchNormalization":
        scale, bias, mean, var = (_per_channel(op.consts[i], channels, op.where()) for i in (1, 2, 3, 4))
        eps = np.float32(op.attrs.get("epsilon", 1e-5))
        return ((x - mean) / np.sqrt(var + eps) * scale + bias).astype(np.float32)
    if t in ("Mul", "Add", "Sub", "Div", "Pow") and 1 in op.consts:
        return ELEMENTWISE[t](x, _per_channel(op.consts[1], channels, op.where())).astype(np.float32)
    if t in ("Sqrt", "Neg", "Identity", "Sign"):
        return ELEMENTWISE[t](x).astype(np.float32)
    if t == "Cast":  # to an integer type: the values here are whole numbers already
        return np.trunc(x).astype(np.float32)
    if t == "Gather" and 0 in op.consts and op.attrs.get("axis", 0) == 0 and op.consts[0].ndim == 1:
        table = np.asarray(op.consts[0], np.float32)
        index = x.astype(np.int64)
        if index.min() < -len(table) or index.max() >= len(table):
            raise OnnxImportError(f"{op.where()}: an index outside the {len(table)}-entry table")
        return table[index]
    if t == "BipolarQuant":
        return bipolar(x, op.consts[1])
    if t == "Quant":
        return quant(x, op.consts[1], op.consts[2], op.consts[3], signed=op.attrs.get("signed", 1),
                      narrow=op.attrs.get("narrow", 0), rounding_mode=op.attrs.get("rounding_mode", "ROUND"))
    if t == "MultiThreshold":
        return multithreshold(x, op.consts[1], out_scale=float(op.attrs.get("out_scale", 1.0)),
                               out_bias=float(op.attrs.get("out_bias", 0.0)), data_layout="NC")
    if t in WEIGHT_OPS:
        raise OnnxImportError(f"{op.where()}: a weight layer where the previous layer's 1-bit activation was expected "
                              "(a float layer in the middle); every hidden layer must end in a 1-bit activation "
                              "(BipolarQuant, Sign, or MultiThreshold with one threshold)")
    raise OnnxImportError(f"{op.where()}: not an operation bnn2fpga can fold into a threshold; a hidden layer is a "
                          "weight layer, then batch-norm or per-channel Mul/Add/Sub/Div, then a 1-bit activation "
                          "(BipolarQuant, Sign, or MultiThreshold with one threshold)")


@dataclass
class Activation:
    """What a layer's inputs hold: ``binary`` values lo/hi (bit 0/1), or ``integer`` a * pixel + b."""

    kind: str
    lo: float = -1.0
    hi: float = 1.0

    def dot_terms(self) -> tuple[float, float]:
        """(m, h): an input is m + h * s with s = +-1 (binary) or m + h * pixel (integer)."""
        if self.kind == "binary":
            return (self.lo + self.hi) / 2, (self.hi - self.lo) / 2
        return self.lo, self.hi  # integer: lo = b (offset), hi = a (slope)


def _scalar_op(op: Op) -> bool:
    return op.op_type in ("Mul", "Add", "Sub", "Div") and 1 in op.consts and op.consts[1].size == 1


def _quantiser_curve(ops: list[Op], inputs: np.ndarray) -> tuple[np.ndarray, Op, int]:
    """The pre-processing and input quantiser on model inputs ``inputs`` (1-D): the values, the quantiser
    and the index of the first op after it (scalar ``Add``/``Mul`` after the quantiser belong to it)."""
    x = inputs.astype(np.float32).reshape(-1, 1)
    for i, op in enumerate(ops):
        if op.op_type in SHAPE_OPS:
            continue
        if op.op_type in QUANTISERS:
            q32 = apply_elementwise(op, x, 1)
            # FINN-ONNX writes an 8-bit input as MultiThreshold -> Add -> Mul: scalar ops after the
            # quantiser belong to it.
            while i + 1 < len(ops) and (ops[i + 1].op_type in SHAPE_OPS or _scalar_op(ops[i + 1])):
                i += 1
                if ops[i].op_type not in SHAPE_OPS:
                    q32 = ELEMENTWISE[ops[i].op_type](q32, ops[i].consts[1].reshape(1, 1)).astype(np.float32)
            return q32.reshape(-1).astype(np.float64), op, i + 1
        if _scalar_op(op):
            x = ELEMENTWISE[op.op_type](x, op.consts[1].reshape(1, 1)).astype(np.float32)
            continue
        raise OnnxImportError(f"{op.where()}: expected pre-processing by scalar constants and then an input "
                              f"quantiser ({', '.join(QUANTISERS)})")
    raise OnnxImportError("no input quantiser found: a binary network starts by quantising its input")


def _pixel_inputs(divisor: float) -> np.ndarray:
    return np.arange(256, dtype=np.float32) / np.float32(divisor)


def _classify(q: np.ndarray) -> Activation | None:
    """What bnn2fpga computes from quantised pixels ``q`` (256 values): bit plane 7, or the integer
    first layer (``q`` affine in the pixel); None when neither."""
    p = np.arange(256)
    if len(np.unique(q)) == 2 and np.array_equal(q, np.where(p >= 128, q[255], q[0])):
        return Activation("binary", float(q[0]), float(q[255]))  # bit 0 (pixel < 128) -> q[0], bit 1 -> q[255]
    a = (q[255] - q[0]) / 255
    if a != 0 and np.allclose(q, q[0] + a * p, rtol=0, atol=abs(a) * 1e-4):
        return Activation("integer", float(q[0]), float(a))
    return None


def _switches(q: np.ndarray) -> list[int]:
    """The pixels p where the quantiser's value changes from pixel p - 1."""
    return [int(s) for s in np.flatnonzero(q[1:] != q[:-1]) + 1]


def _describe(q: np.ndarray, divisor: float) -> str:
    """Where quantised pixels ``q`` depart from what bnn2fpga's input can be, with the values found."""
    values = np.unique(q)
    given = f"the model's input being pixel / {divisor:g}"
    if len(values) == 1:
        return f"it gives {values[0]:g} at every pixel 0..255 ({given}): a constant, which carries no image"
    if len(values) == 2:
        switches = _switches(q)
        if len(switches) == 1:
            s = switches[0]
            return f"it switches between pixels {s - 1} ({q[s - 1]:g}) and {s} ({q[s]:g}), not 127 and 128 ({given})"
        shown = ", ".join(f"{s - 1}->{s} ({q[s - 1]:g} to {q[s]:g})" for s in switches[:4])
        return (f"it switches {len(switches)} times, between pixels {shown}{', ...' if len(switches) > 4 else ''} "
                f"({given}), not once between 127 and 128")
    p = np.arange(256)
    a = (q[255] - q[0]) / 255
    expected = q[0] + a * p
    bad = np.flatnonzero(~np.isclose(q, expected, rtol=0, atol=max(abs(a), 1e-12) * 1e-4))
    shown = ", ".join(f"{int(b)} -> {q[b]:g} (affine: {expected[b]:g})" for b in bad[:3])
    return (f"it has {len(values)} levels ({given}), and the line through pixel 0 -> "
            f"{q[0]:g} and 255 -> {q[255]:g} misses {len(bad)} pixels, {shown}{', ...' if len(bad) > 3 else ''}; "
            "bnn2fpga's integer first layer computes with the pixel's bits as an unsigned integer")


def _divisor_hint(ops: list[Op], q: np.ndarray, divisor: float, input_datatype: str | None) -> str:
    """A ``--pixel-divisor`` under which the quantiser imports, if one does (checked, not guessed)."""
    candidates = [1.0, 255.0, 256.0, 127.5, 128.0]
    if len(np.unique(q)) == 2 and len(_switches(q)) == 1:
        # One switch: find where it lies in the model's input and the divisors that put it at pixel 128.
        s = _switches(q)[0]
        lo, hi = (s - 1) / divisor, s / divisor
        for _ in range(60):  # bisect the model input t at which the quantiser switches
            mid = (lo + hi) / 2
            if _quantiser_curve(ops, np.float32([mid]))[0][0] == q[s]:
                hi = mid
            else:
                lo = mid
        if hi > 0:  # pixel 127 below the switch, 128 at or above it: D in (127 / t, 128 / t]; try its middle
            candidates = [float(f"{127.5 / hi:.{k}g}") for k in range(1, 8)] + [128 / hi, *candidates]
    for d in dict.fromkeys(candidates):
        if d <= 0 or d == divisor:
            continue
        act = _classify(_quantiser_curve(ops, _pixel_inputs(d))[0])
        if act is not None:
            what = "bit plane 7" if act.kind == "binary" else "the integer first layer"
            declared = (" (the graph declares its input UINT8, the raw pixel)"
                        if d == 1 and input_datatype == "UINT8" else "")
            shown = f"{d:g}" if float(f"{d:g}") == d else repr(d)  # exactly the divisor that was checked
            return f"with --pixel-divisor {shown}{declared} it imports exactly, as {what}"
    return ("no pixel divisor makes it import: quantise pixel / 255 with an unsigned 8-bit Quant of scale 1/255, "
            "or split it at pixel 128 (BipolarQuant of x - 0.5)")


def code_table(q: np.ndarray) -> tuple[Activation, list[int]] | None:
    """Quantised pixels ``q`` as ``lo + step * code(pixel)`` with integer codes 0..255 on one grid: the
    integer first layer over the codes of an input table. None when no such grid exists."""
    values = np.unique(q)
    if len(values) < 2:
        return None
    smallest = float(np.diff(values).min())
    for k in range(1, 17):  # the grid's step divides the smallest gap between two levels
        step = smallest / k
        codes = (q - values[0]) / step
        rounded = np.round(codes)
        if rounded.max() <= 255 and np.allclose(codes, rounded, rtol=0, atol=1e-4):
            return Activation("integer", float(values[0]), step), [int(v) for v in rounded]
    return None


def _input_quantiser(ops: list[Op], divisor: float,
                     input_datatype: str | None = None) -> tuple[Activation, int, list[int] | None]:
    """Evaluate the pre-processing and the input quantiser on every pixel value; where the layers begin;
    the input table's codes when the quantiser is neither bit plane 7 nor affine in the pixel."""
    q, op, start = _quantiser_curve(ops, _pixel_inputs(divisor))
    act = _classify(q)
    if act is not None:
        return act, start, None
    table = code_table(q)
    if table is None:
        raise OnnxImportError(f"{op.where()}: the input quantiser is neither bit plane 7 (1-bit, switching between "
                              f"pixels 127 and 128), nor an affine function of the pixel, nor levels on one grid "
                              f"(lo + step * code, codes 0..255, read through an input table): "
                              f"{_describe(q, divisor)}; {_divisor_hint(ops, q, divisor, input_datatype)}")
    return table[0], start, table[1]


PLANE_OPS = ("Floor", "Mod", "ReduceSum")  # the bit-plane input stage bnn2fpga export writes


def _run_prefix(ops: list[Op], x: np.ndarray) -> np.ndarray:
    """Standard elementwise and reshaping ops on whole NCHW batches (numpy broadcasting)."""
    for op in ops:
        t = op.op_type
        if t in ("Mul", "Add", "Sub", "Div") and 1 in op.consts:
            x = ELEMENTWISE[t](x, np.asarray(op.consts[1], np.float32)).astype(np.float32)
        elif t == "Round":
            x = np.round(x)  # half to even, as ONNX
        elif t == "Floor":
            x = np.floor(x)
        elif t == "Mod" and 1 in op.consts:
            fn = np.fmod if op.attrs.get("fmod", 0) else np.mod
            x = fn(x, np.asarray(op.consts[1], np.float32)).astype(np.float32)
        elif t == "Reshape" and 1 in op.consts:
            x = x.reshape([int(d) if d != 0 else x.shape[k] for k, d in enumerate(op.consts[1])])
        elif t == "Flatten":
            axis = int(op.attrs.get("axis", 1))
            x = x.reshape(int(np.prod(x.shape[:axis])), -1)
        elif t == "ReduceSum":
            axes = op.attrs.get("axes", op.consts[1].tolist() if 1 in op.consts else None)
            x = x.sum(axis=tuple(int(a) for a in axes) if axes else None, keepdims=bool(op.attrs.get("keepdims", 1)))
        elif t in ("Identity", "Cast", "Dropout"):
            pass
        elif t == "MultiThreshold" and 1 in op.consts:
            x = multithreshold(x, op.consts[1], out_scale=float(op.attrs.get("out_scale", 1.0)),
                               out_bias=float(op.attrs.get("out_bias", 0.0)),
                               data_layout=str(op.attrs.get("data_layout", "NCHW")))
        elif t in QUANTISERS and t != "MultiThreshold":
            x = apply_elementwise(op, x, 1)
        else:
            raise OnnxImportError(f"{op.where()}: not an operation of an input stage bnn2fpga reads")
    return x


def _bit_plane_input(ops: list[Op], divisor: float, shape: tuple[int, int, int],
                     levels: np.ndarray | None = None) -> tuple[Activation, list[int]]:
    """An input stage that takes pixels apart into bit planes, evaluated on probe images: for each
    colour channel in turn, that channel runs through every pixel value (the others 0). Every
    feature it yields must depend on one colour channel, the same way at every pixel, as one bit
    plane (binary channels, colour-major, planes ascending) or as a * (pixel & mask) + b.
    ``levels``: what the stage reads for pixel value v, when not v / divisor (an input table's
    ``lo + step * v``: the stage then takes the table's codes apart)."""
    c, h, w = shape
    v = np.arange(256)
    read = (v / np.float32(divisor) if levels is None else levels).astype(np.float32)
    probe = np.zeros((c, 256, c, h, w), np.float32)
    for j in range(c):
        probe[j, :, j] = read[:, None, None]
    y = _run_prefix(ops, probe.reshape(c * 256, c, h, w))
    if y.size % (c * 256 * h * w):
        raise OnnxImportError(f"{ops[-1].where()}: the input stage gives {y.shape[1:]} per image, not channels "
                              f"of {h}x{w} pixels")
    y = y.reshape(c * 256, -1, h, w)
    if not np.array_equal(y, np.broadcast_to(y[:, :, :1, :1], y.shape)):
        raise OnnxImportError(f"{ops[-1].where()}: the input stage treats pixels differently by position")
    features = y[:, :, 0, 0].reshape(c, 256, -1).astype(np.float64)  # (colour, pixel value, feature)
    varies = features.max(axis=1) != features.min(axis=1)  # (colour, feature)
    if not (varies.sum(axis=0) == 1).all():
        raise OnnxImportError(f"{ops[-1].where()}: an input feature mixes colour channels or ignores the pixel")
    source = varies.argmax(axis=0)
    curves = features[source, :, np.arange(features.shape[2])]  # (feature, pixel value)
    levels = np.unique(curves)
    if len(levels) == 2:
        lo, hi = float(levels[0]), float(levels[1])
        planes_of = []
        for f, curve in enumerate(curves):
            match = [p for p in range(8) if np.array_equal(curve == hi, (v >> p) & 1 == 1)]
            if not match:
                raise OnnxImportError(f"{ops[-1].where()}: input feature {f} is two-valued but not a bit plane")
            planes_of.append(match[0])
        p_count = len(planes_of) // c
        planes = planes_of[:p_count]
        expected = [(j, p) for j in range(c) for p in planes]
        if planes != sorted(set(planes)) or list(zip(source.tolist(), planes_of, strict=True)) != expected:
            raise OnnxImportError(f"{ops[-1].where()}: bit-plane features must be colour-major with the same "
                                  f"ascending planes in every colour (found colour, plane: "
                                  f"{list(zip(source.tolist(), planes_of, strict=True))[:8]}...)")
        return Activation("binary", lo, hi), planes
    if curves.shape[0] != c or not np.array_equal(source, np.arange(c)):
        raise OnnxImportError(f"{ops[-1].where()}: a multi-level input must give one feature per colour channel")
    b = curves[:, 0]
    mask = 0
    for p in range(8):
        if (curves[:, 1 << p] != b).any():
            mask |= 1 << p
    if mask == 0:
        raise OnnxImportError(f"{ops[-1].where()}: the input stage ignores the pixel")
    top = mask.bit_length() - 1
    a = (curves[:, 1 << top] - b) / (1 << top)
    expected_curves = a[:, None] * (v & mask)[None, :] + b[:, None]
    if not (np.allclose(curves, expected_curves, rtol=0, atol=np.abs(a).max() * 1e-4)
            and np.allclose(a, a[0]) and np.allclose(b, b[0])):
        raise OnnxImportError(f"{ops[-1].where()}: the input is neither bit planes nor a * (pixel & mask) + b, the "
                              "same for every colour channel")
    return Activation("integer", float(b[0]), float(a[0])), [p for p in range(8) if mask >> p & 1]


def _plane_stage(ops: list[Op], divisor: float,
                 shape: tuple[int, int, int]) -> tuple[Activation, list[int], list[list[int]] | None]:
    """The bit-plane input stage (:func:`_bit_plane_input`), behind an input table when a
    ``MultiThreshold`` on the pixels comes first (how ``bnn2fpga export`` writes a table network that
    reads some of the codes' planes): the table is read from it, one row per colour channel, and the
    rest of the stage takes the codes apart. Returns (activation, planes, table or None)."""
    at = next((k for k, op in enumerate(ops) if op.op_type == "MultiThreshold"), None)
    if at is None:
        return (*_bit_plane_input(ops, divisor, shape), None)
    c = shape[0]
    probe = np.repeat((np.arange(256) / np.float32(divisor)).astype(np.float32)[:, None, None, None], c, axis=1)
    counted = _run_prefix(ops[:at + 1], probe)
    if counted.shape != probe.shape:
        raise OnnxImportError(f"{ops[at].where()}: an input table must give one value per pixel and channel")
    grid = code_table(counted[:, :, 0, 0].reshape(-1))
    if grid is None:
        raise OnnxImportError(f"{ops[at].where()}: the input table's levels are not on one grid (lo + step * code)")
    lo, step = grid[0].lo, grid[0].hi
    table = np.asarray(grid[1]).reshape(256, c).T.tolist()
    act, planes = _bit_plane_input(ops[at + 1:], divisor, shape, levels=lo + step * np.arange(256))
    return act, planes, table


def _reshaped(op: Op, a: np.ndarray) -> np.ndarray:
    """``a`` (an activation of batch 1) after the shape-only op ``op``: the elements keep their order."""
    t = op.op_type
    if t == "Reshape":
        if 1 not in op.consts:
            raise OnnxImportError(f"{op.where()}: a Reshape to a shape computed from the activation")
        dims = [int(d) for d in np.asarray(op.consts[1]).reshape(-1)]
        keep = not op.attrs.get("allowzero", 0)
        try:
            return a.reshape([a.shape[k] if d == 0 and keep else d for k, d in enumerate(dims)])
        except ValueError:
            raise OnnxImportError(f"{op.where()}: reshapes {list(a.shape)} to {dims}, which does not fit") from None
    if t == "Flatten":
        axis = int(op.attrs.get("axis", 1))
        axis = axis + a.ndim if axis < 0 else axis
        return a.reshape(int(np.prod(a.shape[:axis])), -1)
    if t in ("Unsqueeze", "Squeeze"):
        given = op.attrs.get("axes", op.consts[1].reshape(-1).tolist() if 1 in op.consts else None)
        if t == "Unsqueeze":
            return np.expand_dims(a, tuple(int(x) for x in given or ()))
        axes = [int(x) % a.ndim for x in given] if given else [k for k in range(1, a.ndim) if a.shape[k] == 1]
        if any(a.shape[k] != 1 for k in axes):
            raise OnnxImportError(f"{op.where()}: squeezes axes {axes} of a tensor of shape {list(a.shape)}")
        return np.squeeze(a, tuple(axes))
    return a  # Identity, Cast, Dropout


def _channelwise(op: Op, chan: np.ndarray, channels: int) -> Op:
    """``op``, whose constants meet the activation laid out as ``chan`` (the layer's output channel of every
    element, batch 1, after any Reshape/Unsqueeze/Squeeze/Flatten), as the same op on a layer's values
    (K, C): every constant becomes one value (or one threshold row) per channel. Refused when a
    constant would broadcast the activation to a bigger tensor or differ within one channel."""
    t = op.op_type
    moved: dict[int, np.ndarray] = {}  # constant index -> its value at every element, (elements, k)
    if t == "BatchNormalization":
        if chan.ndim < 2:
            raise OnnxImportError(f"{op.where()}: batch-norm of a tensor of shape {list(chan.shape)}")
        along = np.broadcast_to(np.arange(chan.shape[1]).reshape([1, -1] + [1] * (chan.ndim - 2)), chan.shape)
        for k in (1, 2, 3, 4):
            v = np.asarray(op.consts[k]).reshape(-1)
            if v.size != chan.shape[1]:
                raise OnnxImportError(f"{op.where()}: {v.size} batch-norm channels for a tensor of shape "
                                      f"{list(chan.shape)} (channels on axis 1)")
            moved[k] = v[along].reshape(-1, 1)
    elif t == "MultiThreshold":
        rows = np.asarray(op.consts[1], np.float32)
        rows = rows.reshape(1, -1) if rows.ndim < 2 else rows
        axis = 1 if str(op.attrs.get("data_layout", "NCHW")).startswith("NC") else chan.ndim - 1
        if rows.shape[0] != 1 and (chan.ndim < 2 or rows.shape[0] != chan.shape[axis]):
            raise OnnxImportError(f"{op.where()}: {rows.shape[0]} threshold rows for a tensor of shape "
                                  f"{list(chan.shape)} (channels on axis {axis})")
        along = np.broadcast_to(np.arange(chan.shape[axis]).reshape(
            [-1 if k == axis else 1 for k in range(chan.ndim)]), chan.shape) if rows.shape[0] > 1 else \
            np.zeros(chan.shape, np.int64)
        moved[1] = rows[along.reshape(-1)]
    elif t in ("Mul", "Add", "Sub", "Div", "Pow", "BipolarQuant", "Quant"):
        for k, v in op.consts.items():
            if k == 0:
                continue
            v = np.asarray(v)
            try:
                shape = np.broadcast_shapes(v.shape, chan.shape)
            except ValueError:
                shape = None
            if shape != chan.shape:
                raise OnnxImportError(f"{op.where()}: a constant of shape {list(v.shape)} against the activation's "
                                      f"{list(chan.shape)} gives {list(shape) if shape else 'no broadcast'}; an op "
                                      "after a layer must be elementwise on the layer's output")
            moved[k] = np.broadcast_to(v, chan.shape).reshape(-1, 1)
    if not moved:
        return op
    index = chan.reshape(-1)
    consts = dict(op.consts)
    for k, per_element in moved.items():
        table = np.zeros((channels, per_element.shape[1]), per_element.dtype)
        table[index] = per_element
        if not np.array_equal(table[index], per_element):
            raise OnnxImportError(f"{op.where()}: its constant differs between positions of one output channel "
                                  f"(the activation has shape {list(chan.shape)}); bnn2fpga folds per-channel (or "
                                  "scalar) constants only")
        consts[k] = table if t == "MultiThreshold" else table.reshape(-1)
    return Op(t, op.name, op.attrs, consts, op.domain)


def _layer_values(d: np.ndarray, *, encoding: str, m: float, h: float, scale: np.ndarray, s_sum: np.ndarray,
                  bias: np.ndarray | None, tail: list[Op], where: str) -> np.ndarray:
    """A layer's values before its activation, per channel, at integer dots ``d`` (bnn2fpga's dot: +-1
    inputs, or the pixel as an unsigned integer), computed the way the graph computes them."""
    out = len(scale)
    if encoding == "binary":
        raw = scale[None, :] * (m * s_sum[None, :] + h * d[:, None])
    else:
        raw = scale[None, :] * (h * d[:, None] + m * s_sum[None, :])
    x = raw.astype(np.float32)
    if bias is not None:
        x = x + _per_channel(bias, out, where)
    for t in tail:
        x = apply_elementwise(t, x, out)
    return x


def _binary_weights(w: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(+-1 signs, positive scale per output row) of a weight whose rows each hold one magnitude."""
    rows = w.reshape(w.shape[0], -1).astype(np.float64)
    scale = np.abs(rows).max(1)
    if (scale == 0).any() or not np.allclose(np.abs(rows), scale[:, None], rtol=1e-5, atol=0):
        raise OnnxImportError(f"{where}: the weights are not binary (each output channel must hold +-c for one c > 0;"
                              f" found magnitudes {np.unique(np.abs(rows).round(6))[:4].tolist()}...); quantise them "
                              "to 1 bit (BipolarQuant, or Brevitas weight_bit_width=1) and retrain")
    return np.where(w >= 0, 1.0, -1.0).astype(np.float32), scale


def _threshold_bn(bits: np.ndarray, dots: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batch-norm parameters (weight, bias, mean) whose sign is ``bits`` at every ``dots`` value, per channel."""
    k, c = bits.shape
    weight, bias, mean = np.zeros(c, np.float32), np.zeros(c, np.float32), np.zeros(c, np.float32)
    for j in range(c):
        col = bits[:, j]
        if col.all() or not col.any():
            bias[j] = 1.0 if col.all() else -1.0
            continue
        if col[-1]:  # off, then on from the first on: dot >= T
            first_on = int(np.argmax(col))
            ok = bool(col[first_on:].all())
            weight[j], mean[j] = 1.0, dots[first_on] - 0.5
        else:  # on, then off from the first off: dot <= T
            first_off = int(np.argmax(~col))
            ok = not col[first_off:].any()
            weight[j], mean[j] = -1.0, dots[first_off - 1] + 0.5
        if not ok:
            raise OnnxImportError(f"{where}: channel {j} is not a threshold of its dot product (it switches more "
                                  "than once); bnn2fpga layers compute [dot >= T] or [dot <= T]")
    return weight, bias, mean


def _recorded_output_bn(chain: Chain, signs: np.ndarray, values: Any, n_in: int) -> Layer | None:
    """The output batch-norm ``bnn2fpga export`` records in the model's metadata, if it gives exactly
    the scores the graph computes at every reachable dot (so a round trip keeps every float)."""
    import json

    from ..ir.graph import BatchNorm
    from ..ir.thresholds import evaluate_bn
    from ..nn.layers import ExactBatchNorm1d
    from .qonnx_export import OUTPUT_BN_KEY

    raw = chain.metadata.get(OUTPUT_BN_KEY)
    if raw is None:
        return None
    try:
        record = json.loads(raw)
        weight, bias, mean, var = (np.asarray(record[k], np.float32) for k in ("weight", "bias", "mean", "var"))
        eps = float(record["eps"])
    except (ValueError, KeyError, TypeError):
        return None
    if eps != ExactBatchNorm1d(1).eps or weight.shape != (signs.shape[0],):
        return None
    table = evaluate_bn(BatchNorm(mean, var, weight, bias, eps), n_in)  # (MW+1, K) at dot = 2 pc - MW
    dots = np.arange(-n_in, n_in + 1, 2, dtype=np.float64)
    if not np.array_equal(values(dots), table):
        return None
    return Layer("output", signs, (weight, bias, mean), var=var)


def parse(chain: Chain, shape: tuple[int, int, int], divisor: float) -> tuple[dict[str, Any], list[Layer]]:
    """The architecture and layer parameters of ``chain`` for images of ``shape`` (C, H, W)."""
    ops = chain.ops
    start = next((k for k, op in enumerate(ops) if op.op_type in WEIGHT_OPS + ("Pad",)), len(ops))
    c, h, w = shape
    table: list[list[int]] | None = None
    if any(op.op_type in PLANE_OPS for op in ops[:start]):
        act, planes, table = _plane_stage(ops[:start], divisor, shape)
        i = start
        if act.kind == "binary":
            c = c * len(planes)
    else:
        act, i, codes = _input_quantiser(ops, divisor, chain.input_datatype)
        planes = [7] if act.kind == "binary" else list(range(8))
        if codes is not None:  # only the planes some code sets: each costs the first layer a pass
            planes = [b for b in range(8) if any(v >> b & 1 for v in codes)]
            table = [codes] * c
    first = act.kind
    padding: tuple[int, float] | None = None  # from a Pad op, for the Conv after it
    layers: list[Layer] = []
    arch_layers: list[dict[str, Any]] = []
    while i < len(ops):
        op = ops[i]
        if op.op_type in SHAPE_OPS:
            i += 1
            continue
        if op.op_type == "Pad":
            pads = op.consts.get(1, np.asarray(op.attrs.get("pads", [])))
            value = float(np.asarray(op.consts.get(2, op.attrs.get("value", 0.0))).reshape(-1)[0])
            p = [int(x) for x in np.asarray(pads).reshape(-1)]
            if (op.attrs.get("mode", "constant") != "constant" or len(p) != 8 or p[0] or p[1] or p[4] or p[5]
                    or len(set(p[2:4] + p[6:8])) != 1 or i + 1 >= len(ops) or ops[i + 1].op_type != "Conv"):
                raise OnnxImportError(f"{op.where()}: only a constant Pad of equal height and width padding "
                                      "right before a Conv is supported")
            padding = (p[2], value)
            i += 1
            continue
        if op.op_type == "MaxPool":
            k = op.attrs.get("kernel_shape", [2, 2])
            strides = op.attrs.get("strides", k)
            if len(set(k)) != 1 or list(strides) != list(k) or any(op.attrs.get("pads", [0])):
                raise OnnxImportError(f"{op.where()}: only square max-pools with stride = size and no padding")
            if not layers or layers[-1].kind != "conv" or act.kind != "binary":
                raise OnnxImportError(f"{op.where()}: a max-pool must follow a conv layer's 1-bit activation")
            layers.append(Layer("pool"))
            arch_layers.append({"kind": "pool", "size": k[0]})
            h, w = h // k[0], w // k[0]
            i += 1
            continue
        if op.op_type not in WEIGHT_OPS:
            hint = {"AveragePool": "bnn2fpga pools binary maps with MaxPool (an OR) only: use MaxPool",
                    "GlobalAveragePool": "bnn2fpga pools binary maps with MaxPool (an OR) only: use MaxPool",
                    "Add": "a residual add or a bias on the activation has no engine"}.get(op.op_type, "")
            raise OnnxImportError(f"{op.where()}: expected a weight layer (MatMul, Gemm or Conv) here"
                                  + (f"; {hint}" if hint else ""))
        if 1 not in op.consts:
            raise OnnxImportError(f"{op.where()}: the weights are not constant")
        bias = None
        pad = 0
        if op.op_type == "Conv":
            wt = op.consts[1]
            k = wt.shape[-1]
            pads = op.attrs.get("pads", [0, 0, 0, 0])
            found = {"group": op.attrs.get("group", 1), "strides": list(op.attrs.get("strides", [1, 1])),
                     "dilations": list(op.attrs.get("dilations", [1, 1])), "kernel": list(wt.shape[-2:]),
                     "pads": list(pads)}
            wrong = [f"{key} {value}" for key, value, ok in (
                ("group", found["group"], found["group"] == 1),
                ("strides", found["strides"], all(s == 1 for s in found["strides"])),
                ("dilations", found["dilations"], all(d == 1 for d in found["dilations"])),
                ("kernel", found["kernel"], wt.shape[-2] == k),
                ("pads", found["pads"], len(set(pads)) == 1)) if not ok]
            if wrong:
                raise OnnxImportError(f"{op.where()}: {', '.join(wrong)}; bnn2fpga's convolutions are square, at "
                                      "stride 1, without groups or dilation, padded equally on every side (a "
                                      "stride-2 conv can become a stride-1 conv and a MaxPool)")
            pad = int(pads[0])
            pad_bit = 0
            if padding is not None:
                if pad:
                    raise OnnxImportError(f"{op.where()}: padded twice (a Pad and the Conv's own pads)")
                pad, value = padding
                padding = None
                on = act.hi if act.kind == "binary" else act.lo + act.hi * sum(1 << q for q in planes)
                off = act.lo
                if not (np.isclose(value, on) or np.isclose(value, off)):
                    raise OnnxImportError(f"{op.where()}: padded with {value:g}; bnn2fpga pads with a pixel whose "
                                          f"kept bits are all 0 ({off:g}) or all 1 ({on:g})")
                pad_bit = int(np.isclose(value, on) and not np.isclose(value, off))
            elif pad and (act.kind == "binary" and act.lo != 0 or act.kind == "integer" and act.lo != 0):
                raise OnnxImportError(f"{op.where()}: ONNX pads with 0, which is neither input value of this layer "
                                      f"({act.lo:g}, {act.hi:g}); bnn2fpga pads with a constant bit: use 0/1 "
                                      "activations (MultiThreshold at 0), pad with an explicit Pad of -1 or +1, or "
                                      "drop the padding")
            signs, scale = _binary_weights(wt, op.where())
            if wt.shape[1] != c:
                raise OnnxImportError(f"{op.where()}: {wt.shape[1]} input channels, the layer before has {c}")
            out = wt.shape[0]
            n_in = c * k * k
            bias = op.consts.get(2)
            h, w = h + 2 * pad - k + 1, w + 2 * pad - k + 1
            kind = "conv"
        else:
            wt = op.consts[1]
            if op.op_type == "Gemm":
                if op.attrs.get("transA", 0):
                    raise OnnxImportError(f"{op.where()}: Gemm with transA is not supported")
                rows = wt if op.attrs.get("transB", 0) else wt.T
                rows = rows * np.float32(op.attrs.get("alpha", 1.0))
                if 2 in op.consts:
                    bias = op.consts[2] * np.float32(op.attrs.get("beta", 1.0))
            else:
                rows = wt.T
            signs, scale = _binary_weights(rows, op.where())
            out, n_in = rows.shape
            if n_in != c * h * w:
                raise OnnxImportError(f"{op.where()}: {n_in} inputs, the layer before gives {c}x{h}x{w}")
            if h * w > 1:  # ONNX flattens NCHW; bnn2fpga streams HWC
                signs = signs.reshape(out, c, h, w).transpose(0, 2, 3, 1).reshape(out, n_in)
            kind = "dense"
            c, h, w = out, 1, 1
        if kind == "conv":
            c = out
        i += 1
        # The layer's output, each element holding its channel, followed through the shape-only ops after the
        # layer (FINN wraps batch-norm in Unsqueeze/Squeeze), so that constants apply per channel as they do
        # in the graph.
        chan = np.arange(out).reshape(1, out, 1, 1) * np.ones((1, 1, h, w), np.int64) if kind == "conv" \
            else np.arange(out).reshape(1, out)
        tail: list[Op] = []
        while i < len(ops) and ops[i].op_type not in QUANTISERS and ops[i].op_type not in HEADS + WEIGHT_OPS:
            if ops[i].op_type in SHAPE_OPS:
                chan = _reshaped(ops[i], chan)
            else:
                tail.append(_channelwise(ops[i], chan, out))
            i += 1
        # The layer's output as a function of its integer dot D (bnn2fpga's), at every reachable D, in chunks.
        m, hh = act.dot_terms()
        s_sum = signs.reshape(out, -1).sum(1).astype(np.float64)
        if act.kind == "binary":
            dots = np.arange(-n_in, n_in + 1, 2, dtype=np.float64)
        else:
            dots = np.arange(-255 * n_in, 255 * n_in + 1, dtype=np.float64)

        values = partial(_layer_values, encoding=act.kind, m=m, h=hh, scale=scale, s_sum=s_sum, bias=bias,
                         tail=tail, where=op.where())

        chunks = [dots[k:k + 4096] for k in range(0, len(dots), 4096)]
        at_end = i >= len(ops) or ops[i].op_type in HEADS
        if at_end and act.kind == "integer":
            raise OnnxImportError(f"{op.where()}: the output layer reads the quantised input itself; bnn2fpga reads a "
                                  "multi-level input (or one through an input table) with an integer first layer, "
                                  "which must be a hidden layer: add one, or quantise the input to bit plane 7 "
                                  "(1-bit, switching between pixels 127 and 128)")
        if at_end:
            # Output layer: class scores alpha_j * D + beta_j (checked affine), argmax in the reference.
            if kind != "dense":
                raise OnnxImportError(f"{op.where()}: the network must end with a dense layer")
            ends = values(dots[[0, -1]]).astype(np.float64)
            alpha = (ends[1] - ends[0]) / (dots[-1] - dots[0])
            beta = ends[0] - alpha * dots[0]
            for d in chunks:
                if not np.allclose(values(d), alpha[None, :] * d[:, None] + beta[None, :], rtol=1e-4, atol=1e-4):
                    raise OnnxImportError(f"{op.where()}: the class scores are not an affine function of the "
                                          "output layer's dot products")
            layers.append(_recorded_output_bn(chain, signs, values, n_in)
                          or Layer("output", signs, (alpha.astype(np.float32), beta.astype(np.float32),
                                                     np.zeros(out, np.float32))))
            arch_layers.append({"kind": "output", "out": out})
            head = ops[i] if i < len(ops) else None
            k_best = int(np.asarray(head.consts.get(1, 1)).reshape(-1)[0]) if head is not None else 1
            if head is not None and head.op_type == "TopK" and k_best > 1:
                raise OnnxImportError(f"{head.where()}: TopK with k > 1; bnn2fpga predicts one class")
            break
        quant_op = _channelwise(ops[i], chan, out)
        outputs = [apply_elementwise(quant_op, values(d), out) for d in chunks]
        levels = np.unique(np.concatenate([np.unique(o) for o in outputs]))
        if quant_op.op_type == "Sign" and len(levels) == 3 and 0 in levels:
            row, channel = np.argwhere(np.concatenate(outputs) == 0)[0]
            at = f"{dots[row]:g} of channel {channel}"
            raise OnnxImportError(f"{quant_op.where()}: the value before Sign is exactly 0 at the reachable dot "
                                  f"product {at}, where ONNX's Sign gives 0, a third value; bnn2fpga's activations "
                                  "are 1-bit: use BipolarQuant (0 -> +1) or move the threshold off the dot products")
        if len(levels) > 2:
            raise OnnxImportError(f"{quant_op.where()}: the activation has {len(levels)} levels; bnn2fpga's hidden "
                                  "layers are 1-bit: quantise activations to 1 bit (BipolarQuant, or Brevitas "
                                  "act_bit_width=1) and retrain")
        hi_value = float(levels[-1])
        lo_value = float(levels[0]) if len(levels) == 2 else -hi_value
        bits = np.concatenate([o == hi_value for o in outputs])
        layers.append(Layer(kind, signs, _threshold_bn(bits, dots, op.where())))
        spec: dict[str, Any] = {"kind": kind, "out": out}
        if kind == "conv":
            # pad_bit means nothing without padding; 1 is what bnn2fpga's own models carry there.
            spec.update(kernel=int(wt.shape[-1]), padding=pad, pad_bit=pad_bit if pad else 1)
        arch_layers.append(spec)
        act = Activation("binary", lo_value, hi_value)
        i += 1
    if not layers or layers[-1].kind != "output":
        raise OnnxImportError("the graph ends without an output layer (a last MatMul/Gemm giving class scores)")
    inp: dict[str, Any] = {"channels": shape[0], "height": shape[1], "width": shape[2], "bits": 8,
                           "planes": planes}
    if first == "integer":
        inp["encoding"] = "integer"
    if table is not None:
        inp["table"] = table
    from .qonnx_export import NAME_KEY

    name = chain.metadata.get(NAME_KEY, "imported")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,40}", name):
        name = "imported"
    return {"name": name, "input": inp, "layers": arch_layers}, layers


#: where the pixel divisor came from, as ``training.imported_from.pixel_divisor_from`` records it
DIVISOR_REASONS = {"given": "given with --pixel-divisor",
                   "uint8": "the graph declares its input UINT8: it takes the raw pixel",
                   "default": "pixel / 255, as torchvision's ToTensor"}


def auto_divisor(chain: Chain) -> tuple[float, str]:
    """The pixel divisor a graph implies and why: 1 when it declares its input ``UINT8`` (FINN's
    ``finn_datatype`` annotation: the graph takes the raw pixel), else 255 (torchvision's ``ToTensor``)."""
    return (1.0, "uint8") if chain.input_datatype == "UINT8" else (255.0, "default")


def import_qonnx(path: Path | str, *, shape: tuple[int, int, int], dataset: str,
                 divisor: float | None = None) -> Checkpoint:
    """The bnn2fpga checkpoint equal to the QONNX/FINN-ONNX model at ``path`` on uint8 images of ``shape``;
    the model's input is ``pixel / divisor``, by default (None) the divisor :func:`auto_divisor` reads
    from the graph."""
    path = Path(path)
    chain = read_chain(path)
    if divisor is None:
        divisor, reason = auto_divisor(chain)
    else:
        reason = "given"
    try:
        arch, layers = parse(chain, shape, divisor)
    except OnnxImportError as e:
        if reason != "uint8":
            raise
        try:  # does the divisor read from the annotation matter? Evaluated, not guessed
            parse(chain, shape, 255.0)
        except OnnxImportError as other:
            if str(other) == str(e):
                raise e from None  # the same refusal either way: nothing to do with the divisor
            hint = "give --pixel-divisor D if the graph takes pixel / D"
        else:
            hint = "with --pixel-divisor 255 it imports"
        raise OnnxImportError(f"{e}; the pixel divisor 1 was chosen because {DIVISOR_REASONS[reason]} "
                              f"({hint})") from e
    model = to_model(arch, layers)
    source = {"format": "qonnx", "file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
              "producer": chain.producer, "pixel_divisor": divisor, "pixel_divisor_from": reason}
    return Checkpoint.from_model(model, dataset=dataset, metrics={"test_accuracy": None},
                                 training={"imported_from": source, "model": "imported"})
