"""PLL settings for the open-toolchain boards: an exact output clock from the board's oscillator.

The solvers search the divider ranges and limits of the vendors' data sheets (iCE40 sysCLOCK PLL:
Lattice TN1251; ECP5 EHXPLLL: TN1263) and return only settings whose output is exactly the
frequency asked for, so the UART's clocks-per-bit divisor is an integer and the baud rate exact.
:func:`pll_instance` turns a setting into the Amaranth ``Instance`` of the primitive.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from amaranth.hdl import Instance, Signal

__all__ = ["PllSetting", "solve_ice40", "solve_ecp5", "solve", "pll_instance", "PllError"]


class PllError(ValueError):
    """No divider setting of the PLL makes the requested frequency."""


@dataclass(frozen=True)
class PllSetting:
    family: str         # "ice40" or "ecp5"
    f_in_hz: int
    f_out_hz: int
    f_vco_hz: int
    dividers: tuple[tuple[str, int], ...]  # primitive parameter name -> value

    def param(self, name: str) -> int:
        return dict(self.dividers)[name]


def _exact(value: Fraction) -> int | None:
    return int(value) if value.denominator == 1 else None


def solve_ice40(f_in_hz: int, f_out_hz: int) -> PllSetting:
    """SB_PLL40 in SIMPLE feedback: f_out = f_in * (DIVF+1) / ((DIVR+1) * 2**DIVQ), with the phase
    detector input f_in/(DIVR+1) in 10..133 MHz and the VCO in 533..1066 MHz (TN1251)."""
    if not 16e6 <= f_out_hz <= 275e6:
        raise PllError(f"the iCE40 PLL's output is 16..275 MHz, not {f_out_hz / 1e6:g} MHz")
    best: PllSetting | None = None
    for divr in range(16):
        f_pfd = Fraction(f_in_hz, divr + 1)
        if not 10e6 <= f_pfd <= 133e6:
            continue
        for divq in range(1, 7):
            f_vco = f_out_hz * (1 << divq)
            if not 533e6 <= f_vco <= 1066e6:
                continue
            divf = _exact(Fraction(f_vco) / f_pfd)
            if divf is None or not 1 <= divf <= 128:
                continue
            setting = PllSetting("ice40", f_in_hz, f_out_hz, f_vco, (
                ("DIVR", divr), ("DIVF", divf - 1), ("DIVQ", divq), ("FILTER_RANGE", _ice40_filter(f_pfd))))
            if best is None or f_pfd > Fraction(f_in_hz, best.param("DIVR") + 1):
                best = setting  # the highest phase-detector rate has the least jitter
    if best is None:
        raise PllError(f"the iCE40 PLL cannot make exactly {f_out_hz / 1e6:g} MHz from {f_in_hz / 1e6:g} MHz")
    return best


def _ice40_filter(f_pfd: Fraction) -> int:
    # The loop filter setting for the phase detector's input rate (TN1251's table).
    for limit, value in ((17e6, 1), (26e6, 2), (44e6, 3), (66e6, 4), (101e6, 5)):
        if f_pfd < limit:
            return value
    return 6


def solve_ecp5(f_in_hz: int, f_out_hz: int) -> PllSetting:
    """EHXPLLL with CLKOP as feedback: f_out = f_in * CLKFB_DIV / CLKI_DIV, the VCO
    f_out * CLKOP_DIV in 400..800 MHz, the phase detector f_in / CLKI_DIV in 3.125..400 MHz (TN1263)."""
    best: PllSetting | None = None
    for clki in range(1, 129):
        f_pfd = Fraction(f_in_hz, clki)
        if not 3.125e6 <= f_pfd <= 400e6:
            continue
        clkfb = _exact(Fraction(f_out_hz) / f_pfd)
        if clkfb is None or not 1 <= clkfb <= 80:
            continue
        for clkop in range(1, 129):
            f_vco = f_out_hz * clkop
            if 400e6 <= f_vco <= 800e6:
                # Prefer the VCO nearest the middle of its range, as Lattice's tools do.
                setting = PllSetting("ecp5", f_in_hz, f_out_hz, f_vco, (
                    ("CLKI_DIV", clki), ("CLKFB_DIV", clkfb), ("CLKOP_DIV", clkop)))
                if best is None or abs(f_vco - 600e6) < abs(best.f_vco_hz - 600e6):
                    best = setting
        if best is not None:
            break  # the smallest input divider: the highest phase-detector rate
    if best is None:
        raise PllError(f"the ECP5 PLL cannot make exactly {f_out_hz / 1e6:g} MHz from {f_in_hz / 1e6:g} MHz")
    return best


def solve(family: str, f_in_hz: int, f_out_hz: int) -> PllSetting:
    if family == "ice40":
        return solve_ice40(f_in_hz, f_out_hz)
    if family == "ecp5":
        return solve_ecp5(f_in_hz, f_out_hz)
    raise PllError(f"no PLL solver for the {family!r} family")


def pll_instance(setting: PllSetting, clk_in: object, clk_out: Signal, locked: Signal) -> Instance:
    """The PLL primitive for ``setting``; ``clk_in`` is the oscillator's pad (iCE40: the raw package
    pin of an ``SB_PLL40_PAD``) or its clock signal (ECP5)."""
    p = dict(setting.dividers)
    if setting.family == "ice40":
        return Instance(
            "SB_PLL40_PAD",
            p_FEEDBACK_PATH="SIMPLE", p_PLLOUT_SELECT="GENCLK",
            p_DIVR=p["DIVR"], p_DIVF=p["DIVF"], p_DIVQ=p["DIVQ"], p_FILTER_RANGE=p["FILTER_RANGE"],
            i_PACKAGEPIN=clk_in, i_RESETB=1, i_BYPASS=0,
            o_PLLOUTGLOBAL=clk_out, o_LOCK=locked,
        )
    # CLKOP's coarse phase in VCO cycles: ecppll's choice, (CLKOP_DIV - 1) // 2 (the phase is not used).
    return Instance(
        "EHXPLLL",
        p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
        p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
        p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
        p_CLKI_DIV=p["CLKI_DIV"], p_CLKFB_DIV=p["CLKFB_DIV"], p_CLKOP_DIV=p["CLKOP_DIV"],
        p_CLKOP_ENABLE="ENABLED", p_CLKOP_CPHASE=(p["CLKOP_DIV"] - 1) // 2, p_CLKOP_FPHASE=0,
        p_FEEDBK_PATH="CLKOP",
        i_CLKI=clk_in, i_CLKFB=clk_out, i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0,
        i_PHASEDIR=0, i_PHASESTEP=0, i_PHASELOADREG=0, i_PLLWAKESYNC=0, i_ENCLKOP=0,
        o_CLKOP=clk_out, o_LOCK=locked,
    )
