"""A stand-in for PYNQ on a board: ``Overlay``, ``allocate`` and an AXI DMA that behaves as PG021 says,
with the build's accelerator behind it simulated by Verilator, bit for bit and tlast for tlast.

What the DMA does, and so what a driver must cope with:

* the channels are started when the overlay is loaded (PYNQ's DMA driver does so);
* ``transfer`` refuses a buffer larger than ``buffer_max_size`` (PYNQ's check, ``2**c_sg_length_width``)
  or a channel that is busy or halted; the length register keeps only ``c_sg_length_width`` bits, so a
  buffer of exactly ``2**width`` bytes programs a length of 0, which PG021 answers with an internal
  error (DMAIntErr) and a halted channel, as it does any zero length;
* MM2S streams the buffer as one packet: beats of ``host_beat_bytes``, ``tlast`` on the last one; the
  block design's subset converter keeps each beat's low ``pixels_per_beat`` bytes;
* S2MM ends a transfer at the first ``tlast`` it receives and its length register (0x58) then holds
  the bytes received; a packet longer than the buffer is an internal error that halts the channel;
  output not yet received stays in the accelerator, which holds at most ``capacity_frames`` frames of
  scores before it stops taking input, after which MM2S cannot finish;
* ``wait`` spins until the channel is idle, as PYNQ's does: here, where nothing else can happen, a
  wait that could never end raises :class:`WouldHang` instead;
* a soft reset (bit 2 of either control register) resets both channels, halting them, and, through
  the stream reset the block design wires to it, empties the accelerator.
"""

from __future__ import annotations

import json
import types
from collections import deque
from pathlib import Path

import numpy as np

from bnn2fpga.sim import bulk

MM2S_DMACR, MM2S_DMASR, MM2S_LENGTH = 0x00, 0x04, 0x28
S2MM_DMACR, S2MM_DMASR, S2MM_LENGTH = 0x30, 0x34, 0x58
RUN, RESET = 1 << 0, 1 << 2
HALTED, IDLE, INTERNAL_ERROR = 1 << 0, 1 << 1, 1 << 4


class WouldHang(AssertionError):
    """PYNQ's ``wait()`` would spin forever here."""


class Buffer(np.ndarray):
    """What ``pynq.allocate`` returns: an ndarray that must be freed."""

    freed: bool

    def freebuffer(self) -> None:
        self.freed = True


class _Channel:
    def __init__(self, dma: StandInDma, name: str) -> None:
        self.dma, self.name = dma, name
        self.halted, self.busy, self.error = True, False, False
        self.length = 0
        self.transfers = 0
        self.buffer: np.ndarray | None = None

    @property
    def running(self) -> bool:
        return not self.halted

    @property
    def idle(self) -> bool:
        self.dma.settle()
        return not self.halted and not self.busy

    def start(self) -> None:
        self.halted, self.error = False, False

    def stop(self) -> None:
        self.halted, self.busy = True, False

    def status(self) -> int:
        return (HALTED * self.halted) | (IDLE * (not self.halted and not self.busy)) | (INTERNAL_ERROR * self.error)

    def transfer(self, array: np.ndarray) -> None:
        if array.nbytes > self.dma.buffer_max_size:
            raise ValueError(f"Transferred array is {array.nbytes} bytes, which exceeds the maximum DMA buffer "
                             f"size {self.dma.buffer_max_size}.")
        if self.halted:
            raise RuntimeError("DMA channel not started")
        if self.busy:
            raise RuntimeError("DMA channel not idle")
        self.transfers += 1
        self.length = array.nbytes & ((1 << self.dma.length_width) - 1)  # the register's width
        if self.length == 0:
            self.halted, self.error = True, True
            return
        self.buffer, self.busy = array, True
        self.started()
        self.dma.settle()

    def started(self) -> None:
        raise NotImplementedError

    def wait(self) -> None:
        if self.halted:
            raise RuntimeError("DMA channel not started")
        if not self.idle:
            raise WouldHang(f"{self.name}: PYNQ's wait() would spin forever ({self.dma.why_stuck()})")


class _Mm2s(_Channel):
    def started(self) -> None:
        assert self.buffer is not None
        self.dma.accept(np.asarray(self.buffer, dtype=np.uint8).reshape(-1)[: self.length])


class _S2mm(_Channel):
    received = 0

    def started(self) -> None:
        self.received = 0


class _Mmio:
    def __init__(self, dma: StandInDma) -> None:
        self.dma = dma

    def read(self, offset: int) -> int:
        d = self.dma
        d.settle()
        registers = {
            MM2S_DMACR: RUN * d.sendchannel.running, S2MM_DMACR: RUN * d.recvchannel.running,
            MM2S_DMASR: d.sendchannel.status(), S2MM_DMASR: d.recvchannel.status(),
            MM2S_LENGTH: d.sendchannel.length, S2MM_LENGTH: d.recvchannel.received,
        }
        if offset not in registers:
            raise AssertionError(f"the stand-in DMA has no register at 0x{offset:02x}")
        return registers[offset]

    def write(self, offset: int, value: int) -> None:
        if offset in (MM2S_DMACR, S2MM_DMACR) and value & RESET:
            self.dma.soft_reset()
        elif offset in (MM2S_DMACR, S2MM_DMACR):
            channel = self.dma.sendchannel if offset == MM2S_DMACR else self.dma.recvchannel
            if value & RUN:
                channel.start()
            else:
                channel.stop()
        else:
            raise AssertionError(f"the stand-in DMA does not model writes to 0x{offset:02x}")


class StandInDma:
    """PYNQ's ``DMA`` object for the build's overlay (see the module docstring)."""

    def __init__(self, build: Path, *, length_width: int = 26, capacity_frames: int = 1) -> None:
        self.build = build
        self.manifest = json.loads((build / "manifest.json").read_text())
        self.length_width = length_width
        self.buffer_max_size = 1 << length_width  # PYNQ's reading of c_sg_length_width
        self.capacity_frames = capacity_frames
        self.mmio = _Mmio(self)
        self.sendchannel, self.recvchannel = _Mm2s(self, "MM2S"), _S2mm(self, "S2MM")
        self.pending: deque[tuple[int, bool]] = deque()  # scores out of the accelerator, not yet received
        self.stall = False  # fault injection: the accelerator takes no input until reset
        self.resets = 0
        self.packets = 0
        self.sendchannel.start()
        self.recvchannel.start()

    def accept(self, sent: np.ndarray) -> None:
        """One MM2S packet into the accelerator: its scores join ``pending``."""
        if self.stall:
            return
        inp = self.manifest["input"]
        width, ppb, beats = inp["host_beat_bytes"], inp["pixels_per_beat"], inp["beats_per_frame"]
        assert sent.size % width == 0, "the driver sent a partial beat"
        kept = sent.reshape(-1, width)[:, :ppb]  # what the subset converter passes on
        frames = -(-len(kept) // beats)
        padded = np.zeros((frames * beats, ppb), dtype=np.uint8)  # a short packet: zero pixels (contract)
        padded[: len(kept)] = kept
        result = bulk.run_frames(self.build, padded.reshape(frames, beats * ppb), frames_per_packet=frames)
        assert result.protocol_ok, "the accelerator broke the stream protocol"
        self.packets += 1
        self.pending.extend(zip(result.outputs.reshape(-1).tolist(), result.lasts.reshape(-1).tolist(),
                                strict=True))

    def settle(self) -> None:
        """Move what can move: scores into an S2MM transfer, and MM2S to done once the accelerator
        has taken all its beats."""
        recv = self.recvchannel
        while recv.busy and self.pending:
            word, last = self.pending[0]
            if recv.received + 4 > recv.length:  # the packet is longer than the buffer
                recv.halted, recv.busy, recv.error = True, False, True
                break
            self.pending.popleft()
            assert recv.buffer is not None
            recv.buffer.reshape(-1).view(np.uint32)[recv.received // 4] = word
            recv.received += 4
            if last:
                recv.busy = False
        send = self.sendchannel
        if send.busy and not self.stall and self.held_frames() <= self.capacity_frames:
            send.busy = False

    def held_frames(self) -> int:
        return -(-len(self.pending) // self.manifest["output"]["beats_per_frame"])

    def why_stuck(self) -> str:
        if self.stall:
            return "the accelerator takes no input"
        if self.recvchannel.error:
            return "S2MM halted on an internal error"
        return f"{self.held_frames()} frames of scores wait in the accelerator with no receive transfer for them"

    def soft_reset(self) -> None:
        self.resets += 1
        for channel in (self.sendchannel, self.recvchannel):
            channel.halted, channel.busy, channel.error, channel.length = True, False, False, 0
        self.recvchannel.received = 0
        self.pending.clear()
        self.stall = False


def fake_pynq(build: Path, **dma_options: object) -> types.ModuleType:
    """A ``pynq`` module whose ``Overlay`` has the stand-in DMA as ``overlay.dma``; the module's
    ``overlays`` list and ``buffers`` list record what was made."""
    module = types.ModuleType("pynq")
    overlays: list[object] = []
    buffers: list[Buffer] = []

    class Overlay:
        def __init__(self, bitfile: str) -> None:
            assert bitfile.endswith(".bit")
            self.dma = StandInDma(build, **dma_options)  # type: ignore[arg-type]
            overlays.append(self)

    def allocate(shape: tuple[int, ...], dtype: type) -> Buffer:
        buffer = np.zeros(shape, dtype=dtype).view(Buffer)
        buffer.freed = False
        buffers.append(buffer)
        return buffer

    module.Overlay, module.allocate = Overlay, allocate  # type: ignore[attr-defined]
    module.overlays, module.buffers = overlays, buffers  # type: ignore[attr-defined]
    return module
