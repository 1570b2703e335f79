"""The integer-input first layer in hardware: lowered from real IR graphs, simulated, equal to reference.py.

reference.py is itself checked against PyTorch (tests/unit/test_reference.py), so these close the
chain PyTorch = reference = hardware for the plane-serial MVTU (weights shared by the planes,
each plane's popcount shifted by its bit position)."""

from __future__ import annotations

import numpy as np
import pytest
from hwsim import assert_frames_as_modelled, run_stream

from bnn2fpga import reference
from bnn2fpga.backend.folding import fold_for_budget
from bnn2fpga.backend.lowering import layer_shapes, pixel_stream, samples_per_frame, to_spec
from bnn2fpga.hw.accelerator import Accelerator
from bnn2fpga.hw.rom import weight_rom_is_block
from bnn2fpga.ir.pipeline import HARDWARE_STEPS, lower
from tests.conftest import random_checkpoint

CASES = {
    # padded 3x3 first conv over 3 kept planes (pad pixel = those planes at the pad bit 1)
    "nin_planes_2_5_7": ("nin", dict(widths=[5, 3, 4, 3, 5, 3], planes=[2, 5, 7], height=12, width=10), 400),
    # dense first layer reading the whole frame, two planes
    "tfc_planes_6_7": ("tfc", dict(widths=[9, 5, 7], planes=[6, 7], height=6, width=5), 40),
    # two colour channels, all 8 planes, non-dividing folds
    "nin_rgb_8_planes": ("nin", dict(widths=[5, 3, 4, 3, 5, 3], height=12, width=10, channels=2), 150),
    # weight ROMs deep enough for block RAM (2048 x 2): the address runs one issue ahead
    "tfc_block_rom": ("tfc", dict(widths=[64, 5, 7], planes=[6, 7], height=8, width=8), 4096),
}


def _case(key: str):
    name, kwargs, budget = CASES[key]
    graph = lower(random_checkpoint(name, seed=3, encoding="integer", **kwargs), HARDWARE_STEPS)
    pixel = graph.input.channels if pixel_stream(graph) else None
    folding = fold_for_budget(layer_shapes(graph), samples_per_frame(graph), budget, pixel)
    return graph, to_spec(graph, folding)


def _beats(spec, pixels: np.ndarray) -> list[int]:
    hwc = pixels.transpose(0, 2, 3, 1).reshape(len(pixels), -1)
    ppb = spec.pixels_per_beat
    return [int.from_bytes(bytes(f[b:b + ppb]), "little") for f in hwc for b in range(0, hwc.shape[1], ppb)]


@pytest.mark.parametrize("key", list(CASES))
def test_integer_first_layer_bit_exact_and_timed(key: str) -> None:
    graph, spec = _case(key)
    first = spec.mvtus[0]
    assert first.planes == graph.input.planes and first.cycles == first.ng * len(first.planes) * first.nf
    assert weight_rom_is_block(first) == (key == "tfc_block_rom")
    i, n = graph.input, 3
    pixels = np.random.default_rng(1).integers(0, 256, size=(n, i.channels, i.height, i.width), dtype=np.uint8)
    expected = reference.run(graph, pixels).popcounts.reshape(-1).tolist()
    run = run_stream(Accelerator(spec), _beats(spec, pixels), len(expected), max_cycles=2_000_000)
    assert [o & 0xFFFFFFFF for o in run.outputs] == expected
    assert_frames_as_modelled(spec, run.in_cycles, run.out_cycles, n)
    pressed = run_stream(Accelerator(spec), _beats(spec, pixels), len(expected), valid_prob=0.6, ready_prob=0.5,
                         seed=2, max_cycles=2_000_000)
    assert [o & 0xFFFFFFFF for o in pressed.outputs] == expected
