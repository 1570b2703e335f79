"""The generated PYNQ driver, run against the Verilator model of its own build.

The board's overlay is stood in for by a thin adapter with PYNQ's interface (``Overlay``, ``allocate``,
a DMA with ``sendchannel``/``recvchannel``). Its DMA does what the block design in ``vivado.tcl`` does
to the bytes: beats of ``host_beat_bytes`` go out, the subset converter keeps each beat's low
``pixels_per_beat`` bytes, the accelerator (simulated by Verilator, bit for bit) returns one 32-bit word
per class. The driver's own packing, buffer sizes and prediction are what is tested.
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


class _Buffer(np.ndarray):
    def freebuffer(self) -> None:
        pass


class _Channel:
    def __init__(self, dma: _Dma) -> None:
        self.dma, self.buffer = dma, None

    def transfer(self, buffer: np.ndarray) -> None:
        self.buffer = buffer

    def wait(self) -> None:
        self.dma.run()


class _Dma:
    """MM2S beats -> subset converter -> accelerator (Verilator) -> S2MM words."""

    def __init__(self, build: Path) -> None:
        self.build = build
        self.manifest = json.loads((build / "manifest.json").read_text())
        self.sendchannel, self.recvchannel = _Channel(self), _Channel(self)
        self.done = False

    def run(self) -> None:
        if self.done or self.sendchannel.buffer is None or self.recvchannel.buffer is None:
            return
        inp = self.manifest["input"]
        sent = np.asarray(self.sendchannel.buffer, dtype=np.uint8)
        width, ppb, beats = inp["host_beat_bytes"], inp["pixels_per_beat"], inp["beats_per_frame"]
        assert sent.size % (width * beats) == 0, "the driver sent a partial frame"
        kept = sent.reshape(-1, width)[:, :ppb]  # what the subset converter passes on
        frames = kept.reshape(-1, beats * ppb)
        result = bulk.run_frames(self.build, frames)
        assert result.protocol_ok
        out = self.recvchannel.buffer
        assert out.dtype == np.uint32 and out.size == result.outputs.size, "receive buffer of the wrong size"
        out[:] = result.outputs.reshape(-1)
        self.done = True


def _fake_pynq(build: Path) -> types.ModuleType:
    module = types.ModuleType("pynq")

    class Overlay:
        def __init__(self, bitfile: str) -> None:
            assert bitfile.endswith(".bit")
            self.dma = _Dma(build)

    def allocate(shape: tuple[int, ...], dtype: type) -> _Buffer:
        return np.zeros(shape, dtype=dtype).view(_Buffer)

    module.Overlay, module.allocate = Overlay, allocate  # type: ignore[attr-defined]
    return module


def _driver(build: Path, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    monkeypatch.setitem(sys.modules, "pynq", _fake_pynq(build))
    spec = importlib.util.spec_from_file_location(f"driver_{build.name}", build / "driver.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CASES = {
    # dense, 7 pixels per beat: the DMA's 8-byte beats carry one byte of padding each
    "dense-padded-beats": (dict(name="tfc", widths=[37, 13, 7], planes=[4, 6, 7]), "fashion-mnist",
                           ("--folding", "ppb7")),
    # conv on 32x32x3: one 3-byte pixel per beat, padded to 4
    "conv-rgb": (dict(name="cnv", channels=3, height=32, width=32, width_multiplier=0.0625, encoding="integer"),
                 "fashion-mnist-32rgb", ()),
}


@pytest.mark.parametrize("case", list(CASES))
def test_driver_predicts_what_the_reference_predicts(case: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    arch, dataset, extra = CASES[case]
    name = arch.pop("name") if "name" in arch else None
    ckpt_path = tmp_path / "net.pt"
    random_checkpoint(name, dataset=dataset, **arch).save(ckpt_path)
    arch["name"] = name
    build = tmp_path / "build"
    if extra == ("--folding", "ppb7"):
        assert main(["build", str(ckpt_path), "--no-synth", "--quiet", "--target-fps", "20000",
                     "--out", str(tmp_path / "probe")]) == 0
        folding = json.loads((tmp_path / "probe" / "folding.json").read_text())
        folding["pixels_per_beat"] = 7
        (tmp_path / "folding.json").write_text(json.dumps(folding))
        extra = ("--folding", str(tmp_path / "folding.json"))
    assert main(["build", str(ckpt_path), "--no-synth", "--quiet", "--out", str(build), *extra]) == 0
    manifest = json.loads((build / "manifest.json").read_text())
    width = manifest["input"]["host_beat_bytes"]
    assert width & (width - 1) == 0 and width >= manifest["input"]["pixels_per_beat"]
    assert width > manifest["input"]["pixels_per_beat"]  # both cases exercise the padding
    driver = _driver(build, monkeypatch)
    test = data.load(dataset).test
    images = test.images[:40]
    accelerator = driver.Accelerator()
    hwc = np.ascontiguousarray(images.transpose(0, 2, 3, 1))
    popcounts = accelerator.popcounts(hwc)
    ref = reference.run(lower(load(ckpt_path)), images)
    assert np.array_equal(popcounts, ref.popcounts)
    assert np.array_equal(driver.predict(popcounts), ref.predictions)
    with pytest.raises(ValueError, match="uint8"):
        driver.pack_frames(hwc.astype(np.int16))
