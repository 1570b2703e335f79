"""The host session against fake boards on real pseudo-terminals, opened with pyserial like any port.

Each fake board is a thread on a pty's master side: it decodes requests and answers them (a stand-in
model: class k scores the sum of every (k+1)-th pixel), following a script of misbehaviours --
garbage, a corrupted reply, an error reply, silence -- so the session's resends are checked against
what really crosses a tty: every frame answered once, in order, none lost or duplicated.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import serial

from bnn2fpga.cli import main
from bnn2fpga.contract import wire as p
from bnn2fpga.host.session import BoardRefused, GarbledLink, NoReply, Session
from tests.uart_build import make_uart_build

FRAME, CLASSES = 16, 3


def model(pixels: bytes) -> list[int]:
    return [sum(pixels[:: k + 1]) for k in range(CLASSES)]


class FakeBoard:
    """A pty whose master end plays a board. ``script``: what to do with request i (default "ok")."""

    def __init__(self, script: dict[int, str] | None = None, *, always: str | None = None,
                 scores: Callable[[bytes], list[int]] = model) -> None:
        self.master, slave = os.openpty()
        self.path = os.ttyname(slave)
        self.slave = slave  # kept open: the master never sees a hang-up between opens
        self.script, self.always, self.scores = script or {}, always, scores
        self.requests: list[bytes] = []
        self.fed: list[bytes] = []  # frames that reached the "accelerator"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        os.close(self.master)
        os.close(self.slave)

    def _read_some(self) -> bytes:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.02)
            if ready:
                return os.read(self.master, 4096)
        return b""

    def _serve(self) -> None:
        buf = bytearray()
        while not self._stop.is_set():
            buf += self._read_some()
            while len(buf) >= FRAME + 4:
                start = buf.find(p.REQUEST)
                if start < 0:
                    buf.clear()
                    break
                del buf[:start]
                if len(buf) < FRAME + 4:
                    break
                request, buf = bytes(buf[:FRAME + 4]), buf[FRAME + 4:]
                self._answer(request)

    def _answer(self, request: bytes) -> None:
        i = len(self.requests)
        self.requests.append(request)
        action = self.always or self.script.get(i, "ok")
        try:
            payload = p.decode_request(request)
        except p.ProtocolError:
            os.write(self.master, p.encode_error(p.BAD_CRC))
            return
        if action == "silent":
            return
        if action == "garbage":
            os.write(self.master, bytes(range(0x30, 0x50)))
            return
        if action == "error":
            os.write(self.master, p.encode_error(p.BAD_CRC))
            return
        reply = bytearray(p.encode_reply(self.scores(payload)))
        if action == "corrupt":
            reply[3] ^= 0x10
        elif action == "late":  # the reply after the host's deadline
            time.sleep(0.7)  # past the deadline (0.25 s) and the drain after it (0.3 s)
        elif action == "slow":  # within the deadline and the session's quiet time, but not at once
            time.sleep(0.03)
        self.fed.append(payload)
        os.write(self.master, bytes(reply))


@pytest.fixture
def fake() -> Iterator[Callable[..., FakeBoard]]:
    boards: list[FakeBoard] = []

    def make(*args: object, **kwargs: object) -> FakeBoard:
        boards.append(FakeBoard(*args, **kwargs))  # type: ignore[arg-type]
        return boards[-1]

    yield make
    for board in boards:
        board.close()


def frames(n: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [bytes(rng.integers(0, 256, FRAME, dtype=np.uint8)) for _ in range(n)]


def session(board: FakeBoard, **kwargs: float) -> tuple[Session, serial.Serial]:
    port = serial.Serial(board.path, 3_000_000)
    options = {"reply_timeout": 0.25, "retries": 3, "quiet": 0.05, **kwargs}
    return Session(port, frame_bytes=FRAME, classes=CLASSES, name=board.path, **options), port  # type: ignore[arg-type]


def test_every_frame_is_answered_once_in_order(fake: Callable[..., FakeBoard]) -> None:
    board = fake()
    s, port = session(board)
    todo = frames(20)
    assert [s.infer(f) for f in todo] == [tuple(model(f)) for f in todo]
    assert s.stats.frames == s.stats.requests == 20 and s.stats.retries == 0
    assert s.stats.bytes_sent == 20 * (FRAME + 4) and s.stats.bytes_received == 20 * (3 + 2 * CLASSES)
    port.close()


@pytest.mark.parametrize("misbehaviour", ["garbage", "corrupt", "error", "silent"])
def test_a_bad_answer_is_resent_and_no_frame_is_lost_or_doubled(fake: Callable[..., FakeBoard],
                                                                 misbehaviour: str) -> None:
    board = fake({3: misbehaviour, 7: misbehaviour})
    s, port = session(board)
    todo = frames(10)
    assert [s.infer(f) for f in todo] == [tuple(model(f)) for f in todo]
    assert s.stats.frames == 10 and s.stats.requests == 12 and s.stats.retries == 2
    counted = {"garbage": s.stats.garbled, "corrupt": s.stats.garbled, "error": s.stats.board_errors[p.BAD_CRC],
               "silent": s.stats.timeouts}
    assert counted[misbehaviour] == 2
    port.close()


def test_a_late_reply_and_the_resends_reply_make_one_answer(fake: Callable[..., FakeBoard]) -> None:
    """Frame 3's reply misses its deadline and comes after the resend; the resend's own reply follows
    a moment later. The first is frame 3's answer, the second must not become frame 4's."""
    board = fake({3: "late", 4: "slow"})
    s, port = session(board, quiet=0.3)  # longer than the board takes to answer a request it has
    todo = frames(8)
    assert [s.infer(f) for f in todo] == [tuple(model(f)) for f in todo]
    assert board.fed.count(todo[3]) == 2 and s.stats.timeouts == 1
    assert s.stats.stray_bytes == 3 + 2 * CLASSES  # the second reply to frame 3, thrown away
    port.close()


@pytest.mark.parametrize(("always", "error", "fragment"), [
    ("garbage", GarbledLink, "--baud"),
    ("silent", NoReply, "no reply"),
    ("error", BoardRefused, "error reply: bad CRC"),
])
def test_a_board_that_never_answers_right_ends_in_one_clear_error(fake: Callable[..., FakeBoard], always: str,
                                                                  error: type[Exception], fragment: str) -> None:
    board = fake(always=always)
    s, port = session(board, retries=2, reply_timeout=0.2)
    t0 = time.monotonic()
    with pytest.raises(error, match=fragment):
        s.infer(frames(1)[0])
    assert time.monotonic() - t0 < 3 * (0.2 + 0.2) + 1  # bounded: (retries + 1) deadlines and drains
    assert s.stats.frames == 0 and s.stats.requests == 3
    port.close()


def test_a_port_nobody_reads_times_out_instead_of_hanging() -> None:
    master, slave = os.openpty()  # the other end never reads: the tty buffer fills
    try:
        port = serial.Serial(os.ttyname(slave))
        s = Session(port, frame_bytes=60000, classes=CLASSES, reply_timeout=0.3, retries=1)
        t0 = time.monotonic()
        with pytest.raises(NoReply):
            for _ in range(10):
                s.infer(bytes(60000))
        assert time.monotonic() - t0 < 10
        port.close()
    finally:
        os.close(master)
        os.close(slave)


# ---------------------------------------------------------------- through the CLI

@pytest.fixture(scope="module")
def uart_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A UART board build (these runs use a port, never the simulator)."""
    return make_uart_build(tmp_path_factory.mktemp("run") / "tfc")




@pytest.mark.parametrize(("always", "fragment"), [("garbage", "not the bridge protocol"), ("silent", "no reply")])
def test_run_against_a_bad_board_is_one_error_line(uart_build: Path, always: str, fragment: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    master, slave = os.openpty()
    stop = threading.Event()

    def serve() -> None:  # reads every request; answers garbage or nothing
        while not stop.is_set():
            if select.select([master], [], [], 0.02)[0]:
                os.read(master, 4096)
                if always == "garbage":
                    os.write(master, b"\x00\xffhello\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        t0 = time.monotonic()
        code = main(["run", str(uart_build), "--port", os.ttyname(slave), "--images", "3", "--timeout", "0.3",
                     "--retries", "1", "--quiet"])
        elapsed = time.monotonic() - t0
    finally:
        stop.set()
        thread.join(2)
        os.close(master)
        os.close(slave)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and lines[0].startswith("error:") and "Traceback" not in err, err
    assert fragment in err
    assert elapsed < 20  # never hangs (the reference and dataset load are part of this)


def test_run_against_a_good_fake_board_reports_mismatches(uart_build: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A board that answers well-formed replies of the wrong network: exit 2, the mismatches counted."""
    import json

    config = json.loads((uart_build / "manifest.json").read_text())["uart"]
    master, slave = os.openpty()
    stop = threading.Event()

    def serve() -> None:
        buf = bytearray()
        size = config["frame_bytes"] + 4
        while not stop.is_set():
            if select.select([master], [], [], 0.02)[0]:
                buf += os.read(master, 4096)
            while len(buf) >= size:
                request, buf = bytes(buf[:size]), buf[size:]
                payload = p.decode_request(request)
                os.write(master, p.encode_reply([sum(payload[k::7]) % 60 for k in range(config["classes"])]))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        code = main(["run", str(uart_build), "--port", os.ttyname(slave), "--images", "5", "--json"])
    finally:
        stop.set()
        thread.join(2)
        os.close(master)
        os.close(slave)
    out, err = capsys.readouterr()
    summary = json.loads(out.strip().splitlines()[-1])
    assert code == 2 and "frames" in err and "differ from the reference" in err
    assert summary["images"] == 5 and summary["mismatched_frames"] >= 4 and not summary["passed"]
    assert summary["session"]["frames"] == summary["session"]["requests"] == 5
    assert summary["link_seconds"] > 0 and summary["frames_per_second"] > 0


@pytest.mark.parametrize(("change", "fragment"), [
    ({"divisor": 2}, "uart.divisor"),
    ({"baud": "fast"}, "uart.baud"),
    ({"pixels": 100}, "not the accelerator's"),
    ({"frame_bytes": 100}, "take 784 bytes"),
    ({"planes": [7, 3]}, "uart.planes"),
    ({"sources": "board.v"}, "uart.sources"),
    ({"top": None}, "uart.top"),
])
def test_a_broken_uart_block_is_one_clear_error(uart_build: Path, tmp_path: Path, change: dict[str, object],
                                                fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    import json
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(uart_build, broken, ignore=shutil.ignore_patterns("sim_build"))
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["uart"].update(change)
    (broken / "manifest.json").write_text(json.dumps(manifest))
    assert main(["run", str(broken), "--port", "/dev/ttyUSB0", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and fragment in err and "Traceback" not in err, err
