"""End to end: build the shipped example, co-simulate real test images, bit-exact and cycle-exact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bnn2fpga.cli import main
from tests.conftest import EXAMPLES

EXAMPLE = EXAMPLES / "sfc-fmnist-flip.pt"  # the main job's default input


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("e2e") / "sfc"
    assert main(["build", str(EXAMPLE), "--board", "pynq-z2", "--out", str(out), "--quiet"]) == 0
    return out


@pytest.mark.slow
@pytest.mark.synth
def test_build_fits_and_reports(built: Path) -> None:
    manifest = json.loads((built / "manifest.json").read_text())
    yosys, est = manifest["resources"]["yosys"], manifest["resources"]["estimate"]
    assert yosys["lut"] <= 53_200 and yosys["bram36"] <= 140
    assert abs(yosys["lut"] - est["lut"]) <= 0.25 * yosys["lut"], (yosys, est)
    report = (built / "report.md").read_text()
    assert "bottleneck" in report and manifest["cycles"]["bottleneck"] in report
    # dense0's 6,272-bit rows live in block RAM: its ROM output registers are called out for Vivado users.
    dense0 = manifest["layers"][0]
    assert f"FF include {dense0['pe'] * dense0['simd']:,} output registers" in report
    # Its 23 block ROMs were synthesised as one (PE 0's weights), as the report says.
    assert yosys["block_roms"] == "one per layer" and "`bnn2fpga build --exact-roms`" in report
    # The clock's evidence on a Xilinx part: the deepest register-to-register path, in the report too.
    depth = yosys["logic_depth"]
    assert depth["cells"] == depth["luts"] + depth["carries"] + depth["muxes"] > 0
    # docs/timing.md's rule for 200 MHz on a -1 xc7z020: at most 5 LUT levels (carries are cheap).
    assert depth["luts"] <= 5, depth
    assert manifest["clock"]["evidence"] == "assumed" and manifest["clock"]["mhz"] == 100.0
    assert f"Deepest register-to-register path after Yosys mapping: {depth['cells']} cells" in report
    for name in (*manifest["sources"], *manifest["memories"], "vivado.tcl", "driver.py", "checkpoint.pt"):
        assert (built / name).is_file(), name


@pytest.mark.slow
@pytest.mark.synth
def test_cocotb_50_images_with_back_pressure(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", str(built), "--images", "50", "--stall", "0.3", "--json"]) == 0
    s = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert s["images"] == 50 and s["bit_exact"] and s["mismatched_words"] == 0
    assert s["measured_initiation_interval"] == s["expected_initiation_interval"]
    assert s["measured_latency"] == s["expected_latency"]
    assert s["in_stall_cycles"] > 0 and s["out_stall_cycles"] > 0  # back-pressure really happened


@pytest.mark.slow
@pytest.mark.synth
def test_bulk_whole_test_set_accuracy_equals_reference(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", str(built), "--bulk", "--json"]) == 0
    s = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert s["images"] == 10000 and s["mismatched_words"] == 0
    assert s["hardware_accuracy"] == s["reference_accuracy"]
    assert s["measured_initiation_interval"] == s["expected_initiation_interval"]
