"""End to end for a branched network: the zoo's Inception-style ``inc`` (two concat blocks of a 3x3 conv,
a 1x1 conv and a skip) built for the PYNQ-Z2 with the Yosys check, and all 10,000 Fashion-MNIST test
images through the Verilator harness: bit-exact with reference.py, cycles as predicted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bnn2fpga.cli import main
from tests.conftest import random_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.synth]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("branch")
    random_checkpoint("inc", seed=3, dataset="fashion-mnist", width_multiplier=0.25).save(folder / "inc.pt")
    out = folder / "build"
    assert main(["build", str(folder / "inc.pt"), "--board", "pynq-z2", "--out", str(out), "--quiet"]) == 0
    return out


def test_branches_in_manifest_report_and_yosys(built: Path) -> None:
    manifest = json.loads((built / "manifest.json").read_text())
    branches = [layer for layer in manifest["layers"] if layer["kind"] == "branch"]
    assert [b["name"] for b in branches] == ["concat0", "concat1"]
    first = branches[0]["paths"]
    assert [[e["kind"] for e in path] for path in first] == [["fifo", "window", "conv"], ["fifo", "conv"], ["fifo"]]
    assert all("cycles" in e and "period" in e for path in first for e in path)
    yosys, est = manifest["resources"]["yosys"], manifest["resources"]["estimate"]
    assert abs(yosys["lut"] - est["lut"]) <= 0.15 * yosys["lut"], (yosys, est)
    report = (built / "report.md").read_text()
    assert "| concat0/0: conv1 | conv x196 |" in report and "| concat1/1: concat1_p1_fifo | fifo |" in report


def test_bulk_whole_test_set_equals_reference(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", str(built), "--bulk", "--json"]) == 0
    s = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert s["images"] == 10000 and s["mismatched_words"] == 0 and s["bit_exact"]
    assert s["hardware_accuracy"] == s["reference_accuracy"]
    assert s["measured_initiation_interval"] == s["expected_initiation_interval"]
    assert s["measured_latency"] == s["expected_latency"]
