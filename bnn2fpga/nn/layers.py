"""Binary layers for PyTorch, written so that eval mode is exactly reproducible in integers.

Conventions (docs/architecture.md, numeric contract): bit 1 = +1, bit 0 = -1; sign(0) = +1. Every binary layer
is ``sign(BN(dot))``; the integer thresholds of the IR are derived by evaluating
these very modules at every integer popcount, so eval-mode arithmetic must be a
fixed sequence of correctly rounded elementwise operations (see ExactBatchNorm).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..contract.codes import CodeTable
from ..contract.planes import Planes


class _SignSTE(torch.autograd.Function):
    """sign with the straight-through estimator: gradient passes where |x| <= 1."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


def binarize(x: torch.Tensor) -> torch.Tensor:
    """±1 with sign(0) = +1, differentiable through the straight-through estimator."""
    return _SignSTE.apply(x)


class SignActivation(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return binarize(x)


class BinaryLinear(nn.Linear):
    """Fully connected layer with ±1 weights (latent float weights kept for training), no bias."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(in_features, out_features, bias=False)
        nn.init.uniform_(self.weight, -1.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, binarize(self.weight))


class BinaryConv2d(nn.Conv2d):
    """Convolution with ±1 weights; padding uses a fixed bit so hardware can reproduce it.

    Zero padding would add a third value to a binary datapath; padding with +1
    (``pad_bit=1``) or -1 (``pad_bit=0``) keeps every operand a single bit.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 padding: int = 0, pad_bit: int = 1, pad_value: float | None = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=0, bias=False)
        if pad_bit not in (0, 1):
            raise ValueError(f"pad_bit must be 0 or 1, not {pad_bit!r}")
        self.pad = padding
        self.pad_bit = pad_bit
        # What a pad position holds: +-1 for bits; an integer-input layer pads with the pixel
        # whose every kept plane is the pad bit (IntegerEncoder.pad_value).
        self.pad_value = (1.0 if pad_bit else -1.0) if pad_value is None else float(pad_value)
        nn.init.uniform_(self.weight, -1.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad:
            x = F.pad(x, (self.pad,) * 4, value=self.pad_value)
        return F.conv2d(x, binarize(self.weight))


class _ExactBatchNorm:
    """Eval mode as explicit elementwise ops: ``(x - mean) / sqrt(var + eps) * weight + bias``.

    PyTorch's fused eval kernel may use FMA in vectorised bodies and not in tails,
    so one value could round differently depending on its position in the batch.
    Separate elementwise ops are each correctly rounded, whatever the shape.
    """

    def _exact(self, x: torch.Tensor, view: Sequence[int]) -> torch.Tensor:
        mean = self.running_mean.view(*view)  # type: ignore[attr-defined]
        var = self.running_var.view(*view)  # type: ignore[attr-defined]
        weight = self.weight.view(*view)  # type: ignore[attr-defined]
        bias = self.bias.view(*view)  # type: ignore[attr-defined]
        denom = torch.sqrt(var + self.eps)  # type: ignore[attr-defined]
        return (x - mean) / denom * weight + bias


class ExactBatchNorm1d(nn.BatchNorm1d, _ExactBatchNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return super().forward(x)
        return self._exact(x, (1, -1))


class ExactBatchNorm2d(nn.BatchNorm2d, _ExactBatchNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return super().forward(x)
        return self._exact(x, (1, -1, 1, 1))


class BinaryMaxPool2d(nn.MaxPool2d):
    """Max-pool over ±1 values, i.e. OR over bits."""

    def __init__(self, size: int) -> None:
        super().__init__(size, size)


class InputTable(nn.Module):
    """uint8 pixels (B, C, H, W) -> uint8 codes: ``table[c][pixel]`` per colour channel.

    An imported network's input quantiser, whatever its arithmetic (``2x - 1`` rounded to Q1.7, a
    driver's rounding), is a function of the 8-bit pixel; the table holds it as unsigned codes,
    and everything after (bit planes, the integer first layer) reads codes instead of pixels.
    The hardware holds the same table as a ROM in front of the slicer (``hw/input_table.py``).
    """

    def __init__(self, table: Sequence[Sequence[int]]) -> None:
        super().__init__()
        rows = torch.tensor(CodeTable(table), dtype=torch.uint8)
        offsets = torch.arange(len(rows), dtype=torch.long).view(1, -1, 1, 1) * 256
        self.register_buffer("flat", rows.reshape(-1), persistent=False)
        self.register_buffer("offsets", offsets, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.flat[x.long() + self.offsets]


class BitPlaneEncoder(nn.Module):
    """uint8 pixels (B, C, H, W) -> ±1 bit planes (B, C*P, H, W), colour-major, planes ascending.

    Plain binary, no normalisation (docs/bitslice-pruning.md): plane b of pixel v is (v >> b) & 1.
    With an input ``table``, the planes are those of the pixel's code (:class:`InputTable`).
    """

    def __init__(self, planes: Sequence[int], table: Sequence[Sequence[int]] | None = None) -> None:
        super().__init__()
        self.planes = Planes(planes)
        self.table = None if table is None else InputTable(table)
        self.register_buffer("shifts", torch.tensor(self.planes, dtype=torch.uint8), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8:
            raise TypeError(f"BitPlaneEncoder expects uint8 pixels, got {x.dtype}")
        if self.table is not None:
            x = self.table(x)
        b, c, h, w = x.shape
        bits = (x.unsqueeze(2) >> self.shifts.view(1, 1, -1, 1, 1)) & 1  # (B, C, P, H, W)
        return bits.reshape(b, c * len(self.planes), h, w).float() * 2.0 - 1.0


class IntegerEncoder(nn.Module):
    """uint8 pixels (B, C, H, W) -> the kept planes of each pixel as an unsigned integer (B, C, H, W).

    The integer-input first layer (FINN CNV, BinaryNet): x = sum over kept planes b of
    ((v >> b) & 1) << b, so dropping low planes (bit-slice pruning) zeroes them; the first
    layer's dot is sum_i w_i * x_i with w = +-1, exact in float32 (|dot| <= 255 * fan-in).
    With an input ``table``, v is the pixel's code (:class:`InputTable`).
    """

    def __init__(self, planes: Sequence[int], table: Sequence[Sequence[int]] | None = None) -> None:
        super().__init__()
        self.planes = Planes(planes)
        self.table = None if table is None else InputTable(table)
        self.mask = sum(1 << p for p in self.planes)

    @property
    def pad_value(self) -> float:
        """The largest encoded value, a pixel whose kept planes are all 1 (pad bit 1)."""
        return float(self.mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.uint8:
            raise TypeError(f"IntegerEncoder expects uint8 pixels, got {x.dtype}")
        if self.table is not None:
            x = self.table(x)
        return (x & self.mask).float()
