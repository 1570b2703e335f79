"""Plane randomisation and plane removal (bnn2fpga.prune.planes): exact where the maths says it must be."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bnn2fpga import reference
from bnn2fpga.checkpoint import Checkpoint
from bnn2fpga.ir.pipeline import lower
from bnn2fpga.nn.models import BNN, make_architecture
from bnn2fpga.prune.planes import default_fill_bit, fill_bits, randomize_bits, remove_planes
from tests.conftest import random_checkpoint, random_pixels


def test_randomize_changes_only_the_chosen_bits() -> None:
    pixels = random_pixels(200, 3, 8, 8, seed=1)
    out = randomize_bits(pixels, [0, 5], np.random.default_rng(0))
    mask = np.uint8(0b00100001)
    assert out.dtype == np.uint8 and out.shape == pixels.shape
    assert ((out & ~mask) == (pixels & ~mask)).all()
    for b in (0, 5):
        ones = ((out >> b) & 1).mean()
        assert abs(ones - 0.5) < 0.02  # uniform ±1 after encoding
    # The same bit position in every colour channel, drawn independently per channel.
    assert (((out[:, 0] >> 5) & 1) != ((out[:, 1] >> 5) & 1)).mean() > 0.4


def test_randomize_is_independent_of_the_pixels_and_seeded() -> None:
    black = np.zeros((50, 1, 6, 6), np.uint8)
    white = np.full((50, 1, 6, 6), 255, np.uint8)
    a = randomize_bits(black, [3], np.random.default_rng(7))
    b = randomize_bits(white, [3], np.random.default_rng(7))
    assert ((a >> 3) & 1 == (b >> 3) & 1).all()  # the plane no longer carries the image
    assert (randomize_bits(black, [3], np.random.default_rng(7)) == a).all()
    assert (randomize_bits(white, [], np.random.default_rng(7)) == white).all()


def test_randomize_rejects_bad_input() -> None:
    with pytest.raises(TypeError, match="pixels must be uint8, not float32"):
        randomize_bits(np.zeros((1, 1, 2, 2), np.float32), [0], np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"bit positions must lie in 0..7, not \[8\]"):
        randomize_bits(np.zeros((1, 1, 2, 2), np.uint8), [8], np.random.default_rng(0))


def test_fill_bits() -> None:
    px = np.array([[[[0b10110101, 0b01001010]]]], np.uint8)
    assert fill_bits(px, [0, 1], 0).ravel().tolist() == [0b10110100, 0b01001000]
    assert fill_bits(px, [0, 1], 1).ravel().tolist() == [0b10110111, 0b01001011]


def _agree(parent: BNN, child: BNN, removed: list[int], fill: int, pixels: np.ndarray) -> None:
    """child(x) == parent(x with the removed planes fixed), in PyTorch and in the bit-exact reference."""
    fixed = fill_bits(pixels, removed, fill)
    with torch.no_grad():
        assert torch.equal(child(torch.from_numpy(pixels)), parent(torch.from_numpy(fixed)))
    a = reference.run(lower(Checkpoint.from_model(child)), pixels)
    b = reference.run(lower(Checkpoint.from_model(parent)), fixed)
    assert (a.popcounts == b.popcounts).all() and (a.predictions == b.predictions).all()


CASES = [
    ("sfc", {"widths": [33, 7, 9]}, [6, 7], (0, 1)),
    ("tfc", {"widths": [5, 6, 7], "planes": [1, 4, 7]}, [4], (0, 1)),
    ("cnv", {"widths": [7, 3, 9, 5, 3, 5, 9, 4]}, [5, 6, 7], (1,)),  # pads with +1: only fill 1 is constant
    ("cnv", {"channels": 3, "height": 32, "width": 32, "width_multiplier": 0.05}, [7], (0, 1)),  # no padding
]


@pytest.mark.parametrize("name,kwargs,keep,fills", CASES)
def test_removed_planes_equal_constant_planes(name: str, kwargs: dict, keep: list[int], fills: tuple) -> None:
    ck = random_checkpoint(name, seed=3, **kwargs)
    parent = ck.model()
    inp = ck.architecture["input"]
    removed = [b for b in inp["planes"] if b not in keep]
    pixels = random_pixels(150, inp["channels"], inp["height"], inp["width"], seed=2)
    for fill in fills:
        child = remove_planes(parent, keep, fill)
        assert child.arch["input"]["planes"] == keep
        assert child.blocks[0][0 if name == "cnv" else 1].weight.shape[1] < \
            parent.blocks[0][0 if name == "cnv" else 1].weight.shape[1]
        _agree(parent, child, removed, fill, pixels)


INTEGER_CASES = [
    ("tfc", {"widths": [5, 6, 7], "planes": [1, 4, 7]}, [4, 7], (0, 1)),
    ("cnv", {"widths": [7, 3, 9, 5, 3, 5, 9, 4]}, [5, 6, 7], (1,)),  # pads with the all-ones pixel
    ("cnv", {"channels": 3, "height": 32, "width": 32, "width_multiplier": 0.05}, [6, 7], (0, 1)),
]


@pytest.mark.parametrize("name,kwargs,keep,fills", INTEGER_CASES)
def test_integer_first_layer_keeps_its_weights_when_planes_go(name: str, kwargs: dict, keep: list[int],
                                                             fills: tuple) -> None:
    # The planes share the weights: removing low planes changes no weight, only the input mask
    # and (for a fill of 1) the batch-norm mean; the child equals the parent fed the fixed planes.
    ck = random_checkpoint(name, seed=3, encoding="integer", **kwargs)
    parent = ck.model()
    inp = ck.architecture["input"]
    removed = [b for b in inp["planes"] if b not in keep]
    pixels = random_pixels(150, inp["channels"], inp["height"], inp["width"], seed=2)
    for fill in fills:
        child = remove_planes(parent, keep, fill)
        assert child.arch["input"]["planes"] == keep
        first = 0 if name == "cnv" else 1
        assert torch.equal(child.blocks[0][first].weight, parent.blocks[0][first].weight)
        _agree(parent, child, removed, fill, pixels)


def test_random_planes_are_not_absorbed() -> None:
    """The equality needs a constant plane: the same child disagrees with a parent fed a random plane."""
    ck = random_checkpoint("sfc", seed=5, widths=[64, 32, 16])
    parent = ck.model()
    child = remove_planes(parent, list(range(1, 8)), 0)
    pixels = random_pixels(300, seed=4)
    noisy = randomize_bits(pixels, [0], np.random.default_rng(0))
    with torch.no_grad():
        assert not torch.equal(child(torch.from_numpy(pixels)), parent(torch.from_numpy(noisy)))
        assert (child(torch.from_numpy(pixels)).argmax(1) != parent(torch.from_numpy(noisy)).argmax(1)).any()


def test_padding_needs_the_pad_bit() -> None:
    ck = random_checkpoint("cnv", widths=[7, 3, 9, 5, 3, 5, 9, 4])
    model = ck.model()
    assert default_fill_bit(model) == 1
    with pytest.raises(ValueError, match="the first convolution pads with bit 1; removed planes fixed to bit 0"):
        remove_planes(model, [7], 0)
    # A model that pads with -1 absorbs planes fixed to 0 (and they are its default).
    arch = make_architecture("cnv", widths=[7, 3, 9, 5, 3, 5, 9, 4])
    for layer in arch["layers"]:
        if layer["kind"] == "conv":
            layer["pad_bit"] = 0
    torch.manual_seed(0)
    parent = BNN(arch).eval()
    assert default_fill_bit(parent) == 0
    _agree(parent, remove_planes(parent, [6, 7]), list(range(6)), 0, random_pixels(60, seed=9))


def test_keep_must_be_a_subset() -> None:
    model = random_checkpoint("tfc", planes=[5, 6, 7]).model()
    with pytest.raises(ValueError, match="non-empty subset of the model's planes"):
        remove_planes(model, [4])
    with pytest.raises(ValueError, match="non-empty subset"):
        remove_planes(model, [])


def test_rounding_ties_are_repaired() -> None:
    """Batch-norms with an exact zero at an integer dot: the float32 mean shift alone would round wrongly."""
    torch.manual_seed(1)
    parent = BNN(make_architecture("tfc", widths=[64, 8, 8], planes=[6, 7])).eval()
    first = parent.blocks[0][1]
    bn = parent.blocks[0][2]
    with torch.no_grad():
        first.weight[:, 0::2] = 1.0  # plane 6 contributes -784 (fill 0) to every channel: a big shift
        g = torch.Generator().manual_seed(0)
        bn.running_mean.copy_(torch.rand(64, generator=g) * 3)  # fractional means: m - c rounds in float32
        bn.running_var.fill_(1.0)
        bn.weight.fill_(1.0)
        # Put the zero of BN exactly on a reachable parent dot: bias = -(fl(dot - m) / d).
        dots = -784.0 + 2.0 * torch.randint(0, 200, (64,), generator=g).float()
        d = torch.sqrt(bn.running_var + bn.eps)
        bn.bias.copy_(-((dots - bn.running_mean) / d))
    naive_mean = (bn.running_mean.double() + 784.0).float()  # the shift without repair
    x_child = dots + 784.0
    naive = (x_child - naive_mean) / d * bn.weight + bn.bias >= 0
    exact = bn(dots.unsqueeze(0).expand(1, 64)).squeeze(0) >= 0
    assert (naive != exact).any(), "the test must contain a tie the float32 shift gets wrong"
    child = remove_planes(parent, [7], 0)
    pixels = random_pixels(100, seed=0)
    _agree(parent, child, [6], 0, pixels)
    # At the tie points themselves: drive the child's first layer with dots x_child directly.
    cbn = child.blocks[0][2]
    assert torch.equal(cbn(x_child.unsqueeze(0)).squeeze(0) >= 0, exact)
