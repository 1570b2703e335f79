"""PLL settings against the open toolchains' own calculators (icepll, ecppll) and the data sheets' limits."""

from __future__ import annotations

import re
import subprocess

import pytest

from bnn2fpga.backend.bitstream import choose_baud
from bnn2fpga.backend.synth import yowasp_command
from bnn2fpga.boards import OPEN_FLOWS, get_board
from bnn2fpga.hw.pll import PllError, solve, solve_ecp5, solve_ice40


def _tool(tool: str, *args: str, cwd: object = None) -> str:
    # The yowasp tools see only their working directory (their /tmp is private): relative paths.
    done = subprocess.run([*yowasp_command(tool), *args], capture_output=True, text=True, timeout=300, check=True,
                          cwd=cwd)
    return done.stdout + done.stderr


@pytest.mark.parametrize("mhz", [18, 21, 24, 30, 36, 48])
def test_ice40_matches_icepll(mhz: int) -> None:
    s = solve_ice40(12_000_000, mhz * 1_000_000)
    text = _tool("yowasp-icepll", "-i", "12", "-o", str(mhz))
    theirs = {k: int(v) for k, v in re.findall(r"^(DIVR|DIVF|DIVQ|FILTER_RANGE):\s+(\d+)", text, re.M)}
    assert dict(s.dividers) == theirs
    divr, divf, divq = s.param("DIVR"), s.param("DIVF"), s.param("DIVQ")
    assert 12e6 * (divf + 1) / ((divr + 1) * 2**divq) == mhz * 1e6
    assert 533e6 <= s.f_vco_hz <= 1066e6


@pytest.mark.parametrize("mhz", [30, 50, 75, 90, 100])
def test_ecp5_matches_ecppll(tmp_path, mhz: int) -> None:  # noqa: ANN001
    s = solve_ecp5(25_000_000, mhz * 1_000_000)
    out = tmp_path / "pll.v"
    _tool("yowasp-ecppll", "-i", "25", "-o", str(mhz), "-f", out.name, cwd=tmp_path)
    theirs = {k: int(v) for k, v in re.findall(r"\.(CLKI_DIV|CLKFB_DIV|CLKOP_DIV)\((\d+)\)", out.read_text())}
    assert dict(s.dividers) == theirs
    assert 25e6 * s.param("CLKFB_DIV") / s.param("CLKI_DIV") == mhz * 1e6
    assert 400e6 <= s.f_vco_hz <= 800e6


def test_unreachable_frequency_is_refused() -> None:
    with pytest.raises(PllError, match="cannot make exactly 36 MHz"):
        solve("ecp5", 25_000_000, 36_000_000)
    with pytest.raises(PllError, match="16..275 MHz"):
        solve("ice40", 12_000_000, 12_000_000)
    with pytest.raises(PllError, match="no PLL solver"):
        solve("xc7", 100_000_000, 50_000_000)


@pytest.mark.parametrize("board", sorted(OPEN_FLOWS))
def test_every_ladder_clock_has_a_pll_setting_and_an_exact_baud(board: str) -> None:
    flow = OPEN_FLOWS[board]
    for mhz in flow.clock_ladder_mhz:
        hz = int(mhz * 1e6)
        assert solve(get_board(board).family, flow.oscillator_hz, hz).f_out_hz == hz
        baud, divisor = choose_baud(flow, hz)
        assert baud * divisor == hz and divisor >= 4 and baud in flow.uart_rates
