"""The build-folder contract: the planes rule, the manifest's one writer and its typed records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bnn2fpga.contract.codes import CodeTable, CodeTableError
from bnn2fpga.contract.manifest import FORMAT, ManifestError, is_build_folder, load_manifest, write_manifest
from bnn2fpga.contract.planes import ALL_PLANES, Planes, PlanesError


@given(st.lists(st.integers(-2, 10), max_size=10))
def test_planes_accepts_exactly_the_strictly_ascending_bits_0_to_7(values: list[int]) -> None:
    good = bool(values) and all(0 <= v <= 7 for v in values) and values == sorted(set(values))
    if good:
        planes = Planes(values)
        assert planes == tuple(values) and json.loads(json.dumps(planes)) == values
        assert Planes(planes) is planes
    else:
        with pytest.raises(PlanesError, match="strictly ascending bit planes in 0..7"):
            Planes(values)


def test_planes_refuses_bools_and_floats_and_names_what_it_checks() -> None:
    with pytest.raises(PlanesError, match=r"^uart.planes must"):
        Planes([True], what="uart.planes")
    with pytest.raises(PlanesError):
        Planes([1.0])
    assert ALL_PLANES == tuple(range(8)) and repr(Planes([3])) == "(3,)"


def _manifest(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "format": FORMAT, "top": "acc", "board": "ulx3s-85f", "clock_mhz": 50.0,
        "clock": {"mhz": 50.0, "evidence": "nextpnr", "why": "Fmax 61.2 MHz", "fmax_mhz": 61.2},
        "checkpoint": {"file": "checkpoint.pt", "source": "net.pt", "sha256": "ab"},
        "input": {"tdata_bits": 8, "pixels_per_beat": 1, "beats_per_frame": 4, "samples_per_frame": 4,
                  "shape": [2, 2, 1], "order": "HWC", "pixel_bits": 8, "planes": [6, 7]},
        "output": {"tdata_bits": 32, "beats_per_frame": 3, "logit_table": [[0.0, 1.0]] * 3},
        "cycles": {"initiation_interval": 9, "latency": 20, "fps": 5e6},
        "sources": ["acc.v"], "memories": [],
        "uart": {"top": "acc_board", "sources": ["acc_board.v"], "baud": 115200, "divisor": 434,
                 "clock_hz": 50_000_000, "frame_bytes": 1, "pixels": 4, "planes": [6, 7], "bits_per_pixel": 2,
                 "classes": 3, "timeout_bytes": 4},
    }
    data.update(changes)
    return data


def _folder_with_files(tmp_path: Path) -> Path:
    for name in ("acc.v", "acc_board.v", "checkpoint.pt"):
        (tmp_path / name).write_text(f"// {name}\n")
    return tmp_path



def test_a_code_table_is_one_row_of_256_codes_per_channel() -> None:
    rows = [list(range(256)), [255 - v for v in range(256)]]
    table = CodeTable(rows, channels=2)
    assert table == tuple(tuple(r) for r in rows) and json.loads(json.dumps(table)) == rows
    assert CodeTable(table) is table
    assert CodeTable([np.arange(256, dtype=np.int64)])[0][255] == 255  # numpy integers are integers


@pytest.mark.parametrize(("rows", "channels", "message"), [
    ([list(range(256))], 3, r"^t must hold one row per colour channel \(3\), not 1 rows"),
    ([list(range(255))], None, r"^t\[0\] must list the code of every pixel value"),
    ([[0] * 255 + [256]], None, r"^t\[0\] holds 256; codes are integers in 0..255"),
    ([[0] * 255 + [True]], None, r"^t\[0\] holds True"),
    ([[0.0] * 256], None, r"^t\[0\] holds 0.0"),
    ([], None, "at least one row"),
    ("codes", None, "not str"),
])
def test_a_code_table_that_breaks_the_rule_is_refused_with_its_reason(rows: object, channels: int | None,
                                                                      message: str) -> None:
    with pytest.raises(CodeTableError, match=message):
        CodeTable(rows, channels=channels, what="t")  # type: ignore[arg-type]


def test_write_then_read_gives_typed_records(tmp_path: Path) -> None:
    m = write_manifest(_folder_with_files(tmp_path), _manifest())
    assert is_build_folder(tmp_path) and not is_build_folder(tmp_path / "missing")
    assert m.planes == (6, 7) and isinstance(m.planes, Planes)
    assert m.clock.evidence == "nextpnr" and m.clock.fmax_mhz == 61.2
    assert m.checkpoint is not None and m.checkpoint.sha256 == "ab"
    assert m.uart is not None and m.uart.request_bytes == 5 and m.uart.reply_bytes == 9
    assert m.uart.sources == (tmp_path.resolve() / "acc_board.v",)
    assert m.board == "ulx3s-85f" and m.backend == "rtl"


@pytest.mark.parametrize(("uart", "message"), [
    ({"frame_bytes": 4}, "uart.frame_bytes is 4, but 4 pixels of 2 planes take 1 bytes"),
    ({"planes": [7, 6]}, "uart.planes must be strictly ascending"),
    ({"classes": 10}, "are not the accelerator's"),
    ({"divisor": 2}, "uart.divisor must be an integer >= 4"),
])
def test_a_broken_uart_record_is_refused_on_reading(tmp_path: Path, uart: dict[str, object], message: str) -> None:
    data = _manifest()
    data["uart"] = {**data["uart"], **uart}  # type: ignore[dict-item]
    with pytest.raises(ManifestError, match=message):
        write_manifest(tmp_path, data)


def test_the_writer_refuses_another_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="format"):
        write_manifest(tmp_path, _manifest(format="other/2"))
    (tmp_path / "manifest.json").write_text("[1]")
    with pytest.raises(ManifestError, match="must hold a JSON object"):
        load_manifest(tmp_path)


def test_the_manifest_records_and_checks_every_listed_file(tmp_path: Path) -> None:
    folder = _folder_with_files(tmp_path)
    m = write_manifest(folder, _manifest())
    assert set(m.digests) == {"acc.v", "acc_board.v", "checkpoint.pt"}
    m.check_files()
    (folder / "acc.v").write_text("// acc.v, one digit changed\n")
    with pytest.raises(ManifestError, match=r"changed since the build wrote them: acc\.v .*rebuild"):
        load_manifest(folder).check_files()
    (folder / "acc.v").unlink()
    with pytest.raises(ManifestError, match="missing"):
        load_manifest(folder).check_files()


@pytest.mark.parametrize("name", ["../outside.mem", "/etc/passwd", "a/../../b.v", ""])
def test_a_listed_path_must_stay_inside_the_build_folder(tmp_path: Path, name: str) -> None:
    folder = _folder_with_files(tmp_path)
    write_manifest(folder, _manifest())
    data = json.loads((folder / "manifest.json").read_text())
    data["memories"] = [name]
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="not a path inside the build folder"):
        load_manifest(folder)


@given(mhz=st.floats(1, 1000), fmax=st.none() | st.floats(1, 1000), proxy=st.none() | st.just({"fmax_mhz": 97.9}),
       evidence=st.sampled_from(["assumed", "nextpnr"]))
def test_the_clock_record_is_written_and_read_by_one_type(mhz: float, fmax: float | None, proxy: dict | None,
                                                          evidence: str) -> None:
    from bnn2fpga.contract.manifest import ClockRecord

    record = ClockRecord(mhz, evidence, "why", fmax, proxy)
    assert ClockRecord.from_json(json.loads(json.dumps(record.to_json()))) == record


def test_the_checkpoint_record_round_trips_and_a_clock_that_is_not_an_object_is_refused() -> None:
    from bnn2fpga.contract.manifest import CheckpointRecord, ClockRecord

    record = CheckpointRecord("checkpoint.pt", "tfc.pt", "ab" * 32)
    assert CheckpointRecord.from_json(record.to_json()) == record
    assert CheckpointRecord.from_json("not an object") is None
    with pytest.raises(ManifestError, match="field 'clock' must be an object, not list"):
        ClockRecord.from_json([100])
