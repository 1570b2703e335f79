# amaranth: UnusedElaboratable=no
# (constructor-check tests create components that are never elaborated on purpose)
"""Slicer, deserializer, output serializer and skid buffer against small Python models, with back-pressure."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hwsim import run_stream, simulate

from bnn2fpga.hw.slicer import BitSlicer
from bnn2fpga.hw.stream import Deserializer, OutputSerializer, SkidBuffer, skid_model

PRESSURE = [(1.0, 1.0), (0.5, 0.5), (0.9, 0.2), (0.2, 0.9)]


@pytest.mark.parametrize(("valid", "ready"), PRESSURE)
@pytest.mark.parametrize(("planes", "ppb"), [((7,), 1), ((5, 6, 7), 4), ((0, 3, 4, 7), 3)])
def test_slicer(planes, ppb, valid, ready):
    rng = random.Random(1)
    beats = [rng.getrandbits(8 * ppb) for _ in range(30)]
    run = run_stream(BitSlicer(planes, ppb), beats, len(beats), valid_prob=valid, ready_prob=ready, seed=2)
    expected = []
    for beat in beats:
        bits = [(beat >> (8 * j + p)) & 1 for j in range(ppb) for p in planes]
        expected.append(sum(b << i for i, b in enumerate(bits)))
    assert run.outputs == expected
    assert not run.trailing_valid


def test_slicer_rejects_bad_planes():
    with pytest.raises(ValueError, match=r"planes must be strictly ascending bit planes in 0\.\.7 \(at least one\), "
                                         r"not \[7, 5\]\Z"):
        BitSlicer((7, 5), 1)


@pytest.mark.parametrize(("valid", "ready"), PRESSURE)
@pytest.mark.parametrize(("width", "beats"), [(3, 1), (5, 4), (12, 9)])
def test_deserializer(width, beats, valid, ready):
    rng = random.Random(3)
    words = [rng.getrandbits(width) for _ in range(beats * 12)]
    run = run_stream(Deserializer(width, beats), words, 12, valid_prob=valid, ready_prob=ready, seed=4)
    expected = [sum(w << (i * width) for i, w in enumerate(words[k * beats:(k + 1) * beats]))
                for k in range(12)]
    assert run.outputs == expected
    assert not run.trailing_valid


def test_deserializer_takes_next_frame_in_handshake_cycle():
    # Always valid/ready: vector k is complete after beats*(k+1) cycles, no bubble.
    run = run_stream(Deserializer(4, 3), list(range(12)), 4)
    assert run.in_cycles == list(range(12))
    assert run.out_cycles == [3, 6, 9, 12]


@pytest.mark.parametrize(("valid", "ready"), PRESSURE)
@pytest.mark.parametrize(("count", "width"), [(1, 4), (10, 9), (3, 1)])
def test_output_serializer(count, width, valid, ready):
    rng = np.random.default_rng(5)
    vectors = [[int(v) for v in rng.integers(0, 2**width, size=count)] for _ in range(10)]
    payloads = [sum(v << (i * width) for i, v in enumerate(vec)) for vec in vectors]
    run = run_stream(OutputSerializer(count, width), payloads, 10 * count, valid_prob=valid,
                     ready_prob=ready, seed=6)
    assert [o & 0xFFFFFFFF for o in run.outputs] == [v for vec in vectors for v in vec]
    assert [o >> 32 for o in run.outputs] == [int(i == count - 1) for _ in vectors for i in range(count)]
    assert not run.trailing_valid


def test_output_serializer_has_no_bubbles():
    run = run_stream(OutputSerializer(4, 3), [0x123, 0x456, 0x789], 12)
    assert run.out_cycles == list(range(1, 13))
    assert run.in_cycles == [0, 4, 8]


@pytest.mark.parametrize(("valid", "ready"), PRESSURE)
def test_skid_buffer_passes_every_beat_in_order(valid, ready):
    rng = random.Random(7)
    beats = [rng.getrandbits(11) for _ in range(40)]
    run = run_stream(SkidBuffer(11), beats, len(beats), valid_prob=valid, ready_prob=ready, seed=8)
    assert run.outputs == beats
    assert not run.trailing_valid


def test_skid_buffer_one_beat_per_cycle_one_cycle_late():
    run = run_stream(SkidBuffer(4), list(range(10)), 10)
    assert run.in_cycles == list(range(10))
    assert run.out_cycles == list(range(1, 11))


def test_skid_buffer_matches_its_cycle_model_and_cuts_both_paths():
    """Cycle by cycle under random valid/ready: valid and ready equal the model's (a two-entry FIFO), and
    neither depends on the other end within a cycle (sink.ready read with source.ready both ways)."""
    dut = SkidBuffer(6)
    model = skid_model()
    rng = random.Random(9)

    async def bench(ctx) -> None:
        offered = False
        for _ in range(400):
            if not offered:
                offered = rng.random() < 0.6
                ctx.set(dut.sink.payload, rng.getrandbits(6))
            ctx.set(dut.sink.valid, offered)
            readies = set()
            for out_ready in (0, 1):
                ctx.set(dut.source.ready, out_ready)
                readies.add(ctx.get(dut.sink.ready))
            valids = set()
            for in_valid in (0, 1):
                ctx.set(dut.sink.valid, in_valid)
                valids.add(ctx.get(dut.source.valid))
            ctx.set(dut.sink.valid, offered)
            assert len(readies) == 1 and len(valids) == 1, "a combinational path crosses the skid buffer"
            out_ready = rng.random() < 0.5
            ctx.set(dut.source.ready, out_ready)
            in_ready, out_valid = ctx.get(dut.sink.ready), ctx.get(dut.source.valid)
            assert (bool(in_ready), bool(out_valid)) == (model.in_ready(out_ready), model.out_valid())
            in_fire, out_fire = offered and bool(in_ready), bool(out_valid) and out_ready
            model.clock(offered, in_fire, out_fire)
            await ctx.tick()
            if in_fire:
                offered = False

    simulate(dut, bench)


@pytest.mark.parametrize(("cls", "args", "message"), [
    (Deserializer, (0, 3), "Deserializer width must be a positive integer, not 0"),
    (Deserializer, (3, -1), "Deserializer beat count must be a positive integer, not -1"),
    (OutputSerializer, (3, 33), "OutputSerializer word width must be at most 32, not 33"),
    (SkidBuffer, (0,), "SkidBuffer width must be a positive integer, not 0"),
])
def test_constructor_checks(cls, args, message):
    with pytest.raises(ValueError, match=message + r"\Z"):
        cls(*args)
