from __future__ import annotations

import numpy as np
import pytest
import torch

from bnn2fpga.nn.layers import BinaryConv2d, BitPlaneEncoder, binarize
from bnn2fpga.nn.models import ArchitectureError, binops, hidden_widths, make_architecture, weight_bits


def test_binarize_maps_zero_to_plus_one_and_passes_gradient_inside_unit_interval() -> None:
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0], requires_grad=True)
    y = binarize(x)
    assert y.tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0]
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_bit_plane_encoder_is_plain_binary_colour_major() -> None:
    x = torch.tensor([[[[0b10100101]], [[0b00000001]]]], dtype=torch.uint8)  # (1, C=2, 1, 1)
    out = BitPlaneEncoder([0, 2, 7])(x)
    assert out.shape == (1, 6, 1, 1)
    # channel 0: bits 0,2,7 of 0b10100101 = 1,1,1; channel 1: bits of 1 = 1,0,0
    assert out.flatten().tolist() == [1.0, 1.0, 1.0, 1.0, -1.0, -1.0]


def test_bit_plane_encoder_rejects_unsorted_planes() -> None:
    with pytest.raises(ValueError, match=r"planes must be distinct ascending bit positions in 0..7, not \[7, 6\]"):
        BitPlaneEncoder([7, 6])


@pytest.mark.parametrize("pad_bit,value", [(1, 1.0), (0, -1.0)])
def test_conv_pads_with_fixed_bit(pad_bit: int, value: float) -> None:
    conv = BinaryConv2d(1, 1, 3, padding=1, pad_bit=pad_bit)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    x = torch.full((1, 1, 1, 1), -1.0)  # a single -1 pixel: the 8 neighbours are padding
    assert conv(x).item() == 8 * value - 1


def test_zoo_shapes_and_width_override() -> None:
    arch = make_architecture("sfc", widths=[179, 7, 1])
    assert hidden_widths(arch) == [179, 7, 1]
    assert binops(arch) == 6272 * 179 + 179 * 7 + 7 * 1 + 1 * 10
    assert weight_bits(arch) == binops(arch)
    assert hidden_widths(make_architecture("lfc")) == [1024] * 3
    assert hidden_widths(make_architecture("tfc", planes=[7])) == [64] * 3
    cnv28 = make_architecture("cnv")
    cnv32 = make_architecture("cnv", channels=3, height=32, width=32)
    assert hidden_widths(cnv28) == hidden_widths(cnv32) == [64, 64, 128, 128, 256, 256, 512, 512]


def test_zoo_rejects_wrong_width_count() -> None:
    with pytest.raises(ArchitectureError, match="model sfc has 3 hidden layers, got 2 widths"):
        make_architecture("sfc", widths=[10, 10])


def test_cnv_without_padding_cannot_take_28x28() -> None:
    arch = make_architecture("cnv")
    for layer in arch["layers"]:
        layer.pop("padding", None)
    from bnn2fpga.nn.models import validate_architecture
    with pytest.raises(ArchitectureError, match="shrinks to"):
        validate_architecture(arch)


def test_models_forward_on_uint8() -> None:
    from bnn2fpga.nn.models import BNN
    for name, kw in [("tfc", {}), ("cnv", {"width_multiplier": 0.125}), ("nin", {"width_multiplier": 0.125}),
                     ("cnv", {"channels": 3, "height": 32, "width": 32, "width_multiplier": 0.125})]:
        arch = make_architecture(name, **kw)
        i = arch["input"]
        x = torch.from_numpy(np.zeros((2, i["channels"], i["height"], i["width"]), np.uint8))
        assert BNN(arch).eval()(x).shape == (2, 10)
