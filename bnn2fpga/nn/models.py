"""Binary networks described by a small, serialisable architecture and the model zoo.

An architecture is a dict ``{"input": {...}, "layers": [...]}`` of plain values, so it
travels in the checkpoint and rebuilds the same module tree. Layer kinds:

- ``{"kind": "conv", "out": C, "kernel": k, "padding": p, "pad_bit": b}`` conv -> BN -> sign
- ``{"kind": "pool", "size": s}``    binary max-pool (OR), after a conv's sign
- ``{"kind": "dense", "out": C}``   dense -> BN -> sign (flattens HWC first)
- ``{"kind": "output", "out": K}``  dense -> BN: the class scores (last layer)
- ``{"kind": "concat", "paths": [[...], [...]]}``  a branch: the map goes down every path (a list
  of conv, pool and concat layers; an empty list is the map itself) and the paths' maps, of one
  height and width, are joined by concatenating their channels in path order

Input: ``{"channels": C, "height": H, "width": W, "bits": 8, "planes": [..], "encoding": E}``.
With ``encoding`` ``"planes"`` (the default when absent) the first layer sees the surviving
bit planes as C*P binary channels; with ``"integer"`` it sees the kept bits of each pixel as
one unsigned integer per channel (C channels, FINN CNV / BinaryNet style). An optional
``"table"`` (C rows of 256 codes in 0..255) maps each pixel value to a code first, per colour
channel; planes and integers are then those of the code (an imported network's input quantiser,
e.g. ``2x - 1`` rounded to Q1.7).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..contract.codes import CodeTable, CodeTableError
from ..contract.planes import Planes, PlanesError
from ..errors import UserError
from .layers import (
    BinaryConv2d,
    BinaryLinear,
    BinaryMaxPool2d,
    BitPlaneEncoder,
    ExactBatchNorm1d,
    ExactBatchNorm2d,
    IntegerEncoder,
    SignActivation,
)

Architecture = dict[str, Any]
PRUNABLE = ("conv", "dense")
# What each layer kind may say: anything else (a stride, a dilation) would be silently ignored
# by the model and the hardware, so it is refused.
_LAYER_KEYS = {"conv": {"kind", "out", "kernel", "padding", "pad_bit"}, "pool": {"kind", "size"},
               "dense": {"kind", "out"}, "output": {"kind", "out"}, "concat": {"kind", "paths"}}
MAX_BRANCH_DEPTH = 4
_UNSUPPORTED_HINT = {
    "stride": "convolutions run at stride 1 and pools at stride = size; downsample with a pool layer",
    "dilation": "convolutions are not dilated",
    "groups": "convolutions are dense over channels (no groups)",
}


ENCODINGS = ("planes", "integer")


class ArchitectureError(UserError, ValueError):
    pass


def input_encoding(arch: Architecture) -> str:
    """How the first layer sees the pixels: ``"planes"`` (binary channels) or ``"integer"``."""
    return str(arch["input"].get("encoding", "planes"))


def input_table(arch: Architecture) -> CodeTable | None:
    """The input table (per colour channel, the code of each pixel value 0..255), or None: codes = pixels."""
    table = arch["input"].get("table")
    return None if table is None else CodeTable(table)


def _check_table(table: object, channels: int) -> None:
    try:
        CodeTable(table, channels=channels, what="architecture.input.table")  # type: ignore[arg-type]
    except CodeTableError as err:
        raise ArchitectureError(str(err)) from None


def first_layer_channels(arch: Architecture) -> int:
    """Input channels of the first layer: C*P bit planes, or C integers."""
    inp = arch["input"]
    return inp["channels"] * (1 if input_encoding(arch) == "integer" else len(inp["planes"]))


def validate_architecture(arch: Architecture) -> None:
    """Check an architecture names valid layers with positive sizes; raise ArchitectureError naming the fault."""
    if not isinstance(arch, dict) or "input" not in arch or "layers" not in arch:
        raise ArchitectureError("architecture must be a dict with 'input' and 'layers'")
    inp = arch["input"]
    for key in ("channels", "height", "width", "bits", "planes"):
        if key not in inp:
            raise ArchitectureError(f"architecture.input is missing '{key}'")
    if inp["bits"] != 8:
        raise ArchitectureError(f"architecture.input.bits must be 8 (uint8 pixels), not {inp['bits']!r}")
    if input_encoding(arch) not in ENCODINGS:
        raise ArchitectureError(f"architecture.input.encoding must be one of {', '.join(ENCODINGS)}, "
                                f"not {inp.get('encoding')!r}")
    try:
        Planes(inp["planes"], what="architecture.input.planes")
    except PlanesError as e:
        raise ArchitectureError(str(e)) from None
    layers = arch["layers"]
    if not layers or layers[-1].get("kind") != "output":
        raise ArchitectureError("architecture.layers must end with an 'output' layer")
    if input_encoding(arch) == "integer" and layers[0].get("kind") not in ("conv", "dense"):
        raise ArchitectureError("architecture.input.encoding 'integer' needs a conv or dense first layer to read "
                                "the integers; use 'planes' for a network that is only an output layer")
    for key in ("channels", "height", "width"):
        _check_size(f"architecture.input.{key}", inp[key], 1, MAX_INPUT_SIDE)
    if inp.get("table") is not None:
        _check_table(inp["table"], inp["channels"])
    _validate_chain(layers, "architecture.layers", inp["height"], inp["width"], top=True, depth=0)
    weights = weight_bits(arch)
    if weights > MAX_WEIGHTS:
        raise ArchitectureError(f"the architecture declares {weights:,} weights, more than the {MAX_WEIGHTS:,} any "
                                "binary network here holds (and than memory would allow); the file is corrupt or not "
                                "a bnn2fpga network")


def _validate_chain(layers: object, where_list: str, h: int, w: int, *, top: bool, depth: int) -> tuple[int, int]:
    """Check a chain of layer entries reading an h x w map; the map's size after it. A branch's path
    (``top`` False) holds conv, pool and concat layers only."""
    if not isinstance(layers, list):
        raise ArchitectureError(f"{where_list} must be a list of layers, not {type(layers).__name__}")
    flat = False
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict):
            raise ArchitectureError(f"{where_list}[{i}] must be an object with a 'kind', not {layer!r}")
        kind = layer.get("kind")
        where = f"{where_list}[{i}] ({kind})"
        extra = sorted(set(layer) - _LAYER_KEYS.get(kind, set(layer)))
        if extra:
            hint = _UNSUPPORTED_HINT.get(extra[0], f"a {kind} layer takes {', '.join(sorted(_LAYER_KEYS[kind]))}")
            raise ArchitectureError(f"{where}: unsupported field {extra[0]!r} ({hint})")
        if not top and kind not in ("conv", "pool", "concat"):
            raise ArchitectureError(f"{where}: a concat path holds conv, pool and concat layers, not {kind!r}; put "
                                    "dense layers after the concat")
        if kind in ("conv", "dense", "output"):
            _check_size(f"{where}: width", layer.get("out"), 1, MAX_WIDTH)
        if kind == "conv":
            if flat:
                raise ArchitectureError(f"{where}: a conv layer cannot follow a dense layer")
            _check_size(f"{where}: kernel", layer.get("kernel"), 1, MAX_KERNEL)
            _check_size(f"{where}: padding", layer.get("padding", 0), 0, MAX_KERNEL)
            k, p = layer["kernel"], layer.get("padding", 0)
            h, w = h + 2 * p - k + 1, w + 2 * p - k + 1
            if layer.get("pad_bit", 1) not in (0, 1):
                raise ArchitectureError(f"{where}: pad_bit must be 0 or 1")
        elif kind == "pool":
            if flat or (top and (i == 0 or layers[i - 1]["kind"] not in ("conv", "pool", "concat"))):
                raise ArchitectureError(f"{where}: pool must follow a conv layer")
            _check_size(f"{where}: size", layer.get("size"), 1, MAX_KERNEL)
            h, w = h // layer["size"], w // layer["size"]
        elif kind == "concat":
            if flat:
                raise ArchitectureError(f"{where}: a concat cannot follow a dense layer")
            if depth >= MAX_BRANCH_DEPTH:
                raise ArchitectureError(f"{where}: concats nest at most {MAX_BRANCH_DEPTH} deep")
            paths = layer.get("paths")
            if not isinstance(paths, list) or len(paths) < 2:
                raise ArchitectureError(f"{where}: 'paths' must be a list of at least two paths (lists of layers; "
                                        "[] is the map itself)")
            sizes = [_validate_chain(path, f"{where}.paths[{j}]", h, w, top=False, depth=depth + 1)
                     for j, path in enumerate(paths)]
            if len(set(sizes)) != 1:
                raise ArchitectureError(f"{where}: its paths end in maps of sizes "
                                        f"{', '.join(f'{a}x{b}' for a, b in sizes)}; a concat joins maps of one size")
            h, w = sizes[0]
        elif kind in ("dense", "output"):
            if kind == "output" and (not top or i != len(layers) - 1):
                raise ArchitectureError(f"{where}: 'output' must be the last layer")
            h, w, flat = 1, 1, True
        else:
            raise ArchitectureError(f"{where}: unknown layer kind {kind!r}")
        if h < 1 or w < 1:
            raise ArchitectureError(f"{where}: the feature map shrinks to {h}x{w}; add padding or a larger input")
    return h, w


# Bounds that no binary network for an FPGA comes near, so that a corrupt or hostile checkpoint is refused
# by a check instead of by an allocation of terabytes.
MAX_INPUT_SIDE = 4096
MAX_WIDTH = 65_536
MAX_KERNEL = 15
MAX_WEIGHTS = 256 * 2**20


def _check_size(what: str, value: object, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ArchitectureError(f"{what} must be an integer in {lo}..{hi:,}, not {value!r}")


class BNN(nn.Module):
    """A binary network built from an :data:`Architecture`.

    ``forward`` takes uint8 pixels (B, C, H, W) and returns the float class scores.
    """

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        validate_architecture(arch)
        self.arch = copy.deepcopy(arch)
        inp = arch["input"]
        integer = input_encoding(arch) == "integer"
        table = input_table(arch)
        self.encoder = (IntegerEncoder(inp["planes"], table) if integer
                        else BitPlaneEncoder(inp["planes"], table))
        pad_value = self.encoder.pad_value if integer else None
        blocks, *_ = _blocks(arch["layers"], first_layer_channels(arch), inp["height"], inp["width"], pad_value)
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.encoder(x)
        for block in self.blocks:
            x = block(x)
        return x

    def output_dots(self, x: torch.Tensor) -> torch.Tensor:
        """The output layer's integer dot products (before its batch-norm), as float."""
        x = self.encoder(x)
        for block in self.blocks[:-1]:
            x = block(x)
        flatten, linear, _ = self.blocks[-1]
        return linear(flatten(x))

    def binary_layers(self) -> list[tuple[str, nn.Module]]:
        """(name, BinaryLinear|BinaryConv2d) for every weight layer, in order."""
        return [(n, m) for n, m in self.named_modules() if isinstance(m, BinaryLinear | BinaryConv2d)]

    def clip_weights(self) -> None:
        """Keep latent weights in [-1, 1]: beyond, the STE gradient can no longer flip them back."""
        with torch.no_grad():
            for _, m in self.binary_layers():
                m.weight.clamp_(-1.0, 1.0)


def _blocks(layers: list[dict[str, Any]], c: int, h: int, w: int,
            first_pad_value: float | None) -> tuple[list[nn.Module], int, int, int]:
    """The modules of a chain of layer entries reading a c x h x w map, and the map it leaves.
    ``first_pad_value``: an integer first layer's pad value per pad bit (None: binary channels)."""
    blocks: list[nn.Module] = []
    for i, layer in enumerate(layers):
        kind = layer["kind"]
        if kind == "conv":
            k, p = layer["kernel"], layer.get("padding", 0)
            pad_bit = layer.get("pad_bit", 1)
            pad_value = pad_bit * first_pad_value if first_pad_value is not None and i == 0 else None
            blocks.append(nn.Sequential(
                BinaryConv2d(c, layer["out"], k, p, pad_bit, pad_value),
                ExactBatchNorm2d(layer["out"]), SignActivation()))
            c, h, w = layer["out"], h + 2 * p - k + 1, w + 2 * p - k + 1
        elif kind == "pool":
            blocks.append(BinaryMaxPool2d(layer["size"]))
            h, w = h // layer["size"], w // layer["size"]
        elif kind == "concat":
            built = [_blocks(path, c, h, w, None) for path in layer["paths"]]
            blocks.append(Concat([nn.Sequential(*inner) for inner, *_ in built]))
            c = sum(out_c for _, out_c, _, _ in built)
            _, _, h, w = built[0]  # every path ends in one size (validated)
        elif kind == "dense":
            blocks.append(nn.Sequential(
                Flatten(), BinaryLinear(c * h * w, layer["out"]),
                ExactBatchNorm1d(layer["out"]), SignActivation()))
            c, h, w = layer["out"], 1, 1
        else:  # output
            blocks.append(nn.Sequential(
                Flatten(), BinaryLinear(c * h * w, layer["out"]), ExactBatchNorm1d(layer["out"])))
    return blocks, c, h, w


class Concat(nn.Module):
    """A branch: every path (an ``nn.Sequential``; empty: the map itself) on the same map, their
    outputs concatenated along the channels in path order."""

    def __init__(self, paths: list[nn.Sequential]) -> None:
        super().__init__()
        self.paths = nn.ModuleList(paths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([path(x) for path in self.paths], dim=1)


def walk_layers(layers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every layer entry depth first: a concat, then its paths' layers in order."""
    out = []
    for layer in layers:
        out.append(layer)
        if layer["kind"] == "concat":
            for path in layer["paths"]:
                out += walk_layers(path)
    return out


def is_branched(arch: Architecture) -> bool:
    return any(layer["kind"] == "concat" for layer in arch["layers"])


class Flatten(nn.Module):
    """Flatten (B, C, H, W) in HWC order, the order the hardware streams features in."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.permute(0, 2, 3, 1)
        return x.reshape(x.shape[0], -1)


def layer_shapes(arch: Architecture) -> list[dict[str, int]]:
    """Per layer entry, in the order of :func:`walk_layers`: input (c, h, w), output (c, h, w), bits
    per output (fan-in, 0 for a pool or a concat) and output pixels."""
    inp = arch["input"]
    shapes: list[dict[str, int]] = []
    _chain_shapes(arch["layers"], first_layer_channels(arch), inp["height"], inp["width"], shapes)
    return shapes


def _chain_shapes(layers: list[dict[str, Any]], c: int, h: int, w: int,
                  shapes: list[dict[str, int]]) -> tuple[int, int, int]:
    for layer in layers:
        kind = layer["kind"]
        row = {"in_c": c, "in_h": h, "in_w": w}
        shapes.append(row)
        if kind == "conv":
            k, p = layer["kernel"], layer.get("padding", 0)
            fan_in = c * k * k
            c, h, w = layer["out"], h + 2 * p - k + 1, w + 2 * p - k + 1
        elif kind == "pool":
            fan_in = 0
            h, w = h // layer["size"], w // layer["size"]
        elif kind == "concat":
            fan_in = 0
            ends = [_chain_shapes(path, c, h, w, shapes) for path in layer["paths"]]
            c, (_, h, w) = sum(end[0] for end in ends), ends[0]
        else:
            fan_in = c * h * w
            c, h, w = layer["out"], 1, 1
        row.update(out_c=c, out_h=h, out_w=w, fan_in=fan_in)
    return c, h, w


def binops(arch: Architecture) -> int:
    """Binary operations per inference: out_channels * fan_in * output pixels, summed over weight layers.

    An integer-input first layer counts each +-1 x P-bit multiply-accumulate as P binary
    operations (its plane-serial XNOR-popcounts), so dropping planes lowers binops in both forms."""
    planes = len(arch["input"]["planes"]) if input_encoding(arch) == "integer" else 1
    return sum(s["out_c"] * s["fan_in"] * s["out_h"] * s["out_w"] * (planes if i == 0 else 1)
               for i, s in enumerate(layer_shapes(arch)))


def weight_bits(arch: Architecture) -> int:
    return sum(s["out_c"] * s["fan_in"] for s in layer_shapes(arch))


# ---------------------------------------------------------------- model zoo

def _input(channels: int, height: int, width: int, planes: Sequence[int] | None,
           encoding: str = "planes") -> dict[str, Any]:
    inp = {"channels": channels, "height": height, "width": width, "bits": 8,
           "planes": sorted(planes) if planes is not None else list(range(8))}
    if encoding != "planes":  # absent means planes: checkpoints made before the choice existed
        inp["encoding"] = encoding
    return inp


def _fc(width: int) -> list[dict[str, Any]]:
    return [{"kind": "dense", "out": width} for _ in range(3)]


def _cnv(height: int) -> list[dict[str, Any]]:
    # FINN's CNV has no padding, sized for 32x32: 30,28,pool14,12,10,pool5,3,1.
    # At 28x28 the first two convs pad (with +1) so the same stack ends at 1x1.
    pad = 1 if height < 32 else 0
    conv = [{"kind": "conv", "out": n, "kernel": 3, "padding": pad if i < 2 else 0, "pad_bit": 1}
            for i, n in enumerate((64, 64, 128, 128, 256, 256))]
    return [conv[0], conv[1], {"kind": "pool", "size": 2}, conv[2], conv[3], {"kind": "pool", "size": 2},
            conv[4], conv[5], {"kind": "dense", "out": 512}, {"kind": "dense", "out": 512}]


def _nin(height: int) -> list[dict[str, Any]]:
    # A small binary Network-in-Network, after the first seed's NIN: kxk conv then 1x1 "mlpconv"s.
    def conv(n: int, k: int, p: int) -> dict[str, Any]:
        return {"kind": "conv", "out": n, "kernel": k, "padding": p, "pad_bit": 1}
    return [conv(96, 3, 1), conv(64, 1, 0), {"kind": "pool", "size": 2},
            conv(128, 3, 1), conv(96, 1, 0), {"kind": "pool", "size": 2},
            conv(128, 3, 1), conv(128, 1, 0), {"kind": "pool", "size": 2}]


def _inc(height: int) -> list[dict[str, Any]]:
    # A small binary Inception-style network: after a stem conv, two concat blocks of a 3x3 conv,
    # a 1x1 conv and the map itself (a skip), each behind a pool.
    def conv(n: int, k: int, p: int) -> dict[str, Any]:
        return {"kind": "conv", "out": n, "kernel": k, "padding": p, "pad_bit": 1}
    return [conv(32, 3, 1), {"kind": "pool", "size": 2},
            {"kind": "concat", "paths": [[conv(32, 3, 1)], [conv(16, 1, 0)], []]}, {"kind": "pool", "size": 2},
            {"kind": "concat", "paths": [[conv(64, 3, 1)], []]}, {"kind": "pool", "size": 2},
            {"kind": "dense", "out": 128}]


ZOO = {
    "tfc": lambda h: _fc(64),
    "sfc": lambda h: _fc(256),
    "lfc": lambda h: _fc(1024),
    "cnv": _cnv,
    "nin": _nin,
    "inc": _inc,
}


def make_architecture(name: str, *, channels: int = 1, height: int = 28, width: int = 28, classes: int = 10,
                      planes: Sequence[int] | None = None, widths: Sequence[int] | None = None,
                      width_multiplier: float = 1.0, encoding: str = "planes") -> Architecture:
    """Architecture of a zoo model. ``widths`` overrides the hidden widths (conv and dense, in order);
    ``encoding``: ``"planes"`` (bit planes as binary channels) or ``"integer"`` (integer first layer)."""
    if name not in ZOO:
        raise ArchitectureError(f"unknown model {name!r}; choose one of {', '.join(ZOO)}")
    layers = copy.deepcopy(ZOO[name](height))
    hidden = [layer for layer in walk_layers(layers) if layer["kind"] in PRUNABLE]
    if widths is not None:
        if len(widths) != len(hidden):
            raise ArchitectureError(f"model {name} has {len(hidden)} hidden layers, got {len(widths)} widths")
        for layer, n in zip(hidden, widths, strict=True):
            layer["out"] = int(n)
    for layer in hidden:
        layer["out"] = max(1, round(layer["out"] * width_multiplier))
    layers.append({"kind": "output", "out": classes})
    arch = {"name": name, "input": _input(channels, height, width, planes, encoding), "layers": layers}
    validate_architecture(arch)
    return arch


def require_chain(arch: Architecture, what: str) -> None:
    """Refuse, before any work, a branched network to a step that handles chains of layers only."""
    if is_branched(arch):
        raise ArchitectureError(f"this network branches (a concat layer); {what} works on chains of layers only, so "
                                "train, evaluate and build it as it is")


def classes(arch: Architecture) -> int:
    """The output layer's width: the number of classes."""
    return int(arch["layers"][-1]["out"])


def hidden_widths(arch: Architecture) -> list[int]:
    """The widths pruning and width scaling change, conv and dense in order (a chain's only)."""
    require_chain(arch, "pruning and width changes")
    return [layer["out"] for layer in arch["layers"] if layer["kind"] in PRUNABLE]
