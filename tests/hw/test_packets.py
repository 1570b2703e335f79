"""Packets across the accelerator: one input packet (tlast on its last beat) in, one output packet out."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator
from hwsim import accelerator_model, random_spec, run_stream

from bnn2fpga.hw.packets import PacketAccelerator, PacketFramer, framer_depth
from bnn2fpga.hw.timing import predict

SPEC = dict(channels=1, pixels=36, planes=(5, 6, 7), ppb=4, widths=[24, 17, 10], folds=[(4, 27), (5, 6), (3, 7)])


def _packets(spec, frames: list[np.ndarray], cut: dict[int, int], ends: set[int]) -> list[int]:
    """Input beats, ``last`` in bit ``tdata_bits``: frame n is cut after beat ``cut[n]`` (tlast there,
    its remaining beats never sent); frames in ``ends`` carry tlast on their last beat."""
    ppb, bits = spec.pixels_per_beat, spec.tdata_bits
    beats = []
    for n, frame in enumerate(frames):
        sent = cut.get(n, spec.input_beats - 1)
        for b in range(sent + 1):
            last = b == sent and (n in cut or n in ends)
            beats.append(int.from_bytes(bytes(frame[b * ppb:(b + 1) * ppb]), "little") | (int(last) << bits))
    return beats


@pytest.mark.parametrize(("valid", "ready"), [(1.0, 1.0), (0.7, 0.5), (0.9, 0.1)])
def test_one_packet_out_per_packet_in_and_a_short_packet_is_padded(valid: float, ready: float) -> None:
    spec = random_spec(3, name="pk", **SPEC)
    rng = np.random.default_rng(5)
    frames = [rng.integers(0, 256, size=spec.samples_per_frame, dtype=np.uint8) for _ in range(7)]
    cut = {2: 3}          # frame 2's packet ends after its 4th beat: the rest is zero pixels
    ends = {0, 4, 6}      # packets: [0], [1, 2 (cut)], [3, 4], [5, 6]
    beats = _packets(spec, frames, cut, ends)
    padded = [f.copy() for f in frames]
    padded[2][(cut[2] + 1) * spec.pixels_per_beat:] = 0
    expected = [v for f in padded for v in accelerator_model(spec, f)]
    run = run_stream(PacketAccelerator(spec), beats, len(expected), valid_prob=valid, ready_prob=ready, seed=9)
    assert [o & 0xFFFF_FFFF for o in run.outputs] == expected
    c = spec.classes
    packet_last = {0, 2, 4, 6}
    assert [o >> 32 for o in run.outputs] == [int(i % c == c - 1 and i // c in packet_last)
                                              for i in range(len(expected))]
    assert not run.trailing_valid


def test_framing_adds_no_cycle() -> None:
    spec = random_spec(3, name="pk", **SPEC)
    rng = np.random.default_rng(6)
    frames = [rng.integers(0, 256, size=spec.samples_per_frame, dtype=np.uint8) for _ in range(6)]
    run = run_stream(PacketAccelerator(spec), _packets(spec, frames, {}, {5}), 6 * spec.classes)
    nb, c = spec.input_beats, spec.classes
    first_in, first_out = run.in_cycles[::nb], run.out_cycles[::c]
    timing = predict(spec)
    assert first_out[0] - first_in[0] == timing.latency
    assert first_out[-1] - first_out[-2] == timing.initiation_interval
    assert framer_depth(spec) & (framer_depth(spec) - 1) == 0 and framer_depth(spec) >= 4


def test_a_full_flag_ring_holds_input_back_instead_of_losing_a_flag() -> None:
    # A bare framer of depth 2, its core side driven by the test: three one-beat frames are offered
    # while nothing is read; the third waits until a frame has left.
    framer = PacketFramer(8, 1, 2)
    top = Module()
    top.submodules.framer = framer
    sim = Simulator(top)
    sim.add_clock(1e-8)
    seen: list[int] = []

    async def bench(ctx) -> None:
        ctx.set(framer.core_sink.ready, 1)
        ctx.set(framer.source.ready, 0)
        for n in range(3):
            ctx.set(framer.sink.payload, {"data": n, "last": int(n != 1)})
            ctx.set(framer.sink.valid, 1)
            _, _, ready = await ctx.tick().sample(framer.sink.ready)
            seen.append(int(ready))
        ctx.set(framer.sink.valid, 0)
        # Frames 0 and 1 come out of the core (one class each); their flags are 1 and 0.
        lasts = []
        for _ in range(2):
            ctx.set(framer.core_source.payload, {"data": 7, "last": 1})
            ctx.set(framer.core_source.valid, 1)
            ctx.set(framer.source.ready, 1)
            _, _, last = await ctx.tick().sample(framer.source.payload.last)
            lasts.append(int(last))
        ctx.set(framer.core_source.valid, 0)
        assert lasts == [1, 0]
        assert ctx.get(framer.sink.ready) == 1  # room again

    sim.add_testbench(bench)
    sim.run()
    assert seen == [1, 1, 0]


@pytest.mark.parametrize("depth", [0, 3, True])
def test_framer_depth_must_be_a_power_of_two(depth: object) -> None:
    with pytest.raises((ValueError, TypeError), match="depth"):
        PacketFramer(8, 4, depth)  # type: ignore[arg-type]


@pytest.mark.parametrize("hold", [2, 5])
def test_a_reset_mid_stream_leaves_nothing_behind_with_the_reset_distributed(hold: int) -> None:
    # The generated core's form: a reset-less `sync` domain, the reset arriving on `rst` and reaching
    # each part through a register of its own (hw/reset.py). Frames are in flight in every engine
    # when the reset comes; after it only the new frames come out, at the predicted latency.
    spec = random_spec(3, name="pk", **SPEC)
    rng = np.random.default_rng(8)
    frames = [rng.integers(0, 256, size=spec.samples_per_frame, dtype=np.uint8) for _ in range(5)]
    before = _packets(spec, frames[:3], {}, {2})
    after = _packets(spec, frames[3:], {}, {1})
    expected = [v for f in frames[3:] for v in accelerator_model(spec, f)]
    dut = PacketAccelerator(spec, reset_tree=True)
    top = Module()
    top.domains.sync = ClockDomain(reset_less=True)
    top.submodules.dut = dut
    sim = Simulator(top)
    sim.add_clock(1e-8)
    out: list[tuple[int, int]] = []  # (cycle, payload) after the reset
    first_in: list[int] = []

    async def bench(ctx) -> None:
        ctx.set(dut.source.ready, 1)
        # Most of the first three frames go in (the third one cut short by the reset).
        for beat in before[:-spec.input_beats // 2]:
            ctx.set(dut.sink.payload.as_value(), beat)
            ctx.set(dut.sink.valid, 1)
            while not (await ctx.tick().sample(dut.sink.ready))[2]:
                pass
        ctx.set(dut.sink.valid, 0)
        ctx.set(dut.rst, 1)
        for _ in range(hold):
            await ctx.tick()
        ctx.set(dut.rst, 0)
        cycle = 0
        beats = list(after)
        while len(out) < len(expected) and cycle < 20_000:
            if beats:
                ctx.set(dut.sink.payload.as_value(), beats[0])
            ctx.set(dut.sink.valid, int(bool(beats)))
            _, _, ready, valid, payload = await ctx.tick().sample(
                dut.sink.ready, dut.source.valid, dut.source.payload.as_value())
            if beats and ready:
                if len(beats) == len(after):
                    first_in.append(cycle)
                beats.pop(0)
            if valid:
                out.append((cycle, payload))
            cycle += 1
        for _ in range(40):  # nothing more may come out
            assert not (await ctx.tick().sample(dut.source.valid))[2]

    sim.add_testbench(bench)
    sim.run()
    assert [p & 0xFFFF_FFFF for _, p in out] == expected
    assert [p >> 32 for _, p in out] == [int(i == len(expected) - 1) for i in range(len(expected))]
    assert out[0][0] - first_in[0] == predict(spec).latency
