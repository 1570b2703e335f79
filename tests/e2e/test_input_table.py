"""A network whose input quantiser is an input table (BNN-PYNQ's CNV input: ``2x - 1`` rounded to Q1.7,
not a selection of the pixel's bits), end to end: built by both backends and simulated on real
Fashion-MNIST test images, every word equal to reference.py (itself equal to PyTorch with the
table, tests/unit/test_reference.py) and the cycles as predicted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bnn2fpga.checkpoint import Checkpoint
from bnn2fpga.cli import main
from tests.conftest import q17_codes, random_checkpoint


def tabled(path: Path, name: str, **kwargs: object) -> Path:
    ck = random_checkpoint(name, seed=5, encoding="integer", dataset="fashion-mnist", **kwargs)
    arch = ck.architecture
    arch["input"]["table"] = [q17_codes()]
    Checkpoint(architecture=arch, state_dict=ck.state_dict, dataset=ck.dataset).save(path)
    return path


def sim(build: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict:
    assert main(["sim", str(build), "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize(("name", "kwargs"), [
    ("tfc", {"widths": [37, 13, 7]}),
    # a padded first conv: the pads are codes too (the all-ones code of the kept planes)
    ("cnv", {"widths": [6, 5, 7, 8, 9, 10, 11, 12]}),
])
def test_rtl_build_simulates_bit_exact(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str,
                                       kwargs: dict) -> None:
    ck = tabled(tmp_path / "t.pt", name, **kwargs)
    out = tmp_path / "b"
    assert main(["build", str(ck), "--board", "pynq-z2", "--no-synth", "--out", str(out), "--quiet"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["input"]["table"] == [q17_codes()]
    assert "of the input table's codes" in (out / "report.md").read_text()
    capsys.readouterr()
    assert main(["info", str(ck), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["input"]["table"] is True
    s = sim(out, capsys, "--images", "20")
    assert s["mismatched_words"] == 0 and s["passed"]


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
def test_hls_build_csim_bit_exact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ck = tabled(tmp_path / "t.pt", "tfc", widths=[37, 13, 7])
    out = tmp_path / "b"
    assert main(["build", str(ck), "--backend", "hls", "--out", str(out), "--quiet"]) == 0
    s = sim(out, capsys, "--images", "100")
    assert s["mismatched_words"] == 0 and s["passed"]
