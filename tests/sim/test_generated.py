"""Integration: the RTL generator's real bundle (bnn2fpga.hw) through the simulation tooling.

Writes the manifest the way the compiler will (docs/architecture.md, build folder) from ``manifest_entries`` and
``timing.predict``, then checks cocotb + Verilator and the C++ harness against a small
numpy model of the layer chain: bit-exact, and measured cycles equal to the prediction.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bnn2fpga.sim import bulk
from bnn2fpga.sim.runner import run_cocotb

hw_generate = pytest.importorskip("bnn2fpga.hw.generate")
hw_spec = pytest.importorskip("bnn2fpga.hw.spec")
hw_timing = pytest.importorskip("bnn2fpga.hw.timing")

H, W, C, PLANES, PPB = 4, 6, 1, (5, 6, 7), 4


def _spec(rng: np.random.Generator):  # type: ignore[no-untyped-def]
    dims = [(H * W * C * len(PLANES), 20, 4, 27), (20, 13, 5, 6), (13, 10, 3, 7)]  # (mw, mh, pe, simd)
    layers = []
    for k, (mw, mh, pe, simd) in enumerate(dims):
        weights = rng.integers(0, 2, (mh, mw), dtype=np.uint8)
        thresholds = None if k == len(dims) - 1 else rng.integers(mw // 2 - 3, mw // 2 + 4, mh)
        layers.append(hw_spec.DenseLayerSpec(f"fc{k}", weights, thresholds, pe, simd))
    return hw_spec.AcceleratorSpec("gen", C, H * W * C, PLANES, PPB, tuple(layers))


def _model(spec, image: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    px = image.reshape(-1)
    x = ((px[:, None] >> np.array(PLANES)[None, :]) & 1).reshape(-1)  # bit s*P + i = pixel_s[planes[i]]
    for layer in spec.layers:
        pc = (layer.weights == x[None, :]).sum(axis=1)
        x = pc if layer.thresholds is None else (pc >= layer.thresholds).astype(np.uint8)
    return x


def _write_build(spec, build: Path) -> None:  # type: ignore[no-untyped-def]
    build.mkdir(parents=True)
    for name, content in hw_generate.generate(spec).items():
        (build / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    entries = hw_generate.manifest_entries(spec)
    timing = hw_timing.predict(spec)
    out = spec.layers[-1]
    manifest = {
        "format": "bnn2fpga-build/1", "top": entries["top"], "board": "pynq-z2", "part": "xc7z020clg400-1",
        "clock_mhz": 100,
        "input": {"tdata_bits": 8 * PPB, "pixels_per_beat": PPB, "beats_per_frame": spec.input_beats,
                  "samples_per_frame": H * W * C, "shape": [H, W, C], "order": "HWC", "pixel_bits": 8},
        "output": {"tdata_bits": 32, "beats_per_frame": spec.classes, "signed": False,
                   "logit_table": [[float(pc) for pc in range(out.mw + 1)] for _ in range(spec.classes)]},
        "cycles": {"initiation_interval": timing.initiation_interval, "latency": timing.latency},
        "layers": [{"name": la.name, "kind": "output" if la.is_output else "dense", "mh": la.mh, "mw": la.mw,
                    "pe": la.pe, "simd": la.simd, "cycles": la.cycles} for la in spec.layers],
        "sources": entries["sources"], "memories": entries["memories"],
    }
    (build / "manifest.json").write_text(json.dumps(manifest, indent=1))


@pytest.mark.slow
def test_generated_bundle_cocotb_and_harness(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    spec = _spec(rng)
    build = tmp_path / "build"
    _write_build(spec, build)
    images = rng.integers(0, 256, (30, H, W, C), dtype=np.uint8)
    expected = np.array([_model(spec, im) for im in images])

    res = run_cocotb(build, images, expected)
    assert res.passed, (res.error, res.mismatches[:3], res.latency, res.initiation_interval)
    assert res.in_stall_cycles > 0

    many = np.repeat(images, 40, axis=0)
    fast = bulk.run(build, many)
    assert len(fast.mismatches(np.repeat(expected, 40, axis=0))) == 0
    assert fast.protocol_ok and fast.cycles_ok
