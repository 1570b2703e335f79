"""Open-toolchain boards: the board core and uart block of a build, the refusal of a network that
cannot fit, and (slow suite) real bitstreams for the iCEBreaker and the ULX3S."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bnn2fpga.backend.bitstream import parse_utilisation, place_seeds
from bnn2fpga.boards import OPEN_FLOWS
from bnn2fpga.cli import main
from tests.conftest import random_checkpoint


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ck") / "small.pt"
    random_checkpoint("tfc", widths=[12, 9, 7], planes=[7], dataset="fashion-mnist").save(path)
    return path


def build(ck: Path, out: Path, board: str, *extra: str) -> int:
    return main(["build", str(ck), "--board", board, "--out", str(out), "--quiet", *extra])


@pytest.mark.parametrize("board", sorted(OPEN_FLOWS))
def test_board_build_writes_the_board_core_and_uart_block(small: Path, tmp_path: Path, board: str) -> None:
    out = tmp_path / board
    assert build(small, out, board, "--no-synth") == 0
    m = json.loads((out / "manifest.json").read_text())
    uart = m["uart"]
    assert (out / f"{uart['top']}.v").is_file() and all((out / s).is_file() for s in uart["sources"])
    assert uart["baud"] * uart["divisor"] == uart["clock_hz"] and uart["divisor"] >= 4
    # One input plane: 784 pixels of one bit each, 98 bytes a request.
    assert (uart["frame_bytes"], uart["pixels"], uart["planes"], uart["bits_per_pixel"]) == (98, 784, [7], 1)
    assert uart["classes"] == 10 and m["rate"]["frame_bytes"] == 98
    assert m["folding"]["pixels_per_beat"] == 1
    assert "skipped" in m["bitstream"]
    assert "Serial link" in (out / "report.md").read_text()
    assert f"module {uart['top']}(" in (out / f"{uart['top']}.v").read_text()


def test_a_network_too_big_for_the_ice40_is_refused_with_a_pruning_that_fits(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    big = tmp_path / "big.pt"
    random_checkpoint("tfc", widths=[64, 64, 64], dataset="fashion-mnist").save(big)
    assert build(big, tmp_path / "out", "icebreaker") == 2
    err = capsys.readouterr().err
    assert "0.41 Mbit" in err and "0.12 Mbit" in err
    assert "1 plane(s) with hidden widths 64,64,64 (59 kbit)" in err and "--method bitslice" in err
    assert not (tmp_path / "out").exists()


def test_utilisation_is_read_from_the_last_block() -> None:
    log = ("Info: Device utilisation:\nInfo: \t         ICESTORM_LC:    9/   5280     0%\n"
           "Info: Device utilisation:\nInfo: \t         ICESTORM_LC:    4370/   5280    82%\n"
           "Info: \t        ICESTORM_RAM:      16/     30    53%\n")
    assert parse_utilisation(log) == {"ICESTORM_LC": {"used": 4370, "available": 5280},
                                      "ICESTORM_RAM": {"used": 16, "available": 30}}


@pytest.mark.slow
@pytest.mark.synth
@pytest.mark.parametrize("board", sorted(OPEN_FLOWS))
def test_bitstream_for_a_small_network(small: Path, tmp_path: Path, board: str) -> None:
    out = tmp_path / board
    assert build(small, out, board) == 0
    m = json.loads((out / "manifest.json").read_text())
    bit = m["bitstream"]
    data = (out / bit["file"]).read_bytes()
    assert len(data) > 10_000
    assert bit["fmax_mhz"] >= bit["clock_mhz"] * (1 + bit["margin"])
    assert bit["clock_mhz"] in OPEN_FLOWS[board].clock_ladder_mhz and bit["attempts"][-1]["met_with_margin"]
    assert m["clock_mhz"] == bit["clock_mhz"] and m["uart"]["clock_hz"] == round(bit["clock_mhz"] * 1e6)
    lc = "ICESTORM_LC" if board == "icebreaker" else "TRELLIS_COMB"
    assert 0 < bit["utilisation"][lc]["used"] <= bit["utilisation"][lc]["available"]
    assert bit["file"] in (out / "report.md").read_text()
    assert (out / "bitstream" / "nextpnr.log").is_file()
    # Another placement seed of the same netlist at the same clock (benchmarks/fmax.py's medians), run
    # outside the build folder, which stays a build --force may replace.
    (seed, fmax), = place_seeds(out, board, [2], tmp_path / "seeds")
    assert seed == 2 and 0.5 * bit["fmax_mhz"] < fmax < 2 * bit["fmax_mhz"]
    assert (tmp_path / "seeds" / "seed2" / "nextpnr.log").is_file()
    assert build(small, out, board, "--no-synth", "--force") == 0


# The ECP5 proxy of a small whole design must clear this (docs/timing.md: the same network on the
# ULX3S closes its fastest clock with margin; a regression to a wide multiplexer or a long
# combinational chain in the engines falls well under it).
PROXY_FLOOR_MHZ = 100.0


@pytest.mark.slow
@pytest.mark.synth
def test_ecp5_proxy_of_a_small_xilinx_build_clears_its_floor(small: Path, tmp_path: Path) -> None:
    out = tmp_path / "pynq"
    assert build(small, out, "pynq-z2", "--no-synth", "--ecp5-proxy") == 0
    m = json.loads((out / "manifest.json").read_text())
    clock = m["clock"]
    assert clock["evidence"] == "assumed" and clock["mhz"] == 100.0
    proxy = clock["ecp5_proxy"]
    assert [r["seed"] for r in proxy["seeds"]] == [1, 2, 3]
    assert proxy["fmax_mhz"] == sorted(r["fmax_mhz"] for r in proxy["seeds"])[1]  # the median seed
    assert proxy["fmax_mhz"] >= PROXY_FLOOR_MHZ, proxy
    report = (out / "report.md").read_text()
    assert "ECP5 proxy" in report and f"**{proxy['fmax_mhz']:.1f} MHz** median" in report
    assert not any(p.is_dir() for p in (out / "ecp5_proxy").iterdir())  # netlists and logs are not kept


@pytest.mark.parametrize(("board", "extra", "why"), [
    ("ulx3s-85f", (), "placed and routed by nextpnr itself"),
    ("pynq-z2", ("--backend", "hls"), "writes C++, not Verilog"),
])
def test_ecp5_proxy_where_it_means_nothing_is_one_clear_error(
        small: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], board: str, extra: tuple[str, ...],
        why: str) -> None:
    out = tmp_path / "never"
    assert build(small, out, board, "--ecp5-proxy", *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and why in err and "drop --ecp5-proxy" in err and "Traceback" not in err
    assert not out.exists()
