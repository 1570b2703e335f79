"""Remove output channels of hidden binary layers, exactly: shared by the flip and bitslice methods.

Removing channel c of hidden layer l deletes row c of l's weights and batch-norm, and
c's inputs of the next weight layer (a column of a dense layer; an input channel of a
conv; for a dense layer after a conv, the column of c at every pixel, HWC order).

What "exactly" means: a removed channel is replaced by a constant bit ``fill`` (its
*mask*). A constant input adds a constant ``d_j`` to every dot product of output j
of the next layer, so the next layer's batch-norm mean absorbs it (``mean - d_j``)
and the narrower network computes the same function as the parent whose channel c
is forced to ``fill``. :func:`mask_channels` builds that parent; the unit tests
check that the bit-exact reference of both agrees. Two details make it hold:

- If a padded conv reads the channel (possibly through a max-pool), the padding
  bit and the mask must agree, or the border pixels would see a different
  constant; :func:`required_fill` names the only allowed bit then.
- ``mean - d_j`` is rounded to float32. For hidden layers the new mean is
  nudged (one float32 step at a time) until the sign of the batch-norm agrees
  with the parent's at every reachable integer dot, so the integer thresholds
  are identical. For the output layer the float class scores agree to within
  rounding of that one subtraction (identical whenever ``mean - d_j`` is exact).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..nn.layers import BinaryConv2d, BinaryLinear, ExactBatchNorm1d
from ..nn.models import BNN, PRUNABLE, hidden_widths, layer_shapes

Removal = Mapping[int, Sequence[int]]  # hidden layer index -> channels to remove
Fill = int | Mapping[int, Sequence[int] | int]  # one bit for all, or per layer (one bit or one per channel)


@dataclass(frozen=True)
class _WeightBlock:
    block: int  # index into model.blocks and arch["layers"]
    weight: BinaryLinear | BinaryConv2d
    bn: nn.modules.batchnorm._BatchNorm


def _weight_blocks(model: BNN) -> list[_WeightBlock]:
    out = []
    for b, block in enumerate(model.blocks):
        if isinstance(block, nn.Sequential):
            w = next(m for m in block if isinstance(m, BinaryLinear | BinaryConv2d))
            bn = next(m for m in block if isinstance(m, nn.modules.batchnorm._BatchNorm))
            out.append(_WeightBlock(b, w, bn))
    return out


def required_fill(arch: dict, layer: int) -> int | None:
    """The only mask bit hidden ``layer`` may take (the pad bit of a padded conv reading it), else None."""
    layers = arch["layers"]
    blocks = [b for b, spec in enumerate(layers) if spec["kind"] in PRUNABLE]
    for spec in layers[blocks[layer] + 1:]:
        if spec["kind"] == "pool":
            continue
        if spec["kind"] == "conv" and spec.get("padding", 0) > 0:
            return int(spec.get("pad_bit", 1))
        return None
    return None


def _fills(arch: dict, removed: Removal, fill: Fill) -> dict[int, np.ndarray]:
    """Per layer with removals, one 0/1 fill bit per removed channel (checked against padding)."""
    out: dict[int, np.ndarray] = {}
    for layer, channels in removed.items():
        need = required_fill(arch, layer)
        spec = fill if isinstance(fill, int) else fill.get(layer, 1 if need is None else need)
        bits = np.broadcast_to(np.asarray(spec, dtype=np.int64), (len(channels),)).copy()
        if not np.isin(bits, (0, 1)).all():
            raise ValueError(f"layer {layer}: fill bits must be 0 or 1, not {bits.tolist()}")
        if need is not None and (bits != need).any():
            raise ValueError(f"layer {layer}: a padded conv reads it, so removed channels must be masked with "
                             f"its pad bit {need}, not {bits.tolist()}")
        out[layer] = bits
    return out


def _check_removal(model: BNN, removed: Removal) -> dict[int, list[int]]:
    widths = hidden_widths(model.arch)
    clean: dict[int, list[int]] = {}
    for layer, channels in removed.items():
        if not 0 <= layer < len(widths):
            raise ValueError(f"hidden layer index {layer} out of range 0..{len(widths) - 1}")
        chans = sorted({int(c) for c in channels})
        if chans and (chans[0] < 0 or chans[-1] >= widths[layer]):
            raise ValueError(f"layer {layer} has {widths[layer]} channels, cannot remove {chans}")
        if len(chans) >= widths[layer]:
            raise ValueError(f"layer {layer}: removing all {widths[layer]} channels leaves nothing")
        if len(chans) != len(list(channels)):
            raise ValueError(f"layer {layer}: channels to remove must be distinct, got {list(channels)}")
        if chans:
            clean[layer] = list(channels)
    return clean


def mask_channels(model: BNN, removed: Removal, fill: Fill = 1) -> BNN:
    """A copy of ``model`` whose removed channels output the constant ``fill`` bit (eval mode).

    The batch-norm of each such channel gets scale 0 and bias ±1, so ``BN(x) = ±1``
    for every finite x: the parent that :func:`remove_channels` is exactly equal to.
    """
    removed = _check_removal(model, removed)
    fills = _fills(model.arch, removed, fill)
    masked = copy.deepcopy(model)
    blocks = _weight_blocks(masked)
    with torch.no_grad():
        for layer, channels in removed.items():
            bn = blocks[layer].bn
            idx = torch.tensor(channels, dtype=torch.long)
            bn.weight[idx] = 0.0
            bn.bias[idx] = torch.from_numpy(fills[layer].astype(np.float32) * 2 - 1)
    masked.eval()
    return masked


def _signs(weight: torch.Tensor) -> torch.Tensor:
    return torch.where(weight.detach() >= 0, 1.0, -1.0)


def remove_channels(model: BNN, removed: Removal, fill: Fill = 1) -> BNN:
    """A narrower copy of ``model`` without the ``removed`` channels, equal to ``mask_channels(model, ...)``.

    ``removed`` maps hidden layer indices (order of :func:`hidden_widths`) to channel
    indices; ``fill`` is the mask bit (one for all, or per layer one bit or one per
    removed channel). Latent weights of surviving rows and columns are kept, so the
    result can be fine-tuned.
    """
    removed = _check_removal(model, removed)
    fills = _fills(model.arch, removed, fill)
    old_blocks = _weight_blocks(model)
    widths = hidden_widths(model.arch)
    keep = {i: [c for c in range(w) if c not in set(removed.get(i, ()))] for i, w in enumerate(widths)}
    arch = copy.deepcopy(model.arch)
    hidden = [spec for spec in arch["layers"] if spec["kind"] in PRUNABLE]
    for i, spec in enumerate(hidden):
        spec["out"] = len(keep[i])
    new = BNN(arch)
    new_blocks = _weight_blocks(new)
    shapes = layer_shapes(model.arch)
    with torch.no_grad():
        for j, (old, fresh) in enumerate(zip(old_blocks, new_blocks, strict=True)):
            rows = keep.get(j, list(range(old.weight.weight.shape[0])))  # the output layer keeps all rows
            row_idx = torch.tensor(rows, dtype=torch.long)
            w = old.weight.weight[row_idx]
            shift = torch.zeros(len(rows), dtype=torch.float64)
            if j > 0 and (j - 1) in removed:
                prev = j - 1
                gone = torch.tensor(removed[prev], dtype=torch.long)
                kept = torch.tensor(keep[prev], dtype=torch.long)
                value = torch.from_numpy(fills[prev].astype(np.float64) * 2 - 1)  # ±1 per removed channel
                if isinstance(old.weight, BinaryConv2d):
                    # d_j = sum over removed input channels c and kernel taps of fill_c * sign(w[j, c, ky, kx])
                    shift = (_signs(w[:, gone]).double().sum((2, 3)) * value).sum(1)
                    w = w[:, kept]
                else:
                    s = shapes[old.block]
                    pixels = s["in_h"] * s["in_w"]
                    # Dense input is the HWC flattening: feature (pixel, c) sits at column pixel*C + c.
                    grid = w.reshape(len(rows), pixels, s["in_c"])
                    shift = (_signs(grid[:, :, gone]).double().sum(1) * value).sum(1)
                    w = grid[:, :, kept].reshape(len(rows), -1)
            fresh.weight.weight.copy_(w)
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(fresh.bn, name).copy_(getattr(old.bn, name)[row_idx])
            fresh.bn.num_batches_tracked.copy_(old.bn.num_batches_tracked)
            if shift.abs().sum() > 0:
                target = _bn_module(old.bn, row_idx)
                fresh.bn.running_mean.copy_(_shifted_mean(target, shift, fresh.weight.weight[0].numel(),
                                                          exact_sign=j < len(old_blocks) - 1))
    new.eval()
    return new


def _bn_module(bn: nn.modules.batchnorm._BatchNorm, rows: torch.Tensor) -> ExactBatchNorm1d:
    """The eval-mode batch-norm of ``rows`` as an ExactBatchNorm1d (the same arithmetic as 2-d)."""
    out = ExactBatchNorm1d(len(rows), eps=bn.eps)
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(out, name).copy_(getattr(bn, name)[rows])
    return out.eval()


@torch.no_grad()
def _shifted_mean(parent: ExactBatchNorm1d, shift: torch.Tensor, fan_in: int, *, exact_sign: bool) -> torch.Tensor:
    """float32 mean' with ``BN'(x) == BN(x + shift)`` at every dot x the narrower layer can produce.

    For a hidden layer only the sign of the result matters (the threshold); search
    the float32 neighbours of ``mean - shift`` until the sign agrees everywhere.
    """
    dots = (2.0 * torch.arange(fan_in + 1, dtype=torch.float32) - fan_in).unsqueeze(1)
    dots = dots.expand(fan_in + 1, len(shift)).contiguous()
    shift32 = shift.to(torch.float32)  # integers well below 2**24: exact
    want = parent(dots + shift32)
    mean = (parent.running_mean.double() - shift).to(torch.float32)
    trial = copy.deepcopy(parent)

    def score(m: torch.Tensor) -> torch.Tensor:
        trial.running_mean.copy_(m)
        return trial(dots)

    got = score(mean)
    if not exact_sign:
        return mean
    bad = ((got >= 0) != (want >= 0)).any(0)
    if bad.any():
        for c in torch.flatnonzero(bad).tolist():
            mean[c] = _repair_channel(parent, c, float(shift[c]), dots[:, 0], want[:, c] >= 0, float(mean[c]))
    return mean


def _repair_channel(parent: ExactBatchNorm1d, c: int, shift: float, dots: torch.Tensor, want: torch.Tensor,
                    start: float) -> float:
    one = _bn_module(parent, torch.tensor([c]))
    candidates = [np.float32(start)]
    up = down = np.float32(start)
    for _ in range(256):
        up = np.nextafter(up, np.float32(np.inf), dtype=np.float32)
        down = np.nextafter(down, np.float32(-np.inf), dtype=np.float32)
        candidates += [up, down]
    for m in candidates:
        one.running_mean.fill_(float(m))
        if torch.equal(one(dots.unsqueeze(1))[:, 0] >= 0, want):
            return float(m)
    raise ArithmeticError(f"channel {c}: no float32 batch-norm mean reproduces the parent's thresholds "
                          f"after a shift of {shift}")


def output_bits_mode(model: BNN, images: np.ndarray, layer: int, batch_size: int = 500) -> np.ndarray:
    """The most frequent output bit of each channel of hidden ``layer`` on ``images`` (ties -> 1).

    A good mask for a channel about to be removed: the constant closest to what it computed.
    """
    blocks = _weight_blocks(model)
    stop = blocks[layer].block
    ones = None
    total = 0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = model.encoder(torch.from_numpy(images[start:start + batch_size]))
            for block in model.blocks[:stop + 1]:
                x = block(x)
            bits = (x > 0).float()
            per = bits.sum(0) if bits.dim() == 2 else bits.sum((0, 2, 3))
            ones = per if ones is None else ones + per
            total += bits.shape[0] * (1 if bits.dim() == 2 else bits.shape[2] * bits.shape[3])
    model.train(was_training)
    assert ones is not None
    return (ones.numpy() * 2 >= total).astype(np.int64)


def choose_fill(model: BNN, removed: Removal, images: np.ndarray | None) -> dict[int, list[int]]:
    """Per removed channel its mask bit: the padding bit where forced, else its majority bit on ``images``."""
    out: dict[int, list[int]] = {}
    for layer, channels in removed.items():
        need = required_fill(model.arch, layer)
        if need is not None or images is None or len(images) == 0:
            out[layer] = [1 if need is None else need] * len(channels)
        else:
            mode = output_bits_mode(model, images, layer)
            out[layer] = [int(mode[c]) for c in channels]
    return out
