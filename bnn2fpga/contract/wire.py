"""The UART bridge's wire format, one definition for both ends (the board's bridge, ``hw/uart.py``,
takes its constants, CRC and payload size from here; the host side, ``bnn2fpga.host``, its bytes):

- **request** (host to board): ``0xA5``, payload length (2 bytes, little-endian), the payload
  (one frame's pixels, HWC order, as :func:`pack_payload` lays them out: only the kept bit
  planes, 1, 2 or 4 bits a pixel when at most four are kept, else one byte a pixel), CRC-8 of
  the length and payload bytes;
- **reply**: ``0x5A``, K (classes), K popcounts (2 bytes each, little-endian), CRC-8 of K and
  the popcount bytes;
- **error reply**: ``0x5A``, ``0xFF``, a code, CRC-8 of ``0xFF`` and the code. Codes: 1 the length
  is not one frame, 2 the request's CRC was wrong, 3 the request stopped half-way.

CRC-8: polynomial 0x07, initial value 0, no reflection (the bridge computes it in logic, one
shift-xor step a bit; a test holds that logic to :func:`crc8`).

Every malformed reply raises its own :class:`ProtocolError` subclass; an error reply is not
malformed and comes back as an :class:`ErrorReply`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .planes import ALL_PLANES, Planes

__all__ = [
    "REQUEST", "REPLY", "ERROR", "BAD_LENGTH", "BAD_CRC", "TIMEOUT", "ERROR_NAMES", "MAX_PAYLOAD", "MAX_CLASSES",
    "crc8", "request_bytes", "link_frames_per_second", "bits_per_pixel", "payload_bytes", "pack_payload", "wire_planes",
    "encode_request", "decode_request", "encode_reply", "encode_error", "reply_size", "parse_reply",
    "Reply", "ErrorReply", "ProtocolError", "ReplyGarbled", "ReplyCRCError", "ReplyClassMismatch",
    "ReplyTruncated",
]

REQUEST, REPLY, ERROR = 0xA5, 0x5A, 0xFF
BAD_LENGTH, BAD_CRC, TIMEOUT = 1, 2, 3
ERROR_NAMES = {BAD_LENGTH: "bad length", BAD_CRC: "bad CRC", TIMEOUT: "request timed out"}
MAX_PAYLOAD = 0xFFFF
MAX_CLASSES = 0xFE  # 0xFF in the class byte marks an error reply

HEAD_BYTES = 2  # 0x5A and the class count / error marker: enough to know a reply's size
ERROR_REPLY_BYTES = 4


def _table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _table()


def crc8(data: bytes | bytearray | Iterable[int], crc: int = 0) -> int:
    """CRC-8 (polynomial 0x07, initial 0, no reflection), byte-table driven."""
    table = _CRC_TABLE
    for byte in data:
        crc = table[crc ^ byte]
    return crc


class ProtocolError(Exception):
    """A reply that is not one the protocol allows (the line is garbled, out of step, or the wrong device)."""

    def __init__(self, message: str, data: bytes = b"") -> None:
        super().__init__(message)
        self.data = bytes(data)


class ReplyGarbled(ProtocolError):
    """The first byte is not the reply marker 0x5A, or an error reply carries an unknown code."""


class ReplyCRCError(ProtocolError):
    """The reply's CRC does not match its bytes."""


class ReplyClassMismatch(ProtocolError):
    """The reply carries another number of classes than the build has."""


class ReplyTruncated(ProtocolError):
    """Fewer bytes than a whole reply (the caller's deadline passed half-way)."""


@dataclass(frozen=True)
class Reply:
    popcounts: tuple[int, ...]


@dataclass(frozen=True)
class ErrorReply:
    code: int

    @property
    def name(self) -> str:
        return ERROR_NAMES.get(self.code, f"code {self.code}")


REQUEST_FRAMING_BYTES = 4  # 0xA5, the 2-byte length and the CRC around the payload


def request_bytes(frame_bytes: int) -> int:
    """Bytes on the wire for one request of ``frame_bytes`` payload bytes."""
    return frame_bytes + REQUEST_FRAMING_BYTES


def link_frames_per_second(baud: float, frame_bytes: int) -> float:
    """The most requests a second the serial line carries host to board (8N1: ten bits a byte)."""
    return baud / 10 / request_bytes(frame_bytes)


def bits_per_pixel(planes: int) -> int:
    """Bits one pixel with ``planes`` kept bit planes takes in a payload: 1, 2 or 4, or 8 (the whole
    byte) for more than four planes (a power of two, so that no pixel straddles two bytes)."""
    if not 1 <= planes <= 8:
        raise ValueError(f"a pixel keeps 1..8 bit planes, not {planes}")
    return next(b for b in (1, 2, 4, 8) if b >= planes)


def wire_planes(planes: Iterable[int], table: bool) -> Planes:
    """The bit planes of each pixel a request carries: the planes the network reads, or all eight when
    it reads them through an input table (the table maps whole pixels; the planes are its codes')."""
    return ALL_PLANES if table else Planes(planes)


def payload_bytes(pixels: int, planes: int) -> int:
    """Bytes of a request's payload: ``pixels`` pixels of ``planes`` kept planes each."""
    return -(-pixels * bits_per_pixel(planes) // 8)


def pack_payload(frames: np.ndarray, planes: Sequence[int]) -> np.ndarray:
    """Request payloads for ``frames`` (uint8, one row of pixels per frame): each pixel's kept
    ``planes`` (lowest plane in the field's bit 0) as a field of :func:`bits_per_pixel` bits, fields
    packed from each byte's least significant bit, the last byte padded with 0. With more than four
    planes the pixels go as they are."""
    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 2:
        raise ValueError(f"frames must be one row of pixels per frame, not shape {frames.shape}")
    bits = bits_per_pixel(len(planes))
    if bits == 8:
        return frames.copy()
    fields = np.zeros(frames.shape, dtype=np.uint8)
    for k, plane in enumerate(planes):
        fields |= ((frames >> plane) & 1) << k
    per_byte = 8 // bits
    n, pixels = frames.shape
    padded = np.zeros((n, payload_bytes(pixels, len(planes)) * per_byte), dtype=np.uint8)
    padded[:, :pixels] = fields
    lanes = padded.reshape(n, -1, per_byte).astype(np.uint16) << (np.arange(per_byte, dtype=np.uint16) * bits)
    return lanes.sum(axis=2).astype(np.uint8)


def encode_request(payload: bytes | bytearray, *, length: int | None = None, corrupt_crc: bool = False) -> bytes:
    """One request for ``payload``. ``length`` and ``corrupt_crc`` make broken ones (for tests)."""
    n = len(payload) if length is None else length
    if not 0 <= n <= MAX_PAYLOAD or len(payload) > MAX_PAYLOAD:
        raise ValueError(f"a request carries at most {MAX_PAYLOAD} bytes, not {max(n, len(payload))}")
    body = bytes((n & 0xFF, n >> 8)) + bytes(payload)
    return bytes((REQUEST,)) + body + bytes((crc8(body) ^ (0x55 if corrupt_crc else 0),))


def decode_request(data: bytes | bytearray) -> bytes:
    """The payload of one whole request (what the board checks); :class:`ProtocolError` if it is not one."""
    data = bytes(data)
    if len(data) < 4 or data[0] != REQUEST:
        raise ReplyGarbled("not a request: it must start with 0xA5 and hold at least 4 bytes", data)
    n = data[1] | data[2] << 8
    if len(data) != request_bytes(n):
        raise ReplyTruncated(f"request of length {n} must be {request_bytes(n)} bytes, not {len(data)}", data)
    if crc8(data[1:-1]) != data[-1]:
        raise ReplyCRCError("request CRC mismatch", data)
    return data[3:-1]


def encode_reply(popcounts: Sequence[int]) -> bytes:
    """What the board sends for a frame's class popcounts (each 0..65535)."""
    if not 1 <= len(popcounts) <= MAX_CLASSES:
        raise ValueError(f"a reply carries 1..{MAX_CLASSES} classes, not {len(popcounts)}")
    if any(not 0 <= int(v) <= 0xFFFF for v in popcounts):
        raise ValueError("popcounts travel as 16-bit words: each must be in 0..65535")
    body = bytes((len(popcounts),)) + b"".join(int(v).to_bytes(2, "little") for v in popcounts)
    return bytes((REPLY,)) + body + bytes((crc8(body),))


def encode_error(code: int) -> bytes:
    """What the board sends for a broken request."""
    if not 0 <= code <= 0xFF:
        raise ValueError(f"an error code is one byte, not {code}")
    return bytes((REPLY, ERROR, code, crc8((ERROR, code))))


def reply_size(head: bytes | bytearray) -> int:
    """Total bytes of the reply whose first two bytes are ``head``."""
    if len(head) < HEAD_BYTES:
        raise ValueError("the size of a reply is known from its first 2 bytes")
    if head[0] != REPLY:
        raise ReplyGarbled(f"a reply starts with 0x{REPLY:02X}, not 0x{head[0]:02X}", bytes(head))
    return ERROR_REPLY_BYTES if head[1] == ERROR else 3 + 2 * head[1]


def parse_reply(data: bytes | bytearray, classes: int) -> Reply | ErrorReply:
    """One whole reply (exactly :func:`reply_size` bytes) from a build with ``classes`` classes."""
    data = bytes(data)
    if len(data) < HEAD_BYTES:
        raise ReplyTruncated(f"{len(data)} bytes of a reply (at least {HEAD_BYTES + 2} expected)", data)
    size = reply_size(data)
    if len(data) < size:
        raise ReplyTruncated(f"{len(data)} of the reply's {size} bytes", data)
    if len(data) > size:
        raise ValueError(f"parse_reply takes one reply of {size} bytes, not {len(data)}")
    if crc8(data[1:-1]) != data[-1]:
        raise ReplyCRCError(f"reply CRC is 0x{data[-1]:02X}, its bytes give 0x{crc8(data[1:-1]):02X}", data)
    if data[1] == ERROR:
        if data[2] not in ERROR_NAMES:
            raise ReplyGarbled(f"error reply with unknown code {data[2]}", data)
        return ErrorReply(data[2])
    if data[1] != classes:
        raise ReplyClassMismatch(f"the reply carries {data[1]} classes, the build has {classes}", data)
    words = data[2:-1]
    return Reply(tuple(words[i] | words[i + 1] << 8 for i in range(0, len(words), 2)))
