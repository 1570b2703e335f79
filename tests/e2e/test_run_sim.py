"""`bnn2fpga run --sim`: the host code against the Verilator model of the whole board core, UART lines included.

Real Fashion-MNIST test images go through a pseudo-terminal, the bridge's 8N1 receiver, the frame
buffer, the accelerator and back out of the transmitter; every reply must be the reference's. Broken
requests -- a wrong CRC, a wrong length, a frame cut short -- are sent through the same pty and the
board must refuse each with its error reply and then answer the next frames, none lost or doubled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import serial

from bnn2fpga import data as datasets
from bnn2fpga import reference
from bnn2fpga.checkpoint import load
from bnn2fpga.cli import main
from bnn2fpga.contract import wire as p
from bnn2fpga.contract.manifest import load_manifest
from bnn2fpga.host.link import uart_config
from bnn2fpga.host.session import Session
from bnn2fpga.ir.pipeline import lower
from bnn2fpga.sim.uart_board import UartBoardSim
from tests.uart_build import make_uart_build


@pytest.fixture(scope="module")
def uart_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_uart_build(tmp_path_factory.mktemp("uart") / "tfc")


@pytest.fixture(scope="module")
def images(uart_build: Path) -> tuple[np.ndarray, np.ndarray]:
    """The first 12 test images as the board takes them (HWC bytes), and their reference popcounts."""
    pixels = datasets.load("fashion-mnist").test.images[:12]
    ref = reference.run(lower(load(uart_build / "checkpoint.pt")), pixels)
    frames = np.ascontiguousarray(pixels.transpose(0, 2, 3, 1)).reshape(len(pixels), -1)
    return frames, ref.popcounts


def test_run_sim_is_bit_exact_on_test_images(uart_build: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", str(uart_build), "--sim", "--images", "40", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    s = json.loads(out.strip().splitlines()[-1])
    assert s["passed"] and s["bit_exact"] and s["mismatched_words"] == 0 and s["images"] == 40
    assert s["hardware_accuracy"] == s["reference_accuracy"] > 0.7
    assert s["session"]["frames"] == s["session"]["requests"] == 40  # not one resend
    sim = s["sim"]
    assert sim["bridge_errors"] == 0 and sim["framing_errors"] == 0
    assert sim["bytes_in"] == 40 * (784 + 4) and sim["bytes_out"] == 40 * (3 + 2 * 10)
    # A frame's cycles: its bytes on the wire plus the accelerator's latency, give or take the turnaround.
    wire, latency = (784 + 4 + 23) * 10 * s["divisor"], s["predicted_latency_cycles"]
    assert wire + latency // 2 < sim["cycles_per_frame"] < wire + 2 * latency


class Corrupting:
    """A real pyserial port whose ``nth`` write is damaged on its way (the line's fault, not the host's)."""

    def __init__(self, port: serial.Serial, nth: int, how: str) -> None:
        self.port, self.nth, self.how, self.writes = port, nth, how, 0

    def write(self, data: bytes) -> int | None:
        self.writes += 1
        if self.writes == self.nth:
            if self.how == "crc":
                data = data[:10] + bytes([data[10] ^ 0x04]) + data[11:]  # one pixel bit flipped
            elif self.how == "length":
                data = data[:1] + (len(data) - 5).to_bytes(2, "little") + data[3:-2] + data[-1:]  # one short
            elif self.how == "cut":
                data = data[: len(data) // 2]  # then the host waits for a reply
        return self.port.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.port, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("timeout", "write_timeout"):
            setattr(self.port, name, value)
        else:
            super().__setattr__(name, value)


@pytest.mark.parametrize(("how", "code"), [("crc", p.BAD_CRC), ("length", p.BAD_LENGTH), ("cut", p.TIMEOUT)])
def test_a_corrupted_request_is_refused_and_resent(uart_build: Path, images: tuple[np.ndarray, np.ndarray],
                                                   how: str, code: int) -> None:
    frames, expected = images
    config = uart_config(load_manifest(uart_build))
    with UartBoardSim(config, grace_ms=300) as sim:
        port = serial.Serial(sim.port, config.baud)
        # The cut request gets no reply before the board's own timeout: a short deadline, then a resend.
        session = Session(Corrupting(port, 3, how), frame_bytes=784, classes=10,  # type: ignore[arg-type]
                          reply_timeout=2.0 if how == "cut" else 20.0, quiet=0.5, name=sim.port)
        got = [session.infer(f.tobytes()) for f in frames[:6]]
        port.close()
    assert np.array_equal(np.array(got), expected[:6])  # in order, none lost, none doubled
    stats = session.stats
    assert stats.frames == 6 and stats.requests == 7
    if how == "cut":
        # no whole reply by the deadline, or the board's timeout error first: either way one resend
        assert stats.timeouts + stats.board_errors[p.TIMEOUT] >= 1
    else:
        assert stats.board_errors == {code: 1}
    assert sim.stats is not None and sim.stats.bridge_errors == 1 and sim.stats.framing_errors == 0


def test_broken_requests_get_their_error_replies_and_the_next_frames_are_answered(
        uart_build: Path, images: tuple[np.ndarray, np.ndarray]) -> None:
    frames, expected = images
    config = uart_config(load_manifest(uart_build))
    good = [f.tobytes() for f in frames]
    broken = [
        (p.encode_request(good[0], corrupt_crc=True), p.BAD_CRC),
        (p.encode_request(good[0][:20], length=20), p.BAD_LENGTH),
        (p.encode_request(good[0])[:300], p.TIMEOUT),  # the host stops half-way
        (bytes([0x00, 0x13, p.REPLY, 0x77]) + p.encode_request(good[0], corrupt_crc=True), p.BAD_CRC),  # noise first
    ]
    got = []
    with UartBoardSim(config, grace_ms=300) as sim:
        port = serial.Serial(sim.port, config.baud)
        session = Session(port, frame_bytes=784, classes=10, reply_timeout=20.0, name=sim.port)
        for i, (request, code) in enumerate(broken):
            session.send_raw(request)
            assert session.read_raw(5.0, size=4) == p.encode_error(code), f"broken request {i}"
            got.append(session.infer(good[i + 1]))
        got += [session.infer(f) for f in good[5:8]]
        port.close()
    assert np.array_equal(np.array(got), expected[1:8])
    assert session.stats.requests == session.stats.frames == 7
    assert sim.stats is not None and sim.stats.bridge_errors == len(broken)


@pytest.mark.slow
def test_run_sim_on_1000_images(uart_build: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", str(uart_build), "--sim", "--images", "1000", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    s = json.loads(out.strip().splitlines()[-1])
    assert s["passed"] and s["images"] == 1000 and s["session"]["retries"] == 0


@pytest.mark.slow
def test_run_sim_on_an_icebreaker_build(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Another board, clock and bit time (18 MHz, 6 clocks per bit): a small network that fits the iCE40UP5K."""
    from tests.conftest import random_checkpoint

    checkpoint = tmp_path / "small.pt"
    random_checkpoint("tfc", widths=[32, 32, 32], planes=[7, 6], dataset="fashion-mnist").save(checkpoint)
    assert main(["build", str(checkpoint), "--board", "icebreaker", "--no-synth", "--quiet",
                 "--out", str(tmp_path / "ice")]) == 0
    capsys.readouterr()
    code = main(["run", str(tmp_path / "ice"), "--sim", "--images", "200", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    s = json.loads(out.strip().splitlines()[-1])
    assert s["passed"] and s["images"] == 200 and s["session"]["retries"] == 0
    assert s["frame_bytes"] == 196 and s["sim"]["bytes_in"] == 200 * (196 + 4)  # 2 planes: 2 bits a pixel


def test_run_sim_sends_only_the_kept_plane(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A network that reads one input plane gets 98-byte requests (8 pixels a byte), bit-exact."""
    from tests.conftest import random_checkpoint

    checkpoint = tmp_path / "one-plane.pt"
    random_checkpoint("tfc", widths=[16, 16, 16], planes=[7], dataset="fashion-mnist").save(checkpoint)
    assert main(["build", str(checkpoint), "--board", "icebreaker", "--no-synth", "--quiet",
                 "--out", str(tmp_path / "ice")]) == 0
    capsys.readouterr()
    uart = json.loads((tmp_path / "ice" / "manifest.json").read_text())["uart"]
    assert (uart["frame_bytes"], uart["pixels"], uart["planes"], uart["bits_per_pixel"]) == (98, 784, [7], 1)
    assert "98 payload bytes (784 pixels, planes 7 in 1 bit each)" in (tmp_path / "ice" / "report.md").read_text()
    code = main(["run", str(tmp_path / "ice"), "--sim", "--images", "20", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    s = json.loads(out.strip().splitlines()[-1])
    assert s["passed"] and s["bit_exact"] and s["session"]["retries"] == 0
    assert s["sim"]["bytes_in"] == 20 * (98 + 4)
