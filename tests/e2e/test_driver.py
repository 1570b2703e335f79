"""The generated PYNQ driver, run against the Verilator model of its own build behind a stand-in DMA.

The board's overlay is stood in for by ``pynq_standin``: PYNQ's interface (``Overlay``, ``allocate``,
a DMA with ``sendchannel``/``recvchannel`` and its registers) over a DMA that behaves as PG021 says
(S2MM ends at the first tlast, length registers of ``c_sg_length_width`` bits, soft reset), feeding the
accelerator simulated by Verilator bit for bit and tlast for tlast. The driver's packing, batching,
length checks, timeout and reset are what is tested.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from bnn2fpga import data, reference
from bnn2fpga.checkpoint import load
from bnn2fpga.cli import main
from bnn2fpga.ir.pipeline import lower
from bnn2fpga.sim import bulk
from tests.conftest import random_checkpoint

from .pynq_standin import RESET, S2MM_LENGTH, WouldHang, fake_pynq


def _driver(build: Path, monkeypatch: pytest.MonkeyPatch, **dma_options: object) -> tuple[types.ModuleType,
                                                                                          types.ModuleType]:
    """The build's driver.py, imported with the stand-in as ``pynq``; and the stand-in module."""
    pynq = fake_pynq(build, **dma_options)
    monkeypatch.setitem(sys.modules, "pynq", pynq)
    spec = importlib.util.spec_from_file_location(f"driver_{build.name}", build / "driver.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, pynq


CASES = {
    # dense, 7 pixels per beat: the DMA's 8-byte beats carry one byte of padding each
    "dense-padded-beats": (dict(name="tfc", widths=[37, 13, 7], planes=[4, 6, 7]), "fashion-mnist",
                           ("--folding", "ppb7")),
    # conv on 32x32x3: one 3-byte pixel per beat, padded to 4
    "conv-rgb": (dict(name="cnv", channels=3, height=32, width=32, width_multiplier=0.0625, encoding="integer"),
                 "fashion-mnist-32rgb", ()),
}


@pytest.fixture(scope="module", params=list(CASES))
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(checkpoint, build folder, dataset) of one case, built once for the module's tests."""
    arch, dataset, extra = CASES[request.param]
    arch = dict(arch)
    name = arch.pop("name", None)
    tmp = tmp_path_factory.mktemp(request.param)
    ckpt_path = tmp / "net.pt"
    random_checkpoint(name, dataset=dataset, **arch).save(ckpt_path)
    build = tmp / "build"
    if extra == ("--folding", "ppb7"):
        assert main(["build", str(ckpt_path), "--no-synth", "--quiet", "--target-fps", "20000",
                     "--out", str(tmp / "probe")]) == 0
        folding = json.loads((tmp / "probe" / "folding.json").read_text())
        folding["pixels_per_beat"] = 7
        (tmp / "folding.json").write_text(json.dumps(folding))
        extra = ("--folding", str(tmp / "folding.json"))
    assert main(["build", str(ckpt_path), "--no-synth", "--quiet", "--out", str(build), *extra]) == 0
    manifest = json.loads((build / "manifest.json").read_text())
    width = manifest["input"]["host_beat_bytes"]
    assert width & (width - 1) == 0 and width > manifest["input"]["pixels_per_beat"]  # both cases pad beats
    return ckpt_path, build, dataset


def _images(dataset: str, n: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(N, C, H, W) test images and the same in the driver's (N, H, W, C)."""
    images = data.load(dataset).test.images[offset:offset + n]
    return images, np.ascontiguousarray(images.transpose(0, 2, 3, 1))


def test_batches_of_1_2_and_37_come_back_whole_and_exact(built: tuple[Path, Path, str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt_path, build, dataset = built
    driver, pynq = _driver(build, monkeypatch)
    accelerator = driver.Accelerator()
    dma = accelerator.dma
    offset = 0
    for n in (1, 2, 37):
        images, hwc = _images(dataset, n, offset)
        offset += n
        before = dma.sendchannel.transfers
        popcounts = accelerator.popcounts(hwc)
        assert dma.sendchannel.transfers - before == 1  # the whole batch is one packet each way
        ref = reference.run(lower(load(ckpt_path)), images)
        assert np.array_equal(popcounts, ref.popcounts), n
        assert np.array_equal(driver.predict(popcounts), ref.predictions)
        assert not dma.pending and dma.mmio.read(S2MM_LENGTH) == n * 4 * driver.CLASSES
    assert all(buffer.freed for buffer in pynq.buffers) and dma.resets == 0
    with pytest.raises(ValueError, match="uint8"):
        driver.pack_frames(hwc.astype(np.int16))


def test_a_batch_larger_than_one_transfer_is_split(built: tuple[Path, Path, str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt_path, build, dataset = built
    manifest = json.loads((build / "manifest.json").read_text())
    frame_bytes = manifest["input"]["beats_per_frame"] * manifest["input"]["host_beat_bytes"]
    width = (3 * frame_bytes).bit_length()  # an overlay whose DMA moves 3 (or up to 5) frames a transfer
    driver, pynq = _driver(build, monkeypatch, length_width=width)
    accelerator = driver.Accelerator()
    per_transfer = ((1 << width) - 1) // frame_bytes
    assert accelerator.max_frames == per_transfer and 3 <= per_transfer < 37
    images, hwc = _images(dataset, 37)
    popcounts = accelerator.popcounts(hwc)
    assert accelerator.dma.sendchannel.transfers == -(-37 // per_transfer)
    assert np.array_equal(popcounts, reference.run(lower(load(ckpt_path)), images).popcounts)
    assert all(buffer.freed for buffer in pynq.buffers)
    # No batch, no transfer.
    empty = accelerator.popcounts(hwc[:0])
    assert empty.shape == (0, driver.CLASSES) and accelerator.dma.sendchannel.transfers == -(-37 // per_transfer)
    assert accelerator.classify(hwc[:0]).shape == (0,)


def test_a_stuck_transfer_times_out_resets_and_the_next_call_is_exact(built: tuple[Path, Path, str],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt_path, build, dataset = built
    driver, pynq = _driver(build, monkeypatch)
    accelerator = driver.Accelerator(timeout_s=0.2)
    images, hwc = _images(dataset, 5)
    accelerator.dma.stall = True  # the accelerator stops taking input, as a hung pipeline would
    with pytest.raises(driver.AcceleratorError, match="took longer than 0.2 s; the DMA and the accelerator were reset"):
        accelerator.popcounts(hwc)
    assert accelerator.dma.resets == 1 and all(buffer.freed for buffer in pynq.buffers)
    assert np.array_equal(accelerator.popcounts(hwc), reference.run(lower(load(ckpt_path)), images).popcounts)


def test_the_standin_dma_ends_a_receive_at_the_first_tlast(built: tuple[Path, Path, str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """What made one-transfer-per-batch drivers fail on boards: a receive for two frames whose scores
    arrive as two packets stops after the first (PG021), and the rest waits in the accelerator."""
    _, build, dataset = built
    driver, pynq = _driver(build, monkeypatch)
    dma = pynq.Overlay("x.bit").dma
    frames = driver.pack_frames(_images(dataset, 3)[1])
    dst = pynq.allocate(shape=(2 * driver.CLASSES,), dtype=np.uint32)
    dst[:] = 0xDEAD
    dma.recvchannel.transfer(dst)
    for k in range(3):  # three one-frame packets
        src = pynq.allocate(shape=(driver.FRAME_BYTES,), dtype=np.uint8)
        src[:] = frames[k]
        if k < 2:
            dma.sendchannel.transfer(src)
            dma.sendchannel.wait()
    assert dma.recvchannel.idle and dma.mmio.read(S2MM_LENGTH) == 4 * driver.CLASSES
    assert (dst[driver.CLASSES:] == 0xDEAD).all()  # the second row was never written
    dma.sendchannel.transfer(src)  # a third frame while the second's scores are still held
    with pytest.raises(WouldHang, match="2 frames of scores wait in the accelerator"):
        dma.sendchannel.wait()
    dma.mmio.write(0x00, RESET)
    assert not dma.pending and not dma.sendchannel.running


def test_the_standin_dma_rejects_a_length_its_register_cannot_hold(built: tuple[Path, Path, str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _, build, _ = built
    driver, pynq = _driver(build, monkeypatch, length_width=10)
    dma = pynq.Overlay("x.bit").dma
    dma.sendchannel.transfer(pynq.allocate(shape=(1024,), dtype=np.uint8))  # PYNQ allows 2**10 bytes ...
    assert dma.sendchannel.error and not dma.sendchannel.running  # ... which the register reads as 0
    with pytest.raises(ValueError, match="exceeds the maximum DMA buffer size"):
        dma.recvchannel.transfer(pynq.allocate(shape=(1025,), dtype=np.uint8))


def test_packets_survive_random_back_pressure(built: tuple[Path, Path, str]) -> None:
    """Batches of 4 frames (the last one 3) under random tvalid/tready pauses: scores exact, tlast on
    the last class of each batch only (the harness counts any other as a protocol error)."""
    ckpt_path, build, dataset = built
    images, hwc = _images(dataset, 15)
    manifest = json.loads((build / "manifest.json").read_text())
    ppb = manifest["input"]["pixels_per_beat"]
    beats = manifest["input"]["beats_per_frame"]
    frames = np.zeros((15, beats * ppb), dtype=np.uint8)
    frames[:, : hwc[0].size] = hwc.reshape(15, -1)
    result = bulk.run_frames(build, frames, frames_per_packet=4, stall_in=0.3, stall_out=0.3, seed=4)
    assert result.protocol_ok
    assert np.array_equal(result.outputs, reference.run(lower(load(ckpt_path)), images).popcounts)
    ends = np.zeros_like(result.lasts)
    ends[[3, 7, 11, 14], -1] = True
    assert np.array_equal(result.lasts, ends)
