"""The cocotb flow (runner + testbench) on the fake accelerator, Verilator and Icarus."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bnn2fpga.contract.manifest import Manifest, load_manifest
from bnn2fpga.sim.runner import SimulationError, run_cocotb

from .fake import fake_expected, mutate, random_images

N_IMAGES = 40


@pytest.fixture(scope="module")
def verilator_run(fake_manifest: Manifest):  # type: ignore[no-untyped-def]
    images = random_images(fake_manifest, N_IMAGES, seed=3)
    expected = fake_expected(fake_manifest, images)
    return images, expected, run_cocotb(fake_manifest.build_dir, images, expected, seed=7)


def test_verilator_bit_exact_under_backpressure(verilator_run) -> None:  # type: ignore[no-untyped-def]
    _, expected, res = verilator_run
    assert res.bit_exact, (res.error, res.mismatches[:3], res.tlast_errors[:3])
    assert np.array_equal(res.outputs, expected)
    # The random pauses really did push back through the design's FIFO to its input.
    assert res.in_stall_cycles > 0 and res.out_stall_cycles > 0


def test_verilator_cycles_equal_manifest(verilator_run, fake_manifest: Manifest) -> None:  # type: ignore[no-untyped-def]
    _, _, res = verilator_run
    assert (res.latency, res.initiation_interval) == (fake_manifest.latency, fake_manifest.initiation_interval)
    assert res.cycles_ok and res.passed
    assert set(res.ii_samples) == {fake_manifest.initiation_interval}  # steady from the first frame


def test_cached_build_reused_and_wrong_expectation_reported(fake_manifest: Manifest) -> None:
    images = random_images(fake_manifest, 4, seed=5)
    expected = fake_expected(fake_manifest, images)
    expected[2, 6] += 1
    res = run_cocotb(fake_manifest.build_dir, images, expected, seed=2, timing_frames=3)
    assert res.build_time_s == 0.0
    # Image 2 goes through both the timing run (3 frames) and the back-pressure run.
    assert [(m.phase, m.image, m.beat) for m in res.mismatches] == [(1, 2, 6), (2, 2, 6)]
    assert res.mismatch_count == 2 and not res.passed
    assert res.outputs[2, 6] == expected[2, 6] - 1


def test_icarus_short_run(fake_manifest: Manifest) -> None:
    images = random_images(fake_manifest, 3, seed=11)
    expected = fake_expected(fake_manifest, images)
    res = run_cocotb(fake_manifest.build_dir, images, expected, simulator="icarus", timing_frames=4)
    assert res.simulator == "icarus"
    assert res.passed, (res.error, res.mismatches, res.latency, res.initiation_interval)
    assert np.array_equal(res.outputs, expected)


def test_icarus_catches_wrong_tlast(tmp_path: Path, fake_build: Path) -> None:
    build = mutate(fake_build, tmp_path / "b", "{ocnt == 1, obuf[15:0]}", "{ocnt == 2, obuf[15:0]}")
    m = load_manifest(build)
    images = random_images(m, 2)
    res = run_cocotb(build, images, fake_expected(m, images), simulator="icarus", timing_frames=3)
    assert res.mismatch_count == 0 and not res.bit_exact
    # tlast one beat early: set on beat 8, missing on beat 9, in every frame of both phases.
    assert {(b, t) for _, _, b, t in res.tlast_errors} == {(8, 1), (9, 0)}
    assert len(res.tlast_errors) == 2 * (3 + 2)


def test_unlisted_missing_memory_is_detected_in_the_log(tmp_path: Path, fake_build: Path) -> None:
    build = tmp_path / "b"
    shutil.copytree(fake_build, build, ignore=shutil.ignore_patterns("sim_build"))
    raw = json.loads((build / "manifest.json").read_text())
    raw["memories"] = []  # the manifest forgets the file, so only the simulator can notice
    (build / "manifest.json").write_text(json.dumps(raw))
    (build / "fake_weights.mem").unlink()
    m = load_manifest(build)
    images = random_images(m, 1)
    with pytest.raises(SimulationError, match=r"memory file was not loaded.*fake_weights\.mem"):
        run_cocotb(build, images, np.zeros((1, 10), dtype=np.int64), simulator="icarus", timing_frames=3)


def test_bad_inputs_rejected_before_building(fake_manifest: Manifest) -> None:
    images = random_images(fake_manifest, 2)
    with pytest.raises(ValueError, match=r"expected must have shape \(2, 10\), not \(2, 9\)"):
        run_cocotb(fake_manifest.build_dir, images, np.zeros((2, 9), dtype=np.int64))
