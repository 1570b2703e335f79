"""Manifest reading, frame packing and host-side prediction (pure Python, fast)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bnn2fpga.contract.manifest import ManifestError, load_manifest, pack_frames, predict

from .fake import FIXTURE


def test_fake_manifest_fields() -> None:
    m = load_manifest(FIXTURE)
    assert (m.top, m.in_bits, m.pixels_per_beat, m.in_beats, m.out_beats) == ("fake_top", 32, 4, 9, 10)
    assert (m.latency, m.initiation_interval) == (11, 10)
    assert m.sources == (FIXTURE.resolve() / "fake_top.v",)
    m.check_files()


def test_pack_frames_hwc_first_pixel_low_byte_zero_padded() -> None:
    m = load_manifest(FIXTURE)
    images = np.arange(2 * 36, dtype=np.uint8).reshape(2, 6, 6, 1)
    frames = pack_frames(m, images)
    assert frames.shape == (2, 36)  # 9 beats of 4 bytes: 36 samples fill them exactly
    assert frames[1, 0] == 36 and frames[0, 5] == images[0, 0, 5, 0]


def test_pack_frames_pads_a_partial_last_beat(tmp_path: Path) -> None:
    build = tmp_path / "b"
    shutil.copytree(FIXTURE, build)
    raw = json.loads((build / "manifest.json").read_text())
    raw["input"].update(shape=[5, 7, 1], samples_per_frame=35)  # 35 samples: last beat has 3
    (build / "manifest.json").write_text(json.dumps(raw))
    m = load_manifest(build)
    frames = pack_frames(m, np.full((1, 5, 7, 1), 255, dtype=np.uint8))
    assert frames.shape == (1, 36) and frames[0, 34] == 255 and frames[0, 35] == 0


def test_pack_frames_rejects_wrong_shape_and_dtype() -> None:
    m = load_manifest(FIXTURE)
    with pytest.raises(ValueError, match=r"images must have shape \(N, 6, 6, 1\), not \(1, 6, 6\)"):
        pack_frames(m, np.zeros((1, 6, 6), dtype=np.uint8))
    with pytest.raises(TypeError, match="images must be uint8, not float64"):
        pack_frames(m, np.zeros((1, 6, 6, 1)))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r["input"].update(beats_per_frame=8), r"input.beats_per_frame \(8\) != ceil\(36 / 4\)"),
        (lambda r: r["cycles"].pop("latency"), "manifest.json has no field 'cycles.latency'"),
        (lambda r: r.update(format="other/1"), "format must be 'bnn2fpga-build/1'"),
        (lambda r: r["input"].update(tdata_bits=24), r"input.tdata_bits \(24\) must be 8 \* input.pixels_per_beat"),
    ],
)
def test_bad_manifest_named_field(tmp_path: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    raw = json.loads((FIXTURE / "manifest.json").read_text())
    edit(raw)
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ManifestError, match=message):
        load_manifest(tmp_path)


def test_missing_memory_file_is_an_error(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE, tmp_path / "b")
    (tmp_path / "b" / "fake_weights.mem").unlink()
    with pytest.raises(ManifestError, match="missing: .*fake_weights.mem"):
        load_manifest(tmp_path / "b").check_files()


def test_predict_uses_logit_table_lowest_index_on_ties(tmp_path: Path) -> None:
    raw = json.loads((FIXTURE / "manifest.json").read_text())
    # Every class: logit = popcount, except class 7 whose logit is the negated popcount.
    raw["output"]["logit_table"] = [[float(pc if c != 7 else -pc) for pc in range(289)] for c in range(10)]
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    m = load_manifest(tmp_path)
    pcs = np.array([
        [5, 9, 1, 9, 0, 0, 0, 0, 0, 0],   # tie between classes 1 and 3: the lower wins
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],   # all tie: class 0
        [1, 1, 1, 1, 1, 1, 1, 0, 1, 2],   # class 9 by popcount
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    ])
    pcs[3, :] = 3
    pcs[3, 7] = 0                       # class 7: logit -0 == 0 < 3
    assert predict(m, pcs).tolist() == [1, 0, 9, 0]
    with pytest.raises(ValueError, match=r"popcounts must lie in 0..288, got 0..289"):
        predict(m, np.array([[289] + [0] * 9]))
