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

from amaranth.hdl import Const, Module, Mux, Signal, unsigned
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
        # Its read is synchronous, as block RAM's is: a byte is read in LOAD, latched in LATCH, fed in FEED.
        m.submodules.buffer = buffer = Memory(shape=unsigned(8), depth=s.frame_bytes, init=[],
                                              attrs={"ram_style": "block"})
        wr = buffer.write_port()
        rd = buffer.read_port()
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]

        length = Signal(16)
        count = Signal(range(max(s.frame_bytes, s.classes * 2) + 1))
        crc = Signal(8)
        # Each received byte reaches the state machine a cycle later, with the comparisons the states
        # make on it done on the way, as registers: the byte compares in front of the state machine's
        # transitions (and of every flag they move) were the iCE40 board's critical path. Bytes are a
        # character time apart, so the CRC of the bytes before has long settled when the next arrives.
        got = Signal()
        byte = Signal(8)
        is_request = Signal()  # byte == REQUEST
        is_crc = Signal()      # byte == crc
        length_ok = Signal()   # byte is the length's high byte, and the length is one frame
        raw = urx.source.payload
        m.d.comb += urx.source.ready.eq(1)
        m.d.sync += [got.eq(urx.source.valid), byte.eq(raw), is_request.eq(raw == REQUEST), is_crc.eq(raw == crc),
                     length_ok.eq((raw == s.frame_bytes >> 8) & (length[:8] == s.frame_bytes & 0xFF))]
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
        # The byte a sending state sends, chosen by state, and loaded by one enable made of registers:
        # `sending` (the state is one of SENDING) and `out_valid`. With the load enable decoded from
        # the states (each its own `can_send` test) the enable of out_byte was the iCE40 board's
        # critical path.
        send_value = Signal(8)
        sending = Signal()
        crc_wait = Signal()  # REPLY_CRC waits for the last byte's CRC update

        def send(m: Module, value: object) -> None:
            m.d.comb += send_value.eq(value)

        score = Signal(32)
        last = Signal()
        # want_score == (state == SCORE), kept as a register: `scores.ready` reaches the output
        # stage and the skid buffer's enables, and the state decode in front of it was the iCE40
        # board's critical path.
        want_score = Signal()
        took = Signal()  # a score was taken in the last cycle
        m.d.comb += self.scores.ready.eq(want_score)
        feeding = Signal()  # == (state == FEED), a register for the same reason on the input side
        m.d.comb += self.pixels.valid.eq(feeding)
        # The CRC takes its byte a cycle later, from registers (crc_in, crc_pending): the byte's own path
        # (the receiver's valid, the state's choice of byte) and the eight xor steps no longer share a clock
        # period. Bytes are a character time apart, so an update is always done before the next.
        crc_in = Signal(8)
        crc_pending = Signal()
        crc_next = _crc8_unit(m, crc, crc_in)
        # crc_in loads every cycle (no enable to decode): the byte being sent while sending, else the
        # byte received; `crc_pending`, set by the states that count a byte, says when it is one.
        m.d.sync += crc_in.eq(Mux(sending, send_value, byte))
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
        # The byte being fed, in a register that shifts the next pixel's field down as a pixel is
        # taken: no lane multiplexer between the buffer's read and the accelerator's input register
        # (that path was the iCE40 board's critical path).
        word = Signal(8)
        if width == 8:
            m.d.comb += self.pixels.payload.eq(word)
        else:
            for bit, plane in enumerate(s.planes):
                m.d.comb += self.pixels.payload[plane].eq(word[bit])

        SENDING = {"REPLY_HEAD", "REPLY_K", "SCORE_LO", "SCORE_HI", "REPLY_CRC",
                   "ERROR_HEAD", "ERROR_FF", "ERROR_CODE", "ERROR_CRC"}

        def go(state: str) -> None:
            """Move to ``state``; the flags that stand for groups of states (registers, so that what
            they drive needs no state decode) follow it."""
            m.next = state
            m.d.sync += [feeding.eq(state == "FEED"), want_score.eq(state == "SCORE"),
                         sending.eq(state in SENDING)]

        def timeout_when_quiet() -> None:
            """After a state's ``with m.If(got)``: the request stopped half-way (no byte for
            ``timeout_bytes`` byte times) is answered with error 3."""
            with m.Elif(quiet):
                go("ERROR_HEAD")

        send_now = Signal()
        m.d.comb += send_now.eq(sending & can_send & ~crc_wait)
        with m.If(send_now):
            m.d.sync += [out_byte.eq(send_value), out_valid.eq(1)]

        with m.FSM() as fsm:
            m.d.comb += self.busy.eq(~fsm.ongoing("HUNT"))
            with m.State("HUNT"):
                with m.If(got & is_request):
                    m.d.sync += [crc.eq(0), count.eq(0)]
                    go("LEN0")
            with m.State("LEN0"):
                with m.If(got):
                    m.d.sync += [length[:8].eq(byte), crc_pending.eq(1)]
                    go("LEN1")
                timeout_when_quiet()
            with m.State("LEN1"):
                with m.If(got):
                    m.d.sync += [length[8:].eq(byte), crc_pending.eq(1)]
                    with m.If(length_ok):
                        go("PAYLOAD")
                    with m.Else():
                        go("DRAIN")
                timeout_when_quiet()
            with m.State("PAYLOAD"):
                with m.If(got):
                    m.d.comb += wr.en.eq(1)
                    m.d.sync += [crc_pending.eq(1), count.eq(count + 1)]
                    with m.If(count == s.frame_bytes - 1):
                        go("CHECK")
                timeout_when_quiet()
            with m.State("CHECK"):
                with m.If(got):
                    m.d.sync += [count.eq(0), lane.eq(0)]
                    with m.If(is_crc):
                        go("LOAD")
                    with m.Else():
                        go("ERROR_HEAD")
                timeout_when_quiet()
            with m.State("DRAIN"):  # the rest of a request of the wrong length: skip until the line is quiet
                with m.If(quiet):
                    go("ERROR_HEAD")
            with m.State("LOAD"):  # the buffer's read of byte `count` lands at the next edge
                go("LATCH")
            with m.State("LATCH"):
                m.d.sync += word.eq(rd.data)
                go("FEED")
            with m.State("FEED"):
                with m.If(self.pixels.ready):
                    m.d.sync += word.eq(word >> width)
                    with m.If(lane == per_byte - 1):
                        m.d.sync += [lane.eq(0), count.eq(count + 1)]
                        go("LOAD")
                    with m.Else():
                        m.d.sync += lane.eq(lane + 1)
                    with m.If(last_pixel):
                        go("REPLY_HEAD")
            with m.State("REPLY_HEAD"):
                send(m, REPLY)
                with m.If(send_now):
                    m.d.sync += crc.eq(0)
                    go("REPLY_K")
            with m.State("REPLY_K"):
                send(m, s.classes)
                with m.If(send_now):
                    m.d.sync += crc_pending.eq(1)
                    go("SCORE")
            with m.State("SCORE"):
                with m.If(took):
                    go("SCORE_LO")
            with m.State("SCORE_LO"):
                send(m, score[:8])
                with m.If(send_now):
                    m.d.sync += crc_pending.eq(1)
                    go("SCORE_HI")
            with m.State("SCORE_HI"):
                send(m, score[8:16])
                with m.If(send_now):
                    m.d.sync += crc_pending.eq(1)
                    with m.If(last):
                        go("REPLY_CRC")
                    with m.Else():
                        go("SCORE")
            with m.State("REPLY_CRC"):
                send(m, crc)
                m.d.comb += crc_wait.eq(crc_pending)
                with m.If(send_now):
                    go("HUNT")
            # An error reply: four bytes, the first counted in `errors`.
            replies = (("ERROR_HEAD", REPLY, "ERROR_FF"), ("ERROR_FF", ERROR, "ERROR_CODE"),
                       ("ERROR_CODE", code, "ERROR_CRC"), ("ERROR_CRC", error_crc, "HUNT"))
            for state, value, following in replies:
                with m.State(state):
                    send(m, value)
                    with m.If(send_now):
                        if state == "ERROR_HEAD":
                            m.d.sync += errors.eq(errors + 1)
                        go(following)
        # A score is taken into registers, and the state machine moves on a cycle later: the output
        # stage's `valid` reaches only `score`, `last` and `want_score`, not the state machine (its
        # transitions and the flags they move were the iCE40 board's critical path).
        with m.If(self.scores.valid & want_score):
            m.d.sync += [score.eq(self.scores.payload.data), last.eq(self.scores.payload.last),
                         want_score.eq(0)]
        m.d.sync += took.eq(self.scores.valid & want_score)
        # `code` loads, while no reply is being sent, the code an error would have now (no enable to
        # decode from the states that raise one); the error reply holds it.
        with m.If(~sending):
            m.d.sync += code.eq(Mux(fsm.ongoing("DRAIN"), BAD_LENGTH, Mux(got, BAD_CRC, TIMEOUT)))
        # One flip-flop per state: the reply states' decode and byte select were the iCE40 board's
        # critical path with the states binary-coded (synthesis does not recode a register that has
        # an initial value on its own). Yosys then ignores the initial value: the board top holds
        # reset until the PLL locks, and reset puts the machine in HUNT.
        fsm.state.attrs["fsm_encoding"] = "one-hot"
        return m
