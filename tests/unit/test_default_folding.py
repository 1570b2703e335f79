"""The default folding is the cheapest that keeps up with the board's host link, and says so."""

from __future__ import annotations

import json
from pathlib import Path

from bnn2fpga.boards import BOARDS
from bnn2fpga.cli import main
from tests.conftest import ROOT


def _build(tmp_path: Path, name: str, *extra: str) -> dict:
    out = tmp_path / name
    assert main(["build", str(ROOT / "examples" / "tfc-fmnist.pt"), "--board", "pynq-z2", "--no-synth", "--quiet",
                 "--out", str(out), *extra]) == 0
    return json.loads((out / "manifest.json").read_text())


def test_default_keeps_up_with_the_host_link_and_no_more(tmp_path: Path) -> None:
    link = BOARDS["pynq-z2"].host_link
    assert link is not None and link.bytes_per_second == 800e6  # 64-bit HP port at 100 MHz
    default, fastest = _build(tmp_path, "default"), _build(tmp_path, "max", "--target-fps", "max")
    io_fps = link.frames_per_second(28 * 28)
    assert default["rate"]["bound"] == "I/O" and default["rate"]["host_fps"] == io_fps
    assert default["cycles"]["fps"] >= io_fps  # keeps up with the link...
    assert fastest["rate"]["bound"] == "resources" and fastest["cycles"]["fps"] > 2 * default["cycles"]["fps"]
    lut = [m["resources"]["estimate"]["lut"] for m in (default, fastest)]
    assert lut[0] < lut[1] / 2  # ...at a fraction of the fastest design's LUTs
    assert "Frame rate set by I/O" in (tmp_path / "default" / "report.md").read_text()
    assert _build(tmp_path, "target", "--target-fps", "20000")["rate"]["bound"] == "target"


def test_target_fps_takes_a_number_or_max(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    assert main(["build", str(ROOT / "examples" / "tfc-fmnist.pt"), "--no-synth", "--target-fps", "fast",
                 "--out", str(tmp_path / "x")]) == 2
    assert "--target-fps: must be a positive frame rate or 'max', not 'fast'" in capsys.readouterr().err
