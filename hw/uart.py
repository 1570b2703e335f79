"""A host bridge over a UART: framed images in, class popcounts out, errors answered, never a lost frame.

Open-toolchain boards (ULX3S, iCEBreaker) reach their host through an FTDI USB-serial port. The
bridge speaks 8N1 at ``clock / divisor`` baud and a stop-and-wait protocol:

- **request** (host to board): ``0xA5``, the payload length (2 bytes, little-endian), the
  payload (one frame's pixels, HWC order), then the CRC-8 (polynomial 0x07, initial 0) of the
  length and payload bytes. The payload carries only the bit planes the accelerator reads: with
  at most four kept planes each pixel is a field of 1, 2 or 4 bits (the kept planes, lowest in
  the field's bit 0), packed from each byte's least significant bit, so a bit-slice-pruned
  network gets 2-8 times the frames through the same line (:attr:`BridgeSpec.bits_per_pixel`);
  with more, each pixel is its whole byte;
- **reply** (board to host): ``0x5A``, the number of classes K, K popcounts (2 bytes each,
  little-endian), then the CRC-8 of the K and popcount bytes;
- **error reply**: ``0x5A``, ``0xFF``, a code, then the CRC-8 of those two bytes. Codes:
  1 the length is not one frame (the rest of the request is skipped until the line is quiet),
  2 the CRC does not match, 3 the request stopped half-way (no byte for ``timeout`` byte times).

The payload is kept in a frame buffer and reaches the accelerator only once its CRC checked, so
a broken request never feeds a partial frame; after any error the bridge hunts for the next
``0xA5`` and the host resends. One request is answered before the next is read.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Const, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..contract.planes import ALL_PLANES, Planes
from ..contract.wire import BAD_CRC, BAD_LENGTH, ERROR, REPLY, REQUEST, TIMEOUT, bits_per_pixel, crc8, payload_bytes

__all__ = ["BridgeSpec", "UartRx", "UartTx", "FrameBridge"]

SCORE_LAYOUT = data.StructLayout({"data": unsigned(32), "last": unsigned(1)})


def _crc8_unit(m: Module, crc: Signal, byte: Signal) -> Signal:
    """:func:`~bnn2fpga.contract.wire.crc8` in logic, over one byte: eight shift-xor steps, each its own signal
    (nesting the expressions instead doubles their size at every step)."""
    value = Signal(8, name="crc_x")
    m.d.comb += value.eq(crc ^ byte)
    for i in range(8):
        step = Signal(8, name=f"crc_s{i}")
        m.d.comb += step.eq((value[7].replicate(8) & Const(0x07, 8)) ^ (value << 1)[:8])
        value = step
    return value


@dataclass(frozen=True)
class BridgeSpec:
    pixels: int  # samples per frame, one per accelerator input beat
    classes: int
    divisor: int  # clock cycles per bit
    timeout_bytes: int = 4  # idle byte times that end a broken request
    planes: tuple[int, ...] = ALL_PLANES  # the bit planes of each pixel the accelerator reads

    def __post_init__(self) -> None:
        for name in ("pixels", "classes", "divisor", "timeout_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"bridge {name} must be a positive integer, not {value!r}")
        if self.divisor < 4:
            raise ValueError(f"bridge divisor must be at least 4 clocks per bit, not {self.divisor}")
        object.__setattr__(self, "planes", Planes(self.planes, what="bridge planes"))
        if self.frame_bytes >= 1 << 16 or self.classes >= 0xFF:
            raise ValueError("a frame must be under 65,536 bytes and under 255 classes")

    @property
    def bits_per_pixel(self) -> int:
        return bits_per_pixel(len(self.planes))

    @property
    def pixels_per_byte(self) -> int:
        return 8 // self.bits_per_pixel

    @property
    def frame_bytes(self) -> int:
        """Payload bytes of one request."""
        return payload_bytes(self.pixels, len(self.planes))


class UartRx(wiring.Component):
    """8N1 receiver: the start bit's middle is found half a bit after its falling edge, then every
    bit is sampled a whole bit later. A byte whose stop bit is low is dropped (``framing_error``)."""

    def __init__(self, divisor: int) -> None:
        self.divisor = divisor
        super().__init__({"rx": In(1, init=1), "source": Out(stream.Signature(unsigned(8))),
                          "framing_error": Out(1)})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        rx = Signal(init=1)
        rx_meta = Signal(init=1)
        m.d.sync += [rx_meta.eq(self.rx), rx.eq(rx_meta)]  # two flops: the line is asynchronous
        timer = Signal(range(self.divisor * 2))
        bit = Signal(range(10))
        shift = Signal(8)
        m.d.sync += self.framing_error.eq(0)
        with m.If(self.source.ready):
            m.d.sync += self.source.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(self.divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer == 0):
                    with m.If(rx):  # a glitch, not a start bit
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [timer.eq(self.divisor - 1), bit.eq(0)]
                        m.next = "DATA"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [shift.eq((rx << 7) | (shift >> 1)), timer.eq(self.divisor - 1), bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(rx):
                        m.d.sync += [self.source.payload.eq(shift), self.source.valid.eq(1)]
                    with m.Else():
                        m.d.sync += self.framing_error.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
        return m


class UartTx(wiring.Component):
    """8N1 transmitter, one byte from ``sink`` at a time."""

    def __init__(self, divisor: int) -> None:
        self.divisor = divisor
        super().__init__({"sink": In(stream.Signature(unsigned(8))), "tx": Out(1, init=1)})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        timer = Signal(range(self.divisor))
        bits = Signal(10)
        left = Signal(range(11))
        m.d.comb += self.sink.ready.eq((left == 0) & (timer == 0))  # after the stop bit's whole time
        with m.If(self.sink.ready & self.sink.valid):
            # start bit, data LSB first, stop bit: shifted out from the low end
            m.d.sync += [bits.eq((1 << 9) | (self.sink.payload << 1)), left.eq(10)]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Elif(left != 0):
            m.d.sync += [self.tx.eq(bits[0]), bits.eq(bits >> 1), left.eq(left - 1), timer.eq(self.divisor - 1)]
        return m


class FrameBridge(wiring.Component):
    """UART lines on one side, the accelerator's pixel and score streams on the other.

    ``pixels``: one byte per beat, ``spec.pixels`` beats per frame; the planes a request does not
    carry are 0. ``scores``: 32-bit class popcounts, ``last`` on the frame's final class (the
    accelerator's output stream)."""

    def __init__(self, spec: BridgeSpec) -> None:
        self.spec = spec
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1),
                          "pixels": Out(stream.Signature(unsigned(8))),
                          "scores": In(stream.Signature(SCORE_LAYOUT)),
                          "busy": Out(1), "errors": Out(16)})

    def elaborate(self, platform: object) -> Module:
        s = self.spec
        m = Module()
        m.submodules.urx = urx = UartRx(s.divisor)
        m.submodules.utx = utx = UartTx(s.divisor)
        # Block RAM even when small (a packed frame is ~100 bytes): in logic it would cost a cell a bit.
        # Its read is synchronous, as block RAM's is: a byte is read in LOAD, handed on in FEED.
        m.submodules.buffer = buffer = Memory(shape=unsigned(8), depth=s.frame_bytes, init=[],
                                              attrs={"ram_style": "block"})
        wr = buffer.write_port()
        rd = buffer.read_port()
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]

        byte = urx.source.payload
        got = Signal()
        m.d.comb += [urx.source.ready.eq(1), got.eq(urx.source.valid)]
        length = Signal(16)
        count = Signal(range(max(s.frame_bytes, s.classes * 2) + 1))
        crc = Signal(8)
        code = Signal(8)
        limit = s.divisor * 10 * s.timeout_bytes
        idle = Signal(range(limit + 1))
        # quiet == (idle == limit), kept as a register: the compare of a 10-bit counter in front of
        # the state machine's transitions was the iCE40 board's critical path.
        quiet = Signal()
        with m.If(got):
            m.d.sync += [idle.eq(0), quiet.eq(0)]
        with m.Elif(~quiet):
            m.d.sync += [idle.eq(idle + 1), quiet.eq(idle == limit - 1)]

        # Outgoing bytes: one register in front of the transmitter.
        out_byte = Signal(8)
        out_valid = Signal()
        m.d.comb += [utx.sink.payload.eq(out_byte), utx.sink.valid.eq(out_valid)]
        with m.If(utx.sink.ready & out_valid):
            m.d.sync += out_valid.eq(0)
        # A new byte goes in once the transmitter has taken the last: a register, not the transmitter's
        # counters' compare (that compare, the state decode and the byte select made the iCE40 board's
        # critical path). It costs a cycle a byte, against a character time of ten bit times.
        can_send = Signal()
        m.d.comb += can_send.eq(~out_valid)

        def send(m: Module, value: object) -> None:
            m.d.sync += [out_byte.eq(value), out_valid.eq(1)]

        score = Signal(32)
        last = Signal()
        # want_score == (state == SCORE), kept as a register: `scores.ready` reaches the output
        # stage and the skid buffer's enables, and the state decode in front of it was the iCE40
        # board's critical path.
        want_score = Signal()
        m.d.comb += self.scores.ready.eq(want_score)
        feeding = Signal()  # == (state == FEED), a register for the same reason on the input side
        m.d.comb += self.pixels.valid.eq(feeding)
        # The CRC takes its byte a cycle later, from registers (crc_in, crc_pending): the byte's own path
        # (the receiver's valid, the state's choice of byte) and the eight xor steps no longer share a clock
        # period. Bytes are a character time apart, so an update is always done before the next.
        crc_in = Signal(8)
        crc_pending = Signal()
        crc_next = _crc8_unit(m, crc, crc_in)
        with m.If(crc_pending):
            m.d.sync += [crc.eq(crc_next), crc_pending.eq(0)]
        error_crc = Signal(8)
        for value in (BAD_LENGTH, BAD_CRC, TIMEOUT):
            with m.If(code == value):
                m.d.comb += error_crc.eq(crc8([ERROR, value]))
        errors = Signal(16)
        m.d.comb += [self.errors.eq(errors), wr.addr.eq(count), wr.data.eq(byte), rd.addr.eq(count)]
        # Feeding: `count` addresses the payload byte, `lane` the pixel within it.
        per_byte, width = s.pixels_per_byte, s.bits_per_pixel
        lane = Signal(range(max(2, per_byte)))  # never zero bits wide: Verilator refuses [-1:0]
        last_pixel = Signal()
        m.d.comb += last_pixel.eq((count == s.frame_bytes - 1) & (lane == (s.pixels - 1) % per_byte))
        if width == 8:
            m.d.comb += self.pixels.payload.eq(rd.data)
        else:
            field = Signal(width)
            with m.Switch(lane):
                for j in range(per_byte):
                    with m.Case(j):
                        m.d.comb += field.eq(rd.data[j * width:(j + 1) * width])
            for bit, plane in enumerate(s.planes):
                m.d.comb += self.pixels.payload[plane].eq(field[bit])

        def timeout_when_quiet() -> None:
            """After a state's ``with m.If(got)``: the request stopped half-way (no byte for
            ``timeout_bytes`` byte times) is answered with error 3."""
            with m.Elif(quiet):
                m.d.sync += code.eq(TIMEOUT)
                m.next = "ERROR_HEAD"

        with m.FSM() as fsm:
            m.d.comb += self.busy.eq(~fsm.ongoing("HUNT"))
            with m.State("HUNT"):
                with m.If(got & (byte == REQUEST)):
                    m.d.sync += [crc.eq(0), count.eq(0)]
                    m.next = "LEN0"
            with m.State("LEN0"):
                with m.If(got):
                    m.d.sync += [length[:8].eq(byte), crc_in.eq(byte), crc_pending.eq(1)]
                    m.next = "LEN1"
                timeout_when_quiet()
            with m.State("LEN1"):
                with m.If(got):
                    m.d.sync += [length[8:].eq(byte), crc_in.eq(byte), crc_pending.eq(1)]
                    with m.If(Const(s.frame_bytes, 16) == ((byte << 8) | length[:8])):
                        m.next = "PAYLOAD"
                    with m.Else():
                        m.next = "DRAIN"
                timeout_when_quiet()
            with m.State("PAYLOAD"):
                with m.If(got):
                    m.d.comb += wr.en.eq(1)
                    m.d.sync += [crc_in.eq(byte), crc_pending.eq(1), count.eq(count + 1)]
                    with m.If(count == s.frame_bytes - 1):
                        m.next = "CHECK"
                timeout_when_quiet()
            with m.State("CHECK"):
                with m.If(got):
                    m.d.sync += [count.eq(0), lane.eq(0)]
                    with m.If(byte == crc):
                        m.next = "LOAD"
                    with m.Else():
                        m.d.sync += code.eq(BAD_CRC)
                        m.next = "ERROR_HEAD"
                timeout_when_quiet()
            with m.State("DRAIN"):  # the rest of a request of the wrong length: skip until the line is quiet
                with m.If(quiet):
                    m.d.sync += code.eq(BAD_LENGTH)
                    m.next = "ERROR_HEAD"
            with m.State("LOAD"):  # the buffer's read of byte `count` lands at the next edge
                m.d.sync += feeding.eq(1)
                m.next = "FEED"
            with m.State("FEED"):
                with m.If(self.pixels.ready):
                    with m.If(lane == per_byte - 1):
                        m.d.sync += [lane.eq(0), count.eq(count + 1), feeding.eq(0)]
                        m.next = "LOAD"
                    with m.Else():
                        m.d.sync += lane.eq(lane + 1)
                    with m.If(last_pixel):
                        m.d.sync += feeding.eq(0)
                        m.next = "REPLY_HEAD"
            with m.State("REPLY_HEAD"):
                with m.If(can_send):
                    send(m, REPLY)
                    m.d.sync += crc.eq(0)
                    m.next = "REPLY_K"
            with m.State("REPLY_K"):
                with m.If(can_send):
                    send(m, s.classes)
                    m.d.sync += [crc_in.eq(s.classes), crc_pending.eq(1), want_score.eq(1)]
                    m.next = "SCORE"
            with m.State("SCORE"):
                with m.If(self.scores.valid):
                    m.d.sync += [score.eq(self.scores.payload.data), last.eq(self.scores.payload.last),
                                 want_score.eq(0)]
                    m.next = "SCORE_LO"
            with m.State("SCORE_LO"):
                with m.If(can_send):
                    send(m, score[:8])
                    m.d.sync += [crc_in.eq(score[:8]), crc_pending.eq(1)]
                    m.next = "SCORE_HI"
            with m.State("SCORE_HI"):
                with m.If(can_send):
                    send(m, score[8:16])
                    m.d.sync += [crc_in.eq(score[8:16]), crc_pending.eq(1)]
                    with m.If(last):
                        m.next = "REPLY_CRC"
                    with m.Else():
                        m.d.sync += want_score.eq(1)
                        m.next = "SCORE"
            with m.State("REPLY_CRC"):
                with m.If(can_send & ~crc_pending):
                    send(m, crc)
                    m.next = "HUNT"
            # An error reply: four bytes, the first counted in `errors`.
            replies = (("ERROR_HEAD", REPLY, "ERROR_FF"), ("ERROR_FF", ERROR, "ERROR_CODE"),
                       ("ERROR_CODE", code, "ERROR_CRC"), ("ERROR_CRC", error_crc, "HUNT"))
            for state, value, following in replies:
                with m.State(state):
                    with m.If(can_send):
                        send(m, value)
                        if state == "ERROR_HEAD":
                            m.d.sync += errors.eq(errors + 1)
                        m.next = following
        # One flip-flop per state: the reply states' decode and byte select were the iCE40 board's
        # critical path with the states binary-coded (synthesis does not recode a register that has
        # an initial value on its own). Yosys then ignores the initial value: the board top holds
        # reset until the PLL locks, and reset puts the machine in HUNT.
        fsm.state.attrs["fsm_encoding"] = "one-hot"
        return m
