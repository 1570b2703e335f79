"""Yosys resource counts and nextpnr Fmax on the fake accelerator (marked ``synth``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bnn2fpga.backend.synth import SynthError, _count, ecp5_fmax, ecp5_place_route, ecp5_synth, parse_fmax, synth

from .fake import FIXTURE


def test_count_xilinx_cells() -> None:
    cells = {"LUT1": 1, "LUT6": 10, "LUT6_2": 2, "FDRE": 7, "FDCE": 1, "RAMB18E1": 3, "RAMB36E1": 2,
             "DSP48E1": 4, "RAM64X1D": 2, "RAM32M": 1, "SRLC32E": 5, "CARRY4": 9, "MUXF7": 3}
    assert _count(cells, "xc7") == {"lut": 13, "lutram": 8, "srl": 5, "ff": 8, "bram": 3.5, "dsp": 4}


def test_parse_fmax_takes_the_post_route_line() -> None:
    log = ("Info: Max frequency for clock '$glbnet$ap_clk': 73.89 MHz (FAIL at 100.00 MHz)\n"
           "Info: Max frequency for clock 'other': 200.00 MHz (PASS at 100.00 MHz)\n"
           "ERROR: Max frequency for clock '$glbnet$ap_clk': 94.60 MHz (FAIL at 100.00 MHz)\n")
    assert parse_fmax(log) == {"$glbnet$ap_clk": 94.60, "other": 200.0}


@pytest.fixture
def build(tmp_path: Path) -> Path:
    dst = tmp_path / "build"
    shutil.copytree(FIXTURE, dst)
    return dst


@pytest.mark.synth
def test_synth_fake_design_xc7(build: Path) -> None:
    res = synth(build)
    assert res.family == "xc7" and res.top == "fake_top"
    # 10 x 16-bit accumulators + 10 x 16-bit output buffer + counters: ~330-600 flip-flops.
    assert 330 <= res.ff <= 700, res
    # 10 XNOR-popcounts of 32 bits and a 9 x 320-bit ROM in logic: about a thousand LUTs.
    assert 500 <= res.lut <= 3000, res
    assert res.lutram > 0  # the output FIFO maps to distributed RAM
    assert res.bram == 0 and res.dsp == 0
    assert res.fits("pynq-z2") and res.utilization("pynq-z2")["lut"] < 0.1
    assert "synth_xilinx" in res.log_path.read_text() and not res.cached
    again = synth(build)  # the same files: taken from the cache, Yosys not run
    assert again.cached and again.cells == res.cells and again.lut == res.lut
    assert "synth_xilinx" in again.log_path.read_text()


@pytest.mark.synth
def test_synth_reports_yosys_errors(build: Path) -> None:
    (build / "fake_top.v").write_text((build / "fake_top.v").read_text().replace("endmodule", "endmodul"))
    with pytest.raises(SynthError, match=r"yosys failed .*\n(.|\n)*syntax error"):
        synth(build)


@pytest.mark.synth
def test_ecp5_fmax_fake_design(build: Path) -> None:
    res = ecp5_fmax([build / "fake_top.v"], "fake_top", work_dir=build / "ecp5")
    assert 20.0 < res.mhz < 500.0, res
    assert any("ap_clk" in name for name in res.clocks)
    assert res.target_mhz == 100.0 and res.log_path.is_file()


@pytest.mark.synth
def test_ecp5_seed_sweep_synthesizes_once(build: Path) -> None:
    netlist = ecp5_synth([build / "fake_top.v"], "fake_top", work_dir=build / "synth")
    stamp = netlist.stat().st_mtime_ns
    runs = [ecp5_place_route(netlist, "fake_top", work_dir=build / f"pnr{seed}", seed=seed) for seed in (1, 2)]
    assert netlist.stat().st_mtime_ns == stamp  # place and route only reads the netlist
    for run, seed in zip(runs, (1, 2), strict=True):
        assert 20.0 < run.mhz < 500.0 and run.log_path.parent == build / f"pnr{seed}", run
