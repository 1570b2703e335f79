"""Input bit-plane surgery for CBNN (docs/bitslice-pruning.md): randomise planes, fix them, remove them.

Pixel-level operations act on the uint8 pixels, not on the encoded ±1 planes, so the
same perturbed pixels can feed PyTorch, the bit-exact reference and the hardware.
Plane ``b`` of pixel ``v`` is ``(v >> b) & 1`` (bit 1 = +1, bit 0 = -1), the same
``b`` for every colour channel.

:func:`remove_planes` builds the network without some planes. It equals its parent
*exactly* when the parent is fed those planes as a constant, and only then: a removed
plane's first-layer contribution ``sum_j w_oj * x_j`` is a per-channel constant only when
every ``x_j`` of the plane is one fixed value, and then the child's batch-norm (hence its
integer threshold) absorbs it. Two more conditions make "constant" true:

- a padded first convolution sees the pad value at the border, so the fixed plane must
  equal the pad bit, or the border pixels would add a different sum than the interior;
- the first layer must be a hidden (sign) layer: the output layer's float scores can
  shift by a rounding error, its decisions stay exact only through the sign.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch

from ..nn.layers import BinaryConv2d, BinaryLinear
from ..nn.models import BNN, input_encoding


def bit_mask(bits: Sequence[int]) -> np.uint8:
    """The uint8 mask with the given bit positions set."""
    bits = [int(b) for b in bits]
    if any(b < 0 or b > 7 for b in bits):
        raise ValueError(f"bit positions must lie in 0..7, not {bits}")
    return np.uint8(sum(1 << b for b in set(bits)))


def randomize_bits(pixels: np.ndarray, bits: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """Replace the given bit planes of uint8 pixels by independent uniform random bits (±1 after encoding).

    Every (image, colour channel, row, column) draws its own bit, so colour channels are
    independent and the other planes are untouched.
    """
    if pixels.dtype != np.uint8:
        raise TypeError(f"pixels must be uint8, not {pixels.dtype}")
    mask = bit_mask(bits)
    if not mask:
        return pixels.copy()
    noise = rng.integers(0, 256, size=pixels.shape, dtype=np.uint8)
    return (pixels & ~mask) | (noise & mask)


def fill_bits(pixels: np.ndarray, bits: Sequence[int], bit: int) -> np.ndarray:
    """Force the given bit planes of every pixel to ``bit`` (0 -> plane -1, 1 -> plane +1)."""
    if bit not in (0, 1):
        raise ValueError(f"fill bit must be 0 or 1, not {bit!r}")
    mask = bit_mask(bits)
    return pixels | mask if bit else pixels & ~mask


def default_fill_bit(model: BNN) -> int:
    """The constant that makes removal exact: the first conv's pad bit when it pads, else 0 (truncation)."""
    first = model.binary_layers()[0][1]
    if isinstance(first, BinaryConv2d) and first.pad:
        return first.pad_bit
    return 0


def _plane_view(weight: torch.Tensor, arch: dict, planes: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    """The first layer's weights as (out, ..., C, P, ...) with an explicit plane axis, and the axis index.

    The encoder's channel index is ``c * P + i``; a dense first layer flattens HWC, so its
    fan-in index is ``(h * W + w) * C * P + c * P + i``.
    """
    inp = arch["input"]
    c = inp["channels"]
    if weight.dim() == 4:  # conv (out, C*P, k, k)
        o, _, k1, k2 = weight.shape
        return weight.reshape(o, c, planes, k1, k2), (2,)
    o = weight.shape[0]
    return weight.reshape(o, inp["height"], inp["width"], c, planes), (4,)


def remove_planes(model: BNN, keep: Sequence[int], fill_bit: int | None = None) -> BNN:
    """A copy of ``model`` whose input keeps only the planes ``keep``.

    The child's first-layer weights are the parent's without the removed planes' columns;
    the removed planes' contribution when they are fixed to ``fill_bit`` is folded into the
    first batch-norm's running mean (and, at a rounding tie, into an exact threshold form).
    Then ``child(x) == parent(fill_bits(x, removed, fill_bit))`` exactly in eval mode for
    every uint8 input ``x`` (see the module docstring for when that can hold).
    """
    arch = copy.deepcopy(model.arch)
    old = list(arch["input"]["planes"])
    keep = sorted({int(b) for b in keep})
    if not keep or not set(keep) <= set(old):
        raise ValueError(f"planes to keep must be a non-empty subset of the model's planes {old}, not {keep}")
    if fill_bit is None:
        fill_bit = default_fill_bit(model)
    if fill_bit not in (0, 1):
        raise ValueError(f"fill bit must be 0 or 1, not {fill_bit!r}")
    name, first = model.binary_layers()[0]
    if isinstance(first, BinaryConv2d) and first.pad and fill_bit != first.pad_bit:
        raise ValueError(f"the first convolution pads with bit {first.pad_bit}; removed planes fixed to bit "
                         f"{fill_bit} would contribute differently at the border than inside, which no "
                         f"threshold can absorb; use fill bit {first.pad_bit}")
    arch["input"]["planes"] = keep
    child = BNN(arch)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    idx_keep = torch.tensor([old.index(b) for b in keep])
    idx_drop = torch.tensor([i for i, b in enumerate(old) if b not in keep], dtype=torch.long)

    weight = state[f"{name}.weight"]
    if input_encoding(model.arch) == "integer":
        # The planes share the weights: the child reads x & keep-mask. A removed plane b fixed to
        # the fill bit adds fill * 2^b * sum(sign(w)) per channel (padding: the pad bit is the fill).
        dropped_value = sum(1 << b for b in old if b not in keep)
        signs = torch.where(weight >= 0, 1.0, -1.0).reshape(weight.shape[0], -1).sum(1).double()
        constant = float(fill_bit * dropped_value) * signs
    else:
        view, (axis,) = _plane_view(weight, model.arch, len(old))
        kept = view.index_select(axis, idx_keep)
        shape = (weight.shape[0], -1) if weight.dim() == 2 else (weight.shape[0], -1, *weight.shape[2:])
        state[f"{name}.weight"] = kept.reshape(shape).contiguous()
        # Removed planes are the constant v = ±1: their dot contribution is v * sum(sign(w)) per channel.
        # Conv: every interior window sees the whole kernel; with padding the pad bit equals v (checked above).
        dropped = torch.where(view.index_select(axis, idx_drop) >= 0, 1.0, -1.0)
        constant = (1.0 if fill_bit else -1.0) * dropped.reshape(weight.shape[0], -1).sum(1).double()

    bn_prefix = _bn_prefix(child)
    mean = state[f"{bn_prefix}.running_mean"]
    state[f"{bn_prefix}.running_mean"] = (mean.double() - constant).to(mean.dtype)
    child.load_state_dict(state)
    child.eval()
    if model.arch["layers"][0]["kind"] != "output":
        _repair_ties(model, child, bn_prefix, constant)
    return child


def _bn_prefix(model: BNN) -> str:
    for name, module in model.blocks[0].named_children():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            return f"blocks.0.{name}"
    raise ValueError("the first block has no batch-norm")


def _fan_in(model: BNN) -> int:
    first = model.binary_layers()[0][1]
    if isinstance(first, BinaryLinear):
        return first.in_features
    return first.in_channels * first.kernel_size[0] * first.kernel_size[1]


@torch.no_grad()
def _repair_ties(parent: BNN, child: BNN, bn_prefix: str, constant: torch.Tensor) -> None:
    """Make the child's first-layer sign equal the parent's at every reachable integer dot.

    Shifting the running mean by the constant is exact in real arithmetic but rounds in
    float32; where that flips a decision (a dot landing on a tie), the channel gets the
    exact threshold form ``(dot - m) / d * ±1`` with ``m`` an integer of the other parity
    than every reachable dot, so the comparison can never tie.
    """
    bn_p = parent.get_submodule(bn_prefix)
    bn_c = child.get_submodule(bn_prefix)
    n = _fan_in(child)
    if input_encoding(child.arch) == "integer":
        # Every integer the child's dot can take lies in -n*X..n*X (X: its largest input); a tie
        # form with a half-integer mean can never tie.
        top = n * sum(1 << b for b in child.arch["input"]["planes"])
        dots, gap = torch.arange(-top, top + 1, dtype=torch.float32), 0.5
    else:
        dots, gap = torch.arange(-n, n + 1, 2, dtype=torch.float32), 1.0  # same parity as n
    channels = len(constant)
    x_child = dots.unsqueeze(1).expand(len(dots), channels).contiguous()
    x_parent = (dots.double().unsqueeze(1) + constant.unsqueeze(0)).float()  # integers: exact in float32
    def bits(bn: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        shaped = x.view(*x.shape, 1, 1) if isinstance(bn, torch.nn.BatchNorm2d) else x  # conv BN wants 4-D
        return (bn(shaped) >= 0).reshape(x.shape)

    want = bits(bn_p, x_parent)
    have = bits(bn_c, x_child)
    for ch in torch.nonzero((want != have).any(0)).flatten().tolist():
        fires = want[:, ch]
        if fires.all() or not fires.any():
            bn_c.weight[ch], bn_c.bias[ch] = 0.0, 1.0 if fires.all() else -1.0
        elif fires[-1]:  # fires for dot >= x0
            x0 = float(dots[fires.nonzero()[0, 0]])
            bn_c.running_mean[ch], bn_c.weight[ch], bn_c.bias[ch] = x0 - gap, 1.0, 0.0
        else:  # fires for dot <= x1
            x1 = float(dots[fires.nonzero()[-1, 0]])
            bn_c.running_mean[ch], bn_c.weight[ch], bn_c.bias[ch] = x1 + gap, -1.0, 0.0
    assert (bits(bn_c, x_child) == want).all(), "threshold repair failed"
