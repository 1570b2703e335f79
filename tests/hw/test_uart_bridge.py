"""The UART host bridge in simulation: a host model talks 8N1 on the rx/tx lines, a stand-in
accelerator answers each frame; good frames are answered, broken ones get the right error and
the next good frame still works (no lost, partial or duplicated frame)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from bnn2fpga.contract.wire import BAD_CRC, BAD_LENGTH, ERROR, REPLY, REQUEST, TIMEOUT, crc8, pack_payload
from bnn2fpga.hw.board import UartBoard
from bnn2fpga.hw.uart import BridgeSpec, FrameBridge

SPEC = BridgeSpec(pixels=12, classes=3, divisor=4, timeout_bytes=3)


def request(pixels: bytes, *, length: int | None = None, corrupt_crc: bool = False) -> bytes:
    n = len(pixels) if length is None else length
    body = bytes([n & 0xFF, n >> 8]) + pixels
    crc = crc8(body) ^ (0x55 if corrupt_crc else 0)
    return bytes([REQUEST]) + body + bytes([crc])


def expected_scores(pixels: bytes) -> list[int]:
    """The stand-in accelerator: class k scores the sum of every (k+1)-th pixel."""
    return [sum(pixels[:: k + 1]) for k in range(SPEC.classes)]


def reply(scores: list[int]) -> bytes:
    body = bytes([len(scores)]) + b"".join(int(v).to_bytes(2, "little") for v in scores)
    return bytes([REPLY]) + body + bytes([crc8(body)])


def error(code: int) -> bytes:
    return bytes([REPLY, ERROR, code, crc8([ERROR, code])])


def run(stream_in: list[bytes | int], board: UartBoard | None = None, spec: BridgeSpec = SPEC,
        fed: list[bytes] | None = None) -> tuple[bytes, int]:
    """Send the byte strings (an int: that many idle bit times) and collect every byte the board sends.

    Without ``board``, a bare bridge with the stand-in accelerator of :func:`expected_scores`,
    which appends each frame of pixels it was fed to ``fed``."""
    bridge = FrameBridge(spec) if board is None else board
    m = Module()
    m.submodules.bridge = bridge
    d = SPEC.divisor if board is None else board.bridge_spec.divisor
    received = bytearray()
    frames: list[bytes] = [] if fed is None else fed

    async def host_tx(ctx):  # noqa: ANN001
        ctx.set(bridge.rx, 1)
        await ctx.tick().repeat(5 * d)
        for item in stream_in:
            if isinstance(item, int):
                await ctx.tick().repeat(item * d)
                continue
            for byte in item:
                for level in [0, *((byte >> i) & 1 for i in range(8)), 1]:
                    ctx.set(bridge.rx, level)
                    await ctx.tick().repeat(d)

    async def host_rx(ctx):  # noqa: ANN001
        while True:
            while ctx.get(bridge.tx):  # wait for a start bit's falling edge
                await ctx.tick()
            await ctx.tick().repeat(d // 2)
            value = 0
            for i in range(8):
                await ctx.tick().repeat(d)
                value |= ctx.get(bridge.tx) << i
            await ctx.tick().repeat(d)
            assert ctx.get(bridge.tx) == 1, "stop bit"
            received.append(value)

    async def accelerator(ctx):  # noqa: ANN001
        while True:
            pixels = bytearray()
            ctx.set(bridge.pixels.ready, 1)
            while len(pixels) < spec.pixels:
                _, _, valid, payload = await ctx.tick().sample(bridge.pixels.valid, bridge.pixels.payload)
                if valid:
                    pixels.append(payload)
            ctx.set(bridge.pixels.ready, 0)
            frames.append(bytes(pixels))
            for k, score in enumerate(expected_scores(bytes(pixels))):
                ctx.set(bridge.scores.payload.data, score)
                ctx.set(bridge.scores.payload.last, k == spec.classes - 1)
                ctx.set(bridge.scores.valid, 1)
                while True:  # the beat moves on the edge where valid and ready were both high
                    _, _, ready = await ctx.tick().sample(bridge.scores.ready)
                    if ready:
                        break
                ctx.set(bridge.scores.valid, 0)

    total_bits = sum(len(x) * 10 if isinstance(x, bytes) else x for x in stream_in)
    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(host_tx)
    sim.add_testbench(host_rx, background=True)
    if board is None:
        sim.add_testbench(accelerator, background=True)

    async def drain(ctx):  # noqa: ANN001
        await ctx.tick().repeat((total_bits + 400) * d)

    sim.add_testbench(drain)
    sim.run()
    return bytes(received), len(frames)


def test_frames_are_answered_with_their_popcounts() -> None:
    rng = np.random.default_rng(0)
    frames = [bytes(rng.integers(0, 256, SPEC.pixels, dtype=np.uint8)) for _ in range(2)]
    frames.append(bytes([REQUEST] * SPEC.pixels))  # the sync byte inside a payload is just data
    reply_time = 10 * (4 + 2 * SPEC.classes) + 40  # stop-and-wait: the host waits for each reply
    got, fed = run([x for f in frames for x in (request(f), reply_time)])
    assert got == b"".join(reply(expected_scores(f)) for f in frames) and fed == 3


@pytest.mark.parametrize(("broken", "code"), [
    (request(bytes(range(12)), corrupt_crc=True), BAD_CRC),
    (request(bytes(range(20)), length=20), BAD_LENGTH),
    (request(bytes(range(12)))[:8], TIMEOUT),  # the line goes quiet half-way
])
def test_a_broken_request_gets_its_error_and_the_next_frame_still_works(broken: bytes, code: int) -> None:
    good = bytes(range(100, 112))
    quiet = 10 * (SPEC.timeout_bytes + 2) + 60  # the line goes quiet, the error reply comes back
    got, fed = run([broken, quiet, request(good)])
    assert got == error(code) + reply(expected_scores(good))
    assert fed == 1  # the broken request never reached the accelerator


@pytest.mark.parametrize("planes", [(7,), (2, 5), (0, 3, 6), (1, 2, 3, 4, 5)])
def test_packed_planes_reach_the_accelerator_as_pixels(planes: tuple[int, ...]) -> None:
    """A request carries only the kept planes (1, 2 or 4 bits a pixel); the bridge hands on whole
    pixels with those planes in place and the others 0. More than four planes: the whole byte."""
    spec = BridgeSpec(pixels=13, classes=3, divisor=4, timeout_bytes=3, planes=planes)
    rng = np.random.default_rng(len(planes))
    frames = [rng.integers(0, 256, spec.pixels, dtype=np.uint8) for _ in range(2)]
    payloads = pack_payload(np.stack(frames), planes)
    assert payloads.shape == (2, spec.frame_bytes) == (2, -(-13 * min(8, spec.bits_per_pixel) // 8))
    mask = sum(1 << p for p in planes) if spec.bits_per_pixel < 8 else 0xFF
    fed: list[bytes] = []
    reply_time = 10 * (4 + 2 * spec.classes) + 60
    got, n = run([x for p in payloads for x in (request(p.tobytes()), reply_time)], spec=spec, fed=fed)
    assert n == 2 and fed == [bytes(f & mask) for f in frames]
    assert got == b"".join(reply(expected_scores(bytes(f & mask))) for f in frames)


def test_bridge_spec_is_checked() -> None:
    with pytest.raises(ValueError, match="divisor"):
        BridgeSpec(pixels=4, classes=2, divisor=2)
    with pytest.raises(ValueError, match="pixels"):
        BridgeSpec(pixels=0, classes=2, divisor=8)
    with pytest.raises(ValueError, match="planes"):
        BridgeSpec(pixels=4, classes=2, divisor=8, planes=(7, 3))


def test_board_top_answers_with_the_accelerators_popcounts() -> None:
    """Bridge and real accelerator together, as the board's top level holds them."""
    from hwsim import accelerator_model, random_spec

    spec = random_spec(7, name="uartnet", channels=1, pixels=16, planes=(5, 7), ppb=1, widths=[9, 3],
                       folds=[(3, 8), (1, 9)])
    board = UartBoard(spec, divisor=4, timeout_bytes=3)
    assert board.bridge_spec.frame_bytes == 4  # 16 pixels of 2 planes
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, 16, dtype=np.uint8) for _ in range(2)]
    payloads = [pack_payload(f[None], spec.planes)[0].tobytes() for f in frames]
    gap = 10 * (4 + 2 * spec.classes) + 200
    got, _ = run([request(payloads[0]), gap, request(payloads[0])[:5], 10 * 5 + 80, request(payloads[1]), gap],
                 board)
    expect = [accelerator_model(spec, f) for f in frames]
    assert got == reply(expect[0]) + error(TIMEOUT) + reply(expect[1])


def test_board_gathers_multi_channel_pixels() -> None:
    """An RGB conv network behind the bridge: three one-byte beats make one pixel beat."""
    from hwsim import chain_model, random_chain_spec

    spec = random_chain_spec(3, name="rgbnet", height=4, width=4, channels=3, planes=(6, 7),
                             stages=[("conv", 4, 3, 1, 0, 2, 9), ("pool", 2), ("dense", 5, 1, 4),
                                     ("output", 3, 1, 5)])
    assert spec.pixels_per_beat == 3
    board = UartBoard(spec, divisor=4, timeout_bytes=3)
    assert board.bridge_spec.pixels == 48 and board.bridge_spec.frame_bytes == 12  # 48 samples of 2 planes
    rng = np.random.default_rng(2)
    frames = [rng.integers(0, 256, 48, dtype=np.uint8) for _ in range(2)]
    payloads = [pack_payload(f[None], spec.planes)[0].tobytes() for f in frames]
    gap = 10 * (4 + 2 * spec.classes) + 400
    got, _ = run([request(payloads[0]), gap, request(payloads[1]), gap], board)
    expect = [chain_model(spec, f, 4, 4) for f in frames]
    assert got == reply(expect[0]) + reply(expect[1])
