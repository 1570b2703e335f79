"""The host's protocol bytes: the board's constants and CRC, round trips, one exception per malformed reply."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bnn2fpga.contract import wire as p


def test_constants_and_crc_are_the_boards() -> None:
    from bnn2fpga.hw import uart

    assert (p.REQUEST, p.REPLY, p.ERROR) == (uart.REQUEST, uart.REPLY, uart.ERROR)
    assert (p.BAD_LENGTH, p.BAD_CRC, p.TIMEOUT) == (uart.BAD_LENGTH, uart.BAD_CRC, uart.TIMEOUT)
    assert p.crc8(b"123456789") == uart.crc8(b"123456789") == 0xF4  # CRC-8/SMBUS check value
    assert [p.bits_per_pixel(k) for k in range(1, 9)] == [uart.bits_per_pixel(k) for k in range(1, 9)] \
        == [1, 2, 4, 4, 8, 8, 8, 8]
    assert all(p.payload_bytes(n, k) == uart.payload_bytes(n, k) for n in range(1, 40) for k in range(1, 9))


@given(st.lists(st.integers(0, 7), min_size=1, max_size=8, unique=True), st.integers(1, 40), st.integers(0, 2**32))
def test_packed_payload_holds_each_kept_plane_once(planes: list[int], pixels: int, seed: int) -> None:
    """Unpacking by the layout's definition gives back every pixel's kept planes, in 1, 2, 4 or 8 bits."""
    import numpy as np

    planes = sorted(planes)
    frames = np.random.default_rng(seed).integers(0, 256, (2, pixels), dtype=np.uint8)
    payload = p.pack_payload(frames, planes)
    bits = p.bits_per_pixel(len(planes))
    assert payload.shape == (2, -(-pixels * bits // 8)) and payload.dtype == np.uint8
    if bits == 8:
        assert np.array_equal(payload, frames)
        return
    stream = np.unpackbits(payload, axis=1, bitorder="little")  # bit i of byte j at j*8 + i
    for i in range(pixels):
        for k, plane in enumerate(planes):
            assert np.array_equal(stream[:, i * bits + k], (frames[:, i] >> plane) & 1)
        assert not stream[:, i * bits + len(planes):(i + 1) * bits].any()  # unused field bits are 0
    assert not stream[:, pixels * bits:].any()  # so is the last byte's padding


@given(st.binary(max_size=300))
def test_crc_matches_the_bit_serial_definition(data: bytes) -> None:
    crc = 0
    for byte in data:  # x^8 + x^2 + x + 1, initial 0, no reflection: one shift-xor per bit
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    assert p.crc8(data) == crc
    assert p.crc8(data + bytes([p.crc8(data)])) == 0  # a message followed by its CRC checks to zero


@given(st.binary(min_size=0, max_size=2000))
def test_request_round_trip(payload: bytes) -> None:
    request = p.encode_request(payload)
    assert request[0] == p.REQUEST and len(request) == len(payload) + 4
    assert int.from_bytes(request[1:3], "little") == len(payload)
    assert p.decode_request(request) == payload


@given(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=p.MAX_CLASSES))
def test_reply_round_trip(popcounts: list[int]) -> None:
    reply = p.encode_reply(popcounts)
    assert p.reply_size(reply[:2]) == len(reply) == 3 + 2 * len(popcounts)
    assert p.parse_reply(reply, len(popcounts)) == p.Reply(tuple(popcounts))


@pytest.mark.parametrize("code", [p.BAD_LENGTH, p.BAD_CRC, p.TIMEOUT])
def test_error_reply_round_trip(code: int) -> None:
    reply = p.encode_error(code)
    assert reply == bytes([0x5A, 0xFF, code, p.crc8([0xFF, code])])
    parsed = p.parse_reply(reply, 10)
    assert parsed == p.ErrorReply(code) and isinstance(parsed, p.ErrorReply) and parsed.name == p.ERROR_NAMES[code]


@given(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=20), st.data())
def test_any_single_bit_flip_after_the_header_is_a_crc_error(popcounts: list[int], data: st.DataObject) -> None:
    reply = bytearray(p.encode_reply(popcounts))
    i = data.draw(st.integers(2, len(reply) - 1))
    reply[i] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(p.ReplyCRCError):
        p.parse_reply(reply, len(popcounts))


def test_each_malformed_reply_has_its_exception() -> None:
    good = p.encode_reply([1, 2, 3])
    with pytest.raises(p.ReplyGarbled, match="0x5A"):
        p.parse_reply(b"\x00" + good[1:], 3)
    with pytest.raises(p.ReplyClassMismatch, match="3 classes, the build has 4"):
        p.parse_reply(good, 4)
    with pytest.raises(p.ReplyTruncated):
        p.parse_reply(good[:-1], 3)
    with pytest.raises(p.ReplyTruncated):
        p.parse_reply(good[:1], 3)
    with pytest.raises(p.ReplyGarbled, match="unknown code"):
        p.parse_reply(bytes([0x5A, 0xFF, 9, p.crc8([0xFF, 9])]), 3)
    with pytest.raises(p.ReplyCRCError):
        p.parse_reply(p.encode_error(2)[:-1] + b"\x00", 3)
    assert all(issubclass(e, p.ProtocolError) for e in (p.ReplyGarbled, p.ReplyCRCError, p.ReplyClassMismatch,
                                                         p.ReplyTruncated))


def test_broken_requests_are_what_the_board_refuses() -> None:
    payload = bytes(range(12))
    with pytest.raises(p.ReplyCRCError):
        p.decode_request(p.encode_request(payload, corrupt_crc=True))
    with pytest.raises(p.ReplyTruncated):
        p.decode_request(p.encode_request(payload, length=20))
    with pytest.raises(ValueError, match="at most"):
        p.encode_request(bytes(70000))
    with pytest.raises(ValueError, match="16-bit"):
        p.encode_reply([70000])


def test_a_request_carries_the_planes_read_or_all_eight_behind_an_input_table() -> None:
    assert p.wire_planes((5, 7), table=False) == (5, 7)
    assert p.wire_planes((5, 7), table=True) == tuple(range(8))
    assert p.payload_bytes(784, len(p.wire_planes((7,), table=False))) == 98
    assert p.payload_bytes(784, len(p.wire_planes((7,), table=True))) == 784
