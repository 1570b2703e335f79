"""Property: random small conv/pool/dense graphs and foldings, lowered and simulated, equal reference.py.

Each example draws an integer IR graph (odd map sizes, padding 0/1, pad bit 0/1, 1..40 channels,
optional pools, non-dividing folds, a bit-plane or an integer-input first layer), lowers it with
the compiler's own lowering, simulates the Amaranth accelerator on random pixels and compares
every class popcount with ``reference.run`` and every frame's first input and output handshake
with the cycle model. Folds are drawn as row groups and column folds (1..3 each) so every
example simulates in seconds.
"""

from __future__ import annotations

import numpy as np
from hwsim import assert_frames_as_modelled, run_stream
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bnn2fpga import reference
from bnn2fpga.backend.lowering import to_spec
from bnn2fpga.hw.accelerator import Accelerator
from tests.strategies import branch_graphs, graphs


def _lowered_equals_reference(graph, folding, pressure: tuple[float, float], pixel_seed: int) -> None:  # noqa: ANN001
    """Lower ``graph``, simulate three frames of random pixels, compare every class popcount with
    reference.py and, without back-pressure, every frame's first handshakes with the cycle model."""
    spec = to_spec(graph, folding, popcount_levels_per_stage=2)
    i = graph.input
    frames = 3
    pixels = np.random.default_rng(pixel_seed).integers(0, 256, size=(frames, i.channels, i.height, i.width),
                                                        dtype=np.uint8)
    expected = reference.run(graph, pixels).popcounts
    hwc = pixels.transpose(0, 2, 3, 1).reshape(frames, -1)
    beats = [int.from_bytes(bytes(f[b:b + i.channels]), "little") for f in hwc
             for b in range(0, hwc.shape[1], i.channels)]
    valid, ready = pressure
    run = run_stream(Accelerator(spec), beats, expected.size, valid_prob=valid, ready_prob=ready, seed=3,
                     max_cycles=2_000_000)
    assert [o & 0xFFFFFFFF for o in run.outputs] == expected.reshape(-1).tolist()
    if pressure == (1.0, 1.0):
        assert_frames_as_modelled(spec, run.in_cycles, run.out_cycles, frames)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(), st.sampled_from([(1.0, 1.0), (0.6, 0.5)]))
def test_random_conv_graph_lowered_equals_reference(drawn, pressure):
    _lowered_equals_reference(*drawn, pressure, pixel_seed=7)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(branch_graphs(), st.sampled_from([(1.0, 1.0), (0.6, 0.5)]))
def test_random_branch_graph_lowered_equals_reference(drawn, pressure):
    """Branches (2-3 paths of convs or skips, maybe one nested) forked, FIFO'd and joined: every class
    popcount equal to reference.py under back-pressure, and without it every frame's handshakes as the
    cycle model says (the FIFO sizing leaves no deadlock)."""
    _lowered_equals_reference(*drawn, pressure, pixel_seed=5)
