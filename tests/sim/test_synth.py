"""Yosys resource counts and nextpnr Fmax on the fake accelerator (marked ``synth``)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from bnn2fpga.backend.synth import (
    SynthError,
    count_cells,
    ecp5_fmax,
    ecp5_place_route,
    ecp5_synth,
    parse_fmax,
    parse_logic_depth,
    synth,
)

from .fake import FIXTURE


def test_count_xilinx_cells() -> None:
    cells = {"LUT1": 1, "LUT6": 10, "LUT6_2": 2, "FDRE": 7, "FDCE": 1, "RAMB18E1": 3, "RAMB36E1": 2,
             "DSP48E1": 4, "RAM64X1D": 2, "RAM32M": 1, "SRLC32E": 5, "CARRY4": 9, "MUXF7": 3}
    assert count_cells(cells, "xc7") == {"lut": 13, "lutram": 8, "srl": 5, "ff": 8, "bram": 3.5, "dsp": 4}


def test_parse_fmax_takes_the_post_route_line() -> None:
    log = ("Info: Max frequency for clock '$glbnet$ap_clk': 73.89 MHz (FAIL at 100.00 MHz)\n"
           "Info: Max frequency for clock 'other': 200.00 MHz (PASS at 100.00 MHz)\n"
           "ERROR: Max frequency for clock '$glbnet$ap_clk': 94.60 MHz (FAIL at 100.00 MHz)\n")
    assert parse_fmax(log) == {"$glbnet$ap_clk": 94.60, "other": 200.0}


LTP = r"""
3. Executing LTP pass (find longest path).

Longest topological path in fake_top (length=5):
    0: \wrow [303]
    1: $techmap1$lut$4576.A [4] (via $abc$lut$4564)
    2: $techmap2$lut$4588.A [4] (via $abc$lut$4576)
    3: $abc$aiger$o267 (via $abc$mux$1)
    4: $abc$aiger$i798 (via $auto$maccmap.cc:240:synth$3055.genblk1.slice[0].genblk1.carry4)
    5: $abc$aiger$i806 (via $auto$maccmap.cc:240:synth$3055.genblk1.slice[1].genblk1.carry4)
"""


def test_parse_logic_depth_sorts_the_path_by_cell_kind() -> None:
    carries = {"$auto$maccmap.cc:240:synth$3055.genblk1.slice[0].genblk1.carry4",
               "$auto$maccmap.cc:240:synth$3055.genblk1.slice[1].genblk1.carry4", "$unrelated"}
    depth = parse_logic_depth(LTP, carries, {"$abc$mux$1"})
    assert depth is not None and depth.to_json() == {"cells": 5, "luts": 2, "carries": 2, "muxes": 1, "start": "wrow"}
    assert parse_logic_depth("no path here", set(), set()) is None
    # A design with modules left (the shared block ROMs): the longest module's path, its steps only.
    other = "\nLongest topological path in rom (length=1):\n    0: \\addr [0]\n    1: \\data [0] (via $x)\n"
    assert parse_logic_depth(other + LTP, carries, {"$abc$mux$1"}) == depth
    assert parse_logic_depth(LTP + other, carries, {"$abc$mux$1"}) == depth


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
    # The deepest register-to-register path: 7 LUTs and a 4-stage carry chain (the popcount adder).
    assert res.depth is not None and res.depth.cells == res.depth.luts + res.depth.carries + res.depth.muxes
    assert res.depth.carries > 0 and res.depth.cells <= 14, res.depth
    again = synth(build)  # the same files: taken from the cache, Yosys not run
    assert again.cached and again.cells == res.cells and again.lut == res.lut and again.depth == res.depth
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


@pytest.mark.parametrize(("options", "message"), [
    ({"router": "router3"}, "router must be"),
    ({"router": "router2"}, "needs the clock on a global-clock pin"),
    ({"clock_port": "ap_clk", "package": "CSFBGA285"}, "no clock pin known"),
])
def test_place_route_options_are_checked_before_nextpnr_runs(tmp_path: Path, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ecp5_place_route(tmp_path / "missing.json", "top", work_dir=tmp_path / "pnr", **options)
    assert not (tmp_path / "pnr").exists()


@pytest.mark.synth
def test_block_roms_shared_per_layer_count_as_each_pe_own(tmp_path: Path) -> None:
    """The default check maps each layer's block ROMs once (PE 0's weights); --exact-roms maps every
    PE's own. Same block RAM and flip-flops, LUTs within a few, and fewer ROM modules to synthesise."""
    from bnn2fpga.cli import main
    from tests.conftest import random_checkpoint

    ck = tmp_path / "net.pt"
    random_checkpoint("tfc", widths=[64, 256, 64], planes=[7], dataset="fashion-mnist").save(ck)
    # One input plane: dense0 (256 words of 49 bits per PE), dense1 (256 x 16) and dense2 (128 x 32) go to
    # block RAM, 4 PEs each; the output layer's ROMs (40 x 8) are LUTs.
    folding = {"pixels_per_beat": 4, "layers": {"dense0": {"pe": 4, "simd": 49}, "dense1": {"pe": 4, "simd": 16},
                                                "dense2": {"pe": 4, "simd": 32}, "output": {"pe": 2, "simd": 8}}}
    (tmp_path / "f.json").write_text(json.dumps(folding))
    out = tmp_path / "build"
    assert main(["build", str(ck), "--out", str(out), "--folding", str(tmp_path / "f.json"), "--no-synth",
                 "--quiet"]) == 0
    shared = synth(out, cache=False)
    shared_log = shared.log_path.read_text()  # the next run writes the same log file
    exact = synth(out, cache=False, exact_roms=True)
    assert shared.shared_block_roms and not exact.shared_block_roms
    assert shared.bram == exact.bram == 8 and shared.ff == exact.ff
    assert abs(shared.lut - exact.lut) <= max(3, exact.lut // 200), (shared, exact)

    def rom_modules(log: str) -> int:
        return len(set(re.findall(r"\$paramod\$[0-9a-f]+\\\w+_rom\b", log)))

    # 12 block ROMs become 3 modules; the 2 logic ROMs stay one each.
    assert (rom_modules(exact.log_path.read_text()), rom_modules(shared_log)) == (14, 5)
