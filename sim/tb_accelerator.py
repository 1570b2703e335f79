"""cocotb testbench for a generated accelerator top (docs/hardware-contract.md).

Launched by :func:`bnn2fpga.sim.runner.run_cocotb`, which writes a config file and the
stimulus into the simulation's run folder and points ``BNN2FPGA_TB_CONFIG`` at the config.
Everything about the design (widths, beats per frame, expected cycles) comes from the
build's manifest.json.

Phase 1 (timing): ``timing_frames`` frames back to back, ``s_axis_tvalid`` and
``m_axis_tready`` held high; measures the first-frame latency and the steady-state
initiation interval exactly as the contract defines them.
Phase 2 (function): every image under random tvalid/tready pauses; every output word is
compared bit-exact. Each image goes in as its own packet (``tlast`` on its last beat), so
``tlast`` must be set on exactly the last beat of each output frame.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.handle import SimHandleBase
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

from ..contract.manifest import Manifest, load_manifest, pack_frames

CONFIG_ENV = "BNN2FPGA_TB_CONFIG"
MAX_REPORTED = 200  # mismatches kept in detail; the count is always exact


@dataclass(frozen=True)
class TbConfig:
    build_dir: str
    stimulus: str          # npz with "images" (N,H,W,C) uint8 and "expected" (N, classes) int64
    result: str            # json written by the test
    outputs: str           # npy written by the test: (N, classes) words of phase 2
    seed: int = 1
    timing_frames: int = 8
    stall_in: float = 0.3  # probability that the source pauses in a cycle (phase 2)
    stall_out: float = 0.3  # probability that the sink deasserts tready in a cycle (phase 2)

    @classmethod
    def load(cls) -> TbConfig:
        path = os.environ.get(CONFIG_ENV)
        if not path:
            raise RuntimeError(f"{CONFIG_ENV} is not set: launch this test through bnn2fpga.sim.runner")
        return cls(**json.loads(Path(path).read_text()))


def random_pauses(rng: random.Random, probability: float) -> Iterator[bool]:
    """Pause pattern for cocotbext-axi: independent pauses plus occasional bursts.

    Bursts matter: they let FIFOs inside the design fill up completely, which
    single-cycle pauses rarely do.
    """
    while True:
        if rng.random() < probability / 8:
            yield from [True] * rng.randint(2, 24)
        yield rng.random() < probability


@dataclass
class Mismatch:
    phase: int   # 1 = timing run, 2 = back-pressure run
    image: int   # index into the stimulus images
    beat: int    # output beat in the frame == class index
    got: int
    expected: int


@dataclass
class Scoreboard:
    """In-order checker of output beats against the expected popcounts."""

    beats_per_frame: int
    expected: list[np.ndarray] = field(default_factory=list)  # one row of words per frame, in order
    tags: list[tuple[int, int]] = field(default_factory=list)  # (phase, image) per frame
    received: list[list[int]] = field(default_factory=list)
    beat: int = 0
    mismatch_count: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    tlast_errors: list[tuple[int, int, int, int]] = field(default_factory=list)  # (phase, image, beat, tlast)
    extra_beats: int = 0

    def expect(self, words: np.ndarray, phase: int, image: int) -> None:
        self.expected.append(words)
        self.tags.append((phase, image))

    @property
    def frames_done(self) -> int:
        return len(self.received) - (1 if self.beat else 0)

    def on_beat(self, word: int, tlast: bool) -> None:
        frame = len(self.received) - (1 if self.beat else 0)
        if frame >= len(self.expected):
            self.extra_beats += 1  # data the design invented
            return
        if self.beat == 0:
            self.received.append([])
        self.received[frame].append(word)
        want = int(self.expected[frame][self.beat])
        if word != want:
            self.mismatch_count += 1
            if len(self.mismatches) < MAX_REPORTED:
                self.mismatches.append(Mismatch(*self.tags[frame], self.beat, word, want))
        if tlast != (self.beat == self.beats_per_frame - 1):
            self.tlast_errors.append((*self.tags[frame], self.beat, int(tlast)))
        self.beat = (self.beat + 1) % self.beats_per_frame


class HandshakeMonitor:
    """Counts clock cycles and records both streams' handshakes.

    Samples at the falling edge: the drivers only change signals just after a rising
    edge, so mid-cycle values are exactly those the next rising edge will see, in every
    simulator, whatever the scheduling order of the coroutines at the rising edge.
    """

    def __init__(self, dut: SimHandleBase, manifest: Manifest, scoreboard: Scoreboard) -> None:
        self.dut = dut
        self.manifest = manifest
        self.scoreboard = scoreboard
        self.cycle = 0
        self.last_activity = 0
        self.in_beats = 0
        self.out_beats = 0
        self.in_stalls = 0   # cycles with s_axis_tvalid high and s_axis_tready low: back-pressure
        self.out_stalls = 0  # cycles with m_axis_tvalid high and m_axis_tready low
        self.in_frame_starts: list[int] = []   # cycle of the first beat of each input frame
        self.out_frame_starts: list[int] = []  # cycle of the first beat of each output frame
        self._task = cocotb.start_soon(self._run())

    def stop(self) -> None:
        self._task.cancel()

    async def _run(self) -> None:
        d = self.dut
        s_valid, s_ready = d.s_axis_tvalid, d.s_axis_tready
        m_valid, m_ready, m_data, m_last = d.m_axis_tvalid, d.m_axis_tready, d.m_axis_tdata, d.m_axis_tlast
        in_per_frame, out_per_frame = self.manifest.in_beats, self.manifest.out_beats
        edge = FallingEdge(d.ap_clk)
        while True:
            await edge
            self.cycle += 1
            if s_valid.value == 1:
                if s_ready.value != 1:
                    self.in_stalls += 1
                else:
                    if self.in_beats % in_per_frame == 0:
                        self.in_frame_starts.append(self.cycle)
                    self.in_beats += 1
                    self.last_activity = self.cycle
            if m_valid.value == 1:
                if m_ready.value != 1:
                    self.out_stalls += 1
                    continue
                if self.out_beats % out_per_frame == 0:
                    self.out_frame_starts.append(self.cycle)
                self.out_beats += 1
                self.last_activity = self.cycle
                self.scoreboard.on_beat(m_data.value.to_unsigned(), m_last.value == 1)


class AcceleratorTB:
    """Driver (AxiStreamSource), sink (AxiStreamSink), monitor and scoreboard around the top."""

    def __init__(self, dut: SimHandleBase, manifest: Manifest) -> None:
        self.dut = dut
        self.m = manifest
        for name in ("cocotb.fake_top", f"cocotb.{manifest.top}"):
            logging.getLogger(name).setLevel(logging.WARNING)  # cocotbext-axi logs every frame at INFO
        self.source = AxiStreamSource(
            AxiStreamBus.from_prefix(dut, "s_axis"), dut.ap_clk, dut.ap_rst_n, reset_active_level=False
        )
        # One "byte" per output word: the sink then hands back whole words.
        self.sink = AxiStreamSink(
            AxiStreamBus.from_prefix(dut, "m_axis"), dut.ap_clk, dut.ap_rst_n,
            reset_active_level=False, byte_size=manifest.out_bits,
        )
        for obj in (self.source, self.sink):
            obj.log.setLevel(logging.WARNING)
        self.scoreboard = Scoreboard(manifest.out_beats)
        self.monitor: HandshakeMonitor | None = None

    async def reset(self) -> None:
        period_ns = 1000.0 / self.m.clock_mhz
        Clock(self.dut.ap_clk, period_ns, unit="ns").start()
        self.dut.s_axis_tvalid.value = 0
        self.dut.m_axis_tready.value = 0
        self.dut.ap_rst_n.value = 0
        await ClockCycles(self.dut.ap_clk, 4)
        self.dut.ap_rst_n.value = 1
        await RisingEdge(self.dut.ap_clk)
        self.monitor = HandshakeMonitor(self.dut, self.m, self.scoreboard)

    def send(self, frame_bytes: np.ndarray, expected: np.ndarray, phase: int, image: int) -> None:
        self.scoreboard.expect(expected, phase, image)
        self.source.send_nowait(AxiStreamFrame(bytes(frame_bytes)))

    async def wait_outputs(self, frames: int) -> None:
        """Wait until ``frames`` frames came out; fail if both streams stay idle too long."""
        assert self.monitor is not None
        m = self.m
        idle_limit = 4 * (m.latency + m.initiation_interval + m.in_beats + m.out_beats) + 1000
        while self.scoreboard.frames_done < frames:
            await ClockCycles(self.dut.ap_clk, 32)
            self.sink.clear()  # words are checked by the monitor; do not hoard them
            idle = self.monitor.cycle - self.monitor.last_activity
            if idle > idle_limit:
                raise AssertionError(
                    f"design stalled: no handshake for {idle} cycles with {self.scoreboard.frames_done} of "
                    f"{frames} frames out ({self.monitor.in_beats} input beats accepted)"
                )

    async def drain(self) -> None:
        """Run on with nothing sent: a correct design emits nothing more (no duplicated data)."""
        await ClockCycles(self.dut.ap_clk, 2 * (self.m.latency + self.m.initiation_interval) + 16)


@cocotb.test()
async def accelerator(dut: SimHandleBase) -> None:
    cfg = TbConfig.load()
    m = load_manifest(cfg.build_dir)
    data = np.load(cfg.stimulus)
    images, expected = data["images"], data["expected"]
    frames = pack_frames(m, images)
    n = len(images)
    result: dict[str, Any] = {"error": None}
    tb = AcceleratorTB(dut, m)
    try:
        await tb.reset()
        assert tb.monitor is not None

        # Phase 1: back to back, no pauses.
        k = max(3, cfg.timing_frames)
        for i in range(k):
            tb.send(frames[i % n], expected[i % n], 1, i % n)
        await tb.wait_outputs(k)
        starts_in, starts_out = tb.monitor.in_frame_starts, tb.monitor.out_frame_starts
        diffs = [b - a for a, b in zip(starts_out[:k], starts_out[1:k], strict=False)]
        result["latency"] = starts_out[0] - starts_in[0]
        result["ii_samples"] = diffs
        result["initiation_interval"] = diffs[-1]  # steady state: the pipeline has filled by the last frame
        result["timing_cycles"] = tb.monitor.cycle
        await tb.drain()

        # Phase 2: every image under random pauses on both streams.
        rng = random.Random(cfg.seed)
        if cfg.stall_in > 0:
            tb.source.set_pause_generator(random_pauses(random.Random(rng.random()), cfg.stall_in))
        if cfg.stall_out > 0:
            tb.sink.set_pause_generator(random_pauses(random.Random(rng.random()), cfg.stall_out))
        for i in range(n):
            tb.send(frames[i], expected[i], 2, i)
        await tb.wait_outputs(k + n)
        tb.source.clear_pause_generator()
        tb.sink.clear_pause_generator()
        tb.sink.pause = False
        await tb.drain()
    except AssertionError as e:
        result["error"] = str(e)
    finally:
        sb = tb.scoreboard
        if tb.monitor is not None:
            tb.monitor.stop()
            result["cycles"] = tb.monitor.cycle
            result["in_stall_cycles"] = tb.monitor.in_stalls
            result["out_stall_cycles"] = tb.monitor.out_stalls
        received = sb.received[k:] if "latency" in result else []
        outputs = np.full((n, m.classes), -1, dtype=np.int64)  # -1: never received
        for i, words in enumerate(received[:n]):
            outputs[i, : len(words)] = words
        np.save(cfg.outputs, outputs)
        result.update(
            mismatch_count=sb.mismatch_count,
            mismatches=[asdict(x) for x in sb.mismatches],
            tlast_errors=[list(t) for t in sb.tlast_errors],
            extra_beats=sb.extra_beats,
            frames_out=sb.frames_done,
        )
        Path(cfg.result).write_text(json.dumps(result, indent=1))

    assert result["error"] is None, result["error"]
    assert sb.mismatch_count == 0, f"{sb.mismatch_count} output words differ, first: {sb.mismatches[:5]}"
    assert not sb.tlast_errors, f"tlast wrong on {len(sb.tlast_errors)} beats, first: {sb.tlast_errors[:5]}"
    assert sb.extra_beats == 0, f"design emitted {sb.extra_beats} beats beyond the last frame"
