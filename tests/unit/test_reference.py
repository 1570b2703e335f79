"""reference.py against PyTorch: integer class scores and predictions identical."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bnn2fpga import checkpoint, data, reference
from bnn2fpga.evaluate import compare_with_reference
from bnn2fpga.ir.pipeline import lower
from tests.conftest import EXAMPLES, q17_codes, random_checkpoint, random_pixels


def assert_parity(ck: checkpoint.Checkpoint, pixels: np.ndarray) -> None:
    graph = lower(ck)
    model = ck.model()
    ref = reference.run(graph, pixels)
    with torch.no_grad():
        x = torch.from_numpy(pixels)
        dots = model.output_dots(x).numpy()
        predictions = model(x).argmax(1).numpy()
    popcounts = (dots + graph.output.mw) / 2
    assert (popcounts == ref.popcounts).all()
    assert (predictions == ref.predictions).all()


@pytest.mark.parametrize("name,kwargs", [
    ("sfc", {"widths": [1, 7, 179]}),
    ("sfc", {"widths": [179, 1, 7], "planes": [0, 3, 7]}),
    ("tfc", {"widths": [65, 63, 64], "planes": [7]}),
    ("cnv", {"widths": [7, 1, 9, 65, 3, 5, 179, 2]}),
    ("cnv", {"channels": 3, "height": 32, "width": 32, "width_multiplier": 0.1, "planes": [5, 6, 7]}),
    ("nin", {"width_multiplier": 0.1}),
])
def test_random_models_with_awkward_shapes(name: str, kwargs: dict) -> None:
    ck = random_checkpoint(name, seed=hash(name) % 1000, **kwargs)
    i = ck.architecture["input"]
    assert_parity(ck, random_pixels(200, i["channels"], i["height"], i["width"], seed=1))


@pytest.mark.parametrize("name,kwargs", [
    # FINN CNV-like: 32x32 RGB, valid convs, all 8 planes as integers
    ("cnv", {"channels": 3, "height": 32, "width": 32, "width_multiplier": 0.1}),
    # padded first conv (pad bit 1 = the all-ones pixel of the kept planes), 3 planes kept
    ("cnv", {"widths": [7, 1, 9, 5, 3, 5, 17, 2], "planes": [2, 5, 7]}),
    ("nin", {"width_multiplier": 0.1, "planes": [7]}),
    ("tfc", {"widths": [65, 3, 64], "planes": [0, 6]}),
])
def test_integer_first_layer_equals_pytorch(name: str, kwargs: dict) -> None:
    ck = random_checkpoint(name, seed=7, encoding="integer", **kwargs)
    graph = lower(ck)
    first = graph.layers[0]
    assert graph.input.encoding == "integer" and first.input_planes == tuple(ck.architecture["input"]["planes"])
    assert first.pc_max == first.mw * sum(1 << p for p in first.input_planes)
    i = ck.architecture["input"]
    assert_parity(ck, random_pixels(200, i["channels"], i["height"], i["width"], seed=2))



def with_table(ck: checkpoint.Checkpoint, rows: list[list[int]]) -> checkpoint.Checkpoint:
    arch = ck.architecture
    arch["input"]["table"] = rows
    return checkpoint.Checkpoint(architecture=arch, state_dict=ck.state_dict, dataset=ck.dataset)


@pytest.mark.parametrize("name,kwargs,rows", [
    # Q1.7 codes into an integer first conv with padding (pads are codes too)
    ("cnv", {"widths": [7, 1, 9, 5, 3, 5, 17, 2], "encoding": "integer"}, [q17_codes()]),
    # three colour channels, three different tables, valid convs
    ("cnv", {"channels": 3, "height": 32, "width": 32, "width_multiplier": 0.1, "encoding": "integer"},
     [q17_codes(), [255 - p for p in range(256)], [(p * 37) % 256 for p in range(256)]]),
    # a 1-bit binarisation that does not switch at 128, read as plane 0 of the code
    ("tfc", {"widths": [65, 3, 64], "planes": [0]}, [[int(p >= 77) for p in range(256)]]),
])
def test_input_table_equals_pytorch(name: str, kwargs: dict, rows: list[list[int]]) -> None:
    ck = with_table(random_checkpoint(name, seed=11, **kwargs), rows)
    graph = lower(ck)
    assert graph.input.table == tuple(tuple(r) for r in rows)
    i = ck.architecture["input"]
    pixels = random_pixels(200, i["channels"], i["height"], i["width"], seed=3)
    assert_parity(ck, pixels)
    # the table is not a no-op: without it the first layer's bits differ
    plain = lower(random_checkpoint(name, seed=11, **kwargs))
    assert (reference.layer_outputs(plain, pixels)[1] != reference.layer_outputs(graph, pixels)[1]).any()


def test_integer_first_layer_pad_bit_zero_and_flipped_channels() -> None:
    ck = random_checkpoint("cnv", widths=[9, 6, 7, 8, 9, 10, 11, 12], encoding="integer", planes=[4, 6, 7])
    for layer in ck.architecture["layers"]:
        if layer["kind"] == "conv":
            layer["pad_bit"] = 0
    ck2 = checkpoint.Checkpoint.from_model(ck.model())
    with torch.no_grad():  # negative batch-norm scales: downward comparisons the hardware pass flips
        ck2.state_dict["blocks.0.1.weight"].neg_()
    from bnn2fpga.ir.pipeline import HARDWARE_STEPS
    hw = lower(ck2, HARDWARE_STEPS)
    assert (hw.layers[0].direction == 1).all()
    pixels = random_pixels(100, seed=5)
    assert_parity(ck2, pixels)
    assert (reference.run(hw, pixels).popcounts == reference.run(lower(ck2), pixels).popcounts).all()


def test_conv_pad_bit_zero() -> None:
    ck = random_checkpoint("cnv", widths=[5, 6, 7, 8, 9, 10, 11, 12])
    for layer in ck.architecture["layers"]:
        if layer["kind"] == "conv":
            layer["pad_bit"] = 0
    ck2 = checkpoint.Checkpoint.from_model(ck.model())
    assert_parity(ck2, random_pixels(100, seed=4))


def test_pack_layout_little_endian() -> None:
    bits = np.zeros((1, 70), np.uint8)
    bits[0, [0, 63, 64, 69]] = 1
    words = reference.pack(bits)
    assert words.shape == (1, 2)
    assert int(words[0, 0]) == (1 << 0) | (1 << 63) and int(words[0, 1]) == (1 << 0) | (1 << 5)


def test_popcount_by_brute_force() -> None:
    rng = np.random.default_rng(0)
    for n in (1, 63, 64, 65, 200, 2100):
        x = rng.integers(0, 2, (9, n), dtype=np.uint8)
        w = rng.integers(0, 2, (5, n), dtype=np.uint8)
        expected = (x[:, None, :] == w[None, :, :]).sum(-1)
        assert (reference.popcounts(x, w) == expected).all()


@pytest.mark.slow
def test_shipped_sfc_on_the_whole_fashion_mnist_test_set() -> None:
    ck = checkpoint.load(EXAMPLES / "sfc-fmnist.pt")
    report = compare_with_reference(ck, data.load("fashion-mnist").test, show_progress=False)
    assert report["images"] == 10000 and report["agree"], report


@pytest.mark.slow
def test_trained_cnv_on_the_whole_fashion_mnist_test_set() -> None:
    ck = checkpoint.load(EXAMPLES / "cnv-fmnist.pt")
    report = compare_with_reference(ck, data.load("fashion-mnist").test, show_progress=False)
    assert report["images"] == 10000 and report["agree"], report
