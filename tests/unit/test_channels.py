"""Channel removal is exact: the narrower network equals its parent with those channels masked to a constant.

"Masked" = the channel's batch-norm forced to a constant bit (scale 0, bias ±1); the
removed channel's constant contribution to the next layer is folded into that
layer's batch-norm mean. Checked through the bit-exact reference (every surviving
hidden bit, class popcounts up to the per-class constant, predictions) and PyTorch.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bnn2fpga import reference
from bnn2fpga.checkpoint import Checkpoint
from bnn2fpga.ir.graph import BinaryConv, BinaryDense, MaxPool
from bnn2fpga.ir.pipeline import lower
from bnn2fpga.nn.models import BNN, hidden_widths, make_architecture
from bnn2fpga.prune.channels import choose_fill, mask_channels, output_bits_mode, remove_channels, required_fill
from tests.conftest import random_checkpoint, random_pixels, randomize_batchnorm


def removal(model: BNN, seed: int, fraction: float = 0.4) -> dict[int, list[int]]:
    rng = np.random.default_rng(seed)
    return {i: sorted(rng.choice(w, size=max(1, int(w * fraction)), replace=False).tolist())
            for i, w in enumerate(hidden_widths(model.arch))}


def assert_equivalent(parent: BNN, removed: dict[int, list[int]], fill: object, pixels: np.ndarray) -> BNN:
    masked = mask_channels(parent, removed, fill)
    pruned = remove_channels(parent, removed, fill)
    assert hidden_widths(pruned.arch) == [w - len(removed.get(i, ())) for i, w in
                                          enumerate(hidden_widths(parent.arch))]
    gm, gp = lower(Checkpoint.from_model(masked)), lower(Checkpoint.from_model(pruned))
    outs_m, outs_p = reference.layer_outputs(gm, pixels), reference.layer_outputs(gp, pixels)
    hidden = 0
    for layer, om, op in zip(gm.layers, outs_m[1:], outs_p[1:], strict=True):
        if isinstance(layer, BinaryConv | BinaryDense):
            keep = [c for c in range(layer.mh) if c not in set(removed.get(hidden, ()))]
            current = keep
            hidden += 1
        elif not isinstance(layer, MaxPool):  # output popcounts differ by a constant per class
            diff = om.astype(np.int64) - op
            assert (diff == diff[:1]).all()
            continue
        assert np.array_equal(om[..., current], op), f"{layer.name}: surviving bits differ"
    rm, rp = reference.run(gm, pixels), reference.run(gp, pixels)
    assert np.array_equal(rm.predictions, rp.predictions)
    with torch.no_grad():
        x = torch.from_numpy(pixels)
        torch.testing.assert_close(pruned(x), masked(x), rtol=0, atol=1e-5)
    return pruned


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dense_removal_equals_masked_parent(seed: int) -> None:
    parent = random_checkpoint("tfc", seed=seed).model()
    removed = removal(parent, seed)
    fills = {i: np.random.default_rng(seed + i).integers(0, 2, len(c)).tolist() for i, c in removed.items()}
    assert_equivalent(parent, removed, fills, random_pixels(200, seed=seed))


@pytest.mark.parametrize("fill", [0, 1])
def test_conv_pool_dense_removal_equals_masked_parent(fill: int) -> None:
    # cnv at 1/16 width: a padded conv (pad bit 1) reads layer 0; a dense reads conv 5 through flatten.
    parent = random_checkpoint("cnv", seed=4, width_multiplier=1 / 16).model()
    removed = removal(parent, 4)
    fills = {i: (1 if required_fill(parent.arch, i) is not None else fill) for i in removed}
    assert_equivalent(parent, removed, fills, random_pixels(60, seed=4))


def test_zero_pad_bit_forces_a_zero_mask() -> None:
    arch = make_architecture("cnv", width_multiplier=1 / 16)
    for spec in arch["layers"]:
        if spec["kind"] == "conv":
            spec["pad_bit"] = 0
    torch.manual_seed(5)
    parent = randomize_batchnorm(BNN(arch), 5)
    assert [required_fill(arch, i) for i in range(8)] == [0, None, None, None, None, None, None, None]
    removed = {0: [1, 2], 1: [0], 5: [3]}
    with pytest.raises(ValueError, match=r"layer 0: a padded conv reads it, so removed channels must be masked "
                                         r"with its pad bit 0, not \[1, 1\]"):
        remove_channels(parent, removed, fill=1)
    assert_equivalent(parent, removed, {0: 0, 1: 1, 5: 1}, random_pixels(40, seed=5))


def test_only_some_layers_pruned_and_latent_weights_kept() -> None:
    parent = random_checkpoint("tfc", seed=6).model()
    pruned = assert_equivalent(parent, {1: [0, 5, 63]}, 1, random_pixels(100, seed=6))
    assert hidden_widths(pruned.arch) == [64, 61, 64]
    keep = [c for c in range(64) if c not in (0, 5, 63)]
    w_parent = [m.weight for _, m in parent.binary_layers()]
    w_pruned = [m.weight for _, m in pruned.binary_layers()]
    assert torch.equal(w_pruned[0], w_parent[0])
    assert torch.equal(w_pruned[1], w_parent[1][keep])
    assert torch.equal(w_pruned[2], w_parent[2][:, keep])


def test_majority_fill() -> None:
    parent = random_checkpoint("tfc", seed=7).model()
    pixels = random_pixels(300, seed=7)
    mode = output_bits_mode(parent, pixels, 1)
    with torch.no_grad():
        x = parent.encoder(torch.from_numpy(pixels))
        for block in parent.blocks[:2]:
            x = block(x)
    assert np.array_equal(mode, ((x > 0).float().mean(0) >= 0.5).numpy().astype(np.int64))
    assert choose_fill(parent, {1: [3, 4]}, pixels) == {1: [int(mode[3]), int(mode[4])]}


def test_bad_removals() -> None:
    parent = random_checkpoint("tfc", seed=8).model()
    with pytest.raises(ValueError, match="layer 0: removing all 64 channels leaves nothing"):
        remove_channels(parent, {0: list(range(64))})
    with pytest.raises(ValueError, match=r"layer 2 has 64 channels, cannot remove \[64\]"):
        remove_channels(parent, {2: [64]})
    with pytest.raises(ValueError, match="hidden layer index 3 out of range 0..2"):
        remove_channels(parent, {3: [0]})
    with pytest.raises(ValueError, match=r"layer 0: fill bits must be 0 or 1, not \[2\]"):
        remove_channels(parent, {0: [0]}, fill=2)
