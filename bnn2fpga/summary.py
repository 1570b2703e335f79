"""Plain-data description of a checkpoint (for `bnn2fpga info` and reports)."""

from __future__ import annotations

from typing import Any

from .checkpoint import Checkpoint
from .nn.models import binops, input_encoding, layer_shapes, weight_bits


def summarize(ckpt: Checkpoint) -> dict[str, Any]:
    arch = ckpt.architecture
    rows = []
    counts: dict[str, int] = {}
    integer = input_encoding(arch) == "integer"
    for i, (layer, shape) in enumerate(zip(arch["layers"], layer_shapes(arch), strict=True)):
        kind = layer["kind"]
        counts[kind] = counts.get(kind, 0) + 1
        pixels = shape["out_h"] * shape["out_w"]
        fan_in = shape["fan_in"]
        rows.append({
            "name": "output" if kind == "output" else f"{kind}{counts[kind] - 1}", "kind": kind,
            "in": [shape["in_h"], shape["in_w"], shape["in_c"]],
            "out": [shape["out_h"], shape["out_w"], shape["out_c"]],
            "fan_in": fan_in, "out_pixels": pixels,
            # an integer-input layer: each +-1 x P-bit multiply-accumulate is P binary operations
            "binops": shape["out_c"] * fan_in * pixels * (len(arch["input"]["planes"]) if integer and i == 0 else 1),
            "weight_bits": shape["out_c"] * fan_in,
            "integer_input": integer and i == 0,
        })
    return {
        "model": arch.get("name", ckpt.training.get("model", "bnn")), "dataset": ckpt.dataset,
        "input": ckpt.input, "layers": rows, "binops": binops(arch), "weight_bits": weight_bits(arch),
        "metrics": ckpt.metrics, "pruning": ckpt.pruning,
        "training": {k: v for k, v in ckpt.training.items() if k != "history"},
    }
