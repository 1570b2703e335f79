"""Plain-data description of a checkpoint (for `bnn2fpga info` and reports)."""

from __future__ import annotations

from typing import Any

import torch

from .checkpoint import Checkpoint
from .nn.models import binops, input_encoding, layer_shapes, walk_layers, weight_bits


def summarize(ckpt: Checkpoint) -> dict[str, Any]:
    arch = ckpt.architecture
    rows = []
    counts: dict[str, int] = {}
    integer = input_encoding(arch) == "integer"
    for i, (layer, shape) in enumerate(zip(walk_layers(arch["layers"]), layer_shapes(arch), strict=True)):
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
        "input": {**ckpt.input, "table": arch["input"].get("table") is not None}, "layers": rows,
        "binops": binops(arch), "weight_bits": weight_bits(arch),
        "metrics": ckpt.metrics, "pruning": [_plain(r) for r in ckpt.pruning],
        "training": _plain({k: v for k, v in ckpt.training.items() if k != "history"}),
    }


def _plain(value: Any) -> Any:
    """JSON-ready: a tensor (per-weight flip counts) is summarised by its shape and value counts."""
    if isinstance(value, torch.Tensor):
        out: dict[str, Any] = {"shape": list(value.shape), "dtype": str(value.dtype).removeprefix("torch.")}
        flat = value.detach().reshape(-1)
        if not flat.is_floating_point() and flat.numel() and int(flat.min()) >= 0:
            out["value_counts"] = torch.bincount(flat.to(torch.int64)).tolist()
        return out
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
