"""The Verilator C++ harness (bulk.run) on the fake accelerator."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bnn2fpga.contract.manifest import Manifest, load_manifest
from bnn2fpga.sim import bulk

from .fake import fake_expected, mutate, random_images


def test_bulk_bit_exact_timed_and_fast(fake_manifest: Manifest) -> None:
    images = random_images(fake_manifest, 20_000, seed=1)
    res = bulk.run(fake_manifest.build_dir, images)
    assert np.array_equal(res.outputs, fake_expected(fake_manifest, images))
    assert res.protocol_ok
    assert (res.latency, res.initiation_interval) == (fake_manifest.latency, fake_manifest.initiation_interval)
    assert set(res.ii_tail) == {fake_manifest.initiation_interval}
    # Back to back at II cycles per frame, plus the first latency and the drain.
    assert res.cycles >= 20_000 * fake_manifest.initiation_interval
    assert res.cycles_per_second >= 500_000, res.cycles_per_second


def test_bulk_random_stalls_bit_exact(fake_manifest: Manifest) -> None:
    images = random_images(fake_manifest, 500, seed=2)
    res = bulk.run(fake_manifest.build_dir, images, stall_in=0.4, stall_out=0.4, seed=3)
    assert res.build_time_s == 0.0  # cached from the first run
    assert len(res.mismatches(fake_expected(fake_manifest, images))) == 0
    assert res.protocol_ok
    assert res.latency is None and res.initiation_interval is None  # stalls: no contract numbers
    assert res.cycles > 500 * fake_manifest.initiation_interval * 1.3  # the stalls did slow it down


def test_bulk_catches_wrong_tlast(tmp_path: Path, fake_build: Path) -> None:
    build = mutate(fake_build, tmp_path / "b", "{ocnt == 1, obuf[15:0]}", "{ocnt == 2, obuf[15:0]}")
    m = load_manifest(build)
    images = random_images(m, 7)
    res = bulk.run(build, images)
    assert len(res.mismatches(fake_expected(m, images))) == 0
    assert res.tlast_errors == 2 * 7 and not res.protocol_ok
