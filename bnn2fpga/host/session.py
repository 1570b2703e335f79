"""Stop-and-wait frames over a serial port: send a request, read its reply by a deadline, resend on failure.

One :meth:`Session.infer` call returns one frame's popcounts or raises: a frame is never
answered twice and never skipped. A failed attempt (an error reply, no reply by the deadline,
a garbled reply) is followed by a drain -- the line is read until it has been quiet a while,
so a late reply cannot be taken for the resend's -- and the request is sent again, at most
``retries`` times. After a timeout the reply that is accepted may be the late one, the resend's
still to come, so the line is drained once more before the next frame. Bytes that arrive while
no reply is due are counted as ``stray_bytes`` and thrown away. This holds as long as ``quiet``
is longer than the board takes to answer a request it has whole (the caller's choice).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from ..contract.wire import (
    ERROR_NAMES,
    HEAD_BYTES,
    ErrorReply,
    ProtocolError,
    Reply,
    ReplyTruncated,
    encode_request,
    parse_reply,
    reply_size,
)
from ..errors import UserError

__all__ = ["Port", "Session", "SessionStats", "LinkError", "NoReply", "GarbledLink", "BoardRefused", "PortLost"]

POLL_S = 0.02  # longest a read blocks before the deadline is looked at again


class Port(Protocol):
    """What a session needs of a serial port; :class:`serial.Serial` is one."""

    timeout: float | None
    write_timeout: float | None

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def flush(self) -> None: ...

    def reset_input_buffer(self) -> None: ...

    @property
    def in_waiting(self) -> int: ...


class LinkError(UserError):
    """The board could not be talked to (after every retry); the message says what to check."""


class NoReply(LinkError):
    """Nothing (or only part of a reply) came back by the deadline."""


class GarbledLink(LinkError):
    """What came back is not the protocol: wrong baud rate, another device, or a wrong bitstream."""


class BoardRefused(LinkError):
    """The board kept answering error replies."""


class PortLost(LinkError):
    """The port itself failed (unplugged, closed by someone else)."""


@dataclass
class SessionStats:
    frames: int = 0           # answered, each once
    requests: int = 0         # sent, resends included
    timeouts: int = 0         # attempts with no whole reply by the deadline
    garbled: int = 0          # attempts whose reply broke the protocol (marker, CRC, class count)
    board_errors: Counter[int] = field(default_factory=Counter)  # error replies by code
    stray_bytes: int = 0      # bytes that arrived while no reply was due, thrown away
    bytes_sent: int = 0       # request bytes on the wire, resends included
    bytes_received: int = 0   # every byte read, drains and stray bytes included
    seconds: float = 0.0      # wall time inside infer()

    @property
    def retries(self) -> int:
        return self.requests - self.frames

    def as_dict(self) -> dict[str, object]:
        return {"frames": self.frames, "requests": self.requests, "retries": self.retries,
                "timeouts": self.timeouts, "garbled": self.garbled,
                "board_errors": {ERROR_NAMES.get(k, str(k)): v for k, v in sorted(self.board_errors.items())},
                "stray_bytes": self.stray_bytes, "bytes_sent": self.bytes_sent,
                "bytes_received": self.bytes_received, "seconds": self.seconds}


class Session:
    """Frames of ``frame_bytes`` pixels to a board with ``classes`` classes behind ``port``.

    ``reply_timeout``: seconds from the end of a request's write to the end of its reply.
    ``quiet``: seconds without a byte that end a drain (bounded by ``reply_timeout``).
    ``name``: how to call the port in messages. The session takes over ``port``'s timeouts."""

    def __init__(self, port: Port, *, frame_bytes: int, classes: int, reply_timeout: float, retries: int = 3,
                 quiet: float = 0.05, name: str = "the port") -> None:
        if frame_bytes < 1 or classes < 1 or reply_timeout <= 0 or retries < 0 or quiet <= 0:
            raise ValueError("frame_bytes and classes must be positive, reply_timeout and quiet > 0, retries >= 0")
        self.port = port
        self.frame_bytes, self.classes = frame_bytes, classes
        self.reply_timeout, self.retries, self.quiet, self.name = reply_timeout, retries, quiet, name
        self.stats = SessionStats()
        try:
            port.timeout = POLL_S
            port.write_timeout = reply_timeout
            port.reset_input_buffer()  # whatever an earlier session left behind
        except (OSError, ValueError) as e:
            raise PortLost(f"{name} cannot be configured: {e}") from None

    # ---------------------------------------------------------------- public

    def infer(self, payload: bytes | bytearray) -> tuple[int, ...]:
        """The class popcounts of one frame (exactly one reply accepted per call)."""
        if len(payload) != self.frame_bytes:
            raise ValueError(f"a frame is {self.frame_bytes} bytes, not {len(payload)}")
        request = encode_request(payload)
        t0 = time.perf_counter()
        failures: list[str] = []
        kind: type[LinkError] = NoReply
        timed_out = False
        try:
            for attempt in range(self.retries + 1):
                if attempt:
                    self.stats.stray_bytes += self._drain()
                self._discard_stray()
                self._write(request)
                try:
                    answer = self._read_reply(time.monotonic() + self.reply_timeout)
                except ReplyTruncated as e:
                    self.stats.timeouts += 1
                    timed_out = True
                    kind = NoReply
                    failures.append("no reply" if not e.data else f"{len(e.data)} bytes then nothing")
                    continue
                except ProtocolError as e:
                    self.stats.garbled += 1
                    kind = GarbledLink
                    failures.append(f"{e} ({_hex(e.data)})")
                    continue
                if isinstance(answer, ErrorReply):
                    self.stats.board_errors[answer.code] += 1
                    kind = BoardRefused
                    failures.append(f"error reply: {answer.name}")
                    continue
                if timed_out:
                    # The reply that missed its deadline may be this one, the resend's then still to come:
                    # wait for the line to go quiet so that it is not taken for the next frame's.
                    self.stats.stray_bytes += self._drain()
                self.stats.frames += 1
                return answer.popcounts
        finally:
            self.stats.seconds += time.perf_counter() - t0
        raise kind(self._give_up(kind, failures))

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (a test's broken request); counted in ``bytes_sent``."""
        self._write(data, count_request=False)

    def read_raw(self, deadline_s: float, size: int | None = None) -> bytes:
        """What arrives within ``deadline_s`` seconds: ``size`` bytes, or without ``size`` everything
        until the line has been quiet for ``quiet`` seconds."""
        end = time.monotonic() + deadline_s
        data = bytearray()
        last = time.monotonic()
        while time.monotonic() < end and (size is None or len(data) < size):
            chunk = self._read(1 << 12 if size is None else size - len(data))
            if chunk:
                data += chunk
                last = time.monotonic()
            elif data and size is None and time.monotonic() - last >= self.quiet:
                break
        return bytes(data)

    # ---------------------------------------------------------------- internals

    def _give_up(self, kind: type[LinkError], failures: list[str]) -> str:
        tries = f"{len(failures)} tries"
        seen = "; ".join(dict.fromkeys(failures))  # each different failure once, in order
        if kind is NoReply:
            return (f"no reply from {self.name} within {self.reply_timeout:g} s ({tries}: {seen}): is the board "
                    "programmed with this build's bitstream and on this port? (--timeout raises the wait)")
        if kind is GarbledLink:
            return (f"{self.name} answers bytes that are not the bridge protocol ({tries}: {seen}): check that "
                    "--baud is the build's and that the board runs this build's bitstream")
        return (f"the board at {self.name} refused the request {tries} in a row ({seen}): the bitstream was "
                "built for another network or frame size; program this build's bitstream")

    def _write(self, data: bytes, count_request: bool = True) -> None:
        import serial

        try:
            self.port.write(data)
            self.port.flush()
        except serial.SerialTimeoutException:
            raise NoReply(f"{self.name} does not take bytes ({len(data)} not written within "
                          f"{self.reply_timeout:g} s): is anything at the other end reading?") from None
        except (serial.SerialException, OSError) as e:
            raise PortLost(f"{self.name} failed while writing: {e}; is the board still plugged in?") from None
        self.stats.bytes_sent += len(data)
        if count_request:
            self.stats.requests += 1

    def _read(self, size: int) -> bytes:
        import serial

        try:
            data = self.port.read(size)
        except (serial.SerialException, OSError) as e:
            raise PortLost(f"{self.name} failed while reading: {e}; is the board still plugged in?") from None
        self.stats.bytes_received += len(data)
        return data

    def _read_exact(self, size: int, deadline: float, have: bytes = b"") -> bytes:
        data = bytearray(have)
        while len(data) < size:
            data += self._read(size - len(data))
            if len(data) < size and time.monotonic() >= deadline:
                raise ReplyTruncated(f"{len(data)} of {size} bytes by the deadline", bytes(data))
        return bytes(data)

    def _read_reply(self, deadline: float) -> Reply | ErrorReply:
        head = self._read_exact(HEAD_BYTES, deadline)
        size = reply_size(head)
        return parse_reply(self._read_exact(size, deadline, head), self.classes)

    def _drain(self) -> int:
        """Read until nothing came for ``quiet`` seconds (at most ``reply_timeout`` in all); bytes read."""
        end = time.monotonic() + max(self.reply_timeout, self.quiet)
        last = time.monotonic()
        count = 0
        while time.monotonic() < end:
            chunk = self._read(1 << 12)
            count += len(chunk)
            if chunk:
                last = time.monotonic()
            elif time.monotonic() - last >= self.quiet:
                break
        return count

    def _discard_stray(self) -> None:
        import serial

        try:
            waiting = self.port.in_waiting
        except (serial.SerialException, OSError) as e:
            raise PortLost(f"{self.name} failed: {e}; is the board still plugged in?") from None
        if waiting:
            self.stats.stray_bytes += len(self._read(waiting))


def _hex(data: bytes, limit: int = 8) -> str:
    shown = " ".join(f"{b:02X}" for b in data[:limit])
    return f"bytes {shown}{' ...' if len(data) > limit else ''}" if data else "no bytes"
