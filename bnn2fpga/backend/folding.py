"""Folding: how many output channels (PE) and input bits (SIMD) each engine handles per cycle.

An engine needs ``ceil(MH/PE) * ceil(MW/SIMD)`` cycles per vector and the pipeline
runs at its slowest engine (docs/hardware-contract.md), so folding is chosen per cycle budget:
for a budget T, every engine gets the fewest lanes (PE*SIMD) that meet T, and the
input stream the fewest pixels per beat. The automatic folding takes the smallest
budget whose estimated resources fit the board with a margin.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..boards import XILINX_BRAM36, Board
from ..hw.rom import bram18_count
from ..hw.spec import ceil_div


class FoldingError(ValueError):
    pass


@dataclass(frozen=True)
class LayerShape:
    """A folded layer: an MH x MW matrix applied to ``vectors`` input vectors per frame
    (1 for a dense layer, OH*OW windows for a convolution), each ``planes`` times (the
    bit planes of an integer-input first layer, issued one after another)."""

    name: str
    mh: int
    mw: int
    vectors: int = 1
    planes: int = 1
    # The layer collects its input vector from beats into memory (hw/vecbuf.py): a beat brings
    # ``collect_bits`` bits per plane, times the pixels per beat if ``collect_per_pixel``. 0: it
    # takes whole vectors.
    collect_bits: int = 0
    collect_per_pixel: bool = False

    def beat_bits(self, pixels_per_beat: int) -> int:
        return self.collect_bits * (pixels_per_beat if self.collect_per_pixel else 1)


#: Register spacing of the adder trees per synthesis family: (fixed ns per stage: clock-to-out, setup
#: and the route into the next register; ns per adder level: a LUT, its carry chain and a route).
#: Chosen so that the spacings the shipped builds were measured with come out at their clocks
#: (2 levels: xc7 at 100 MHz, ECP5 at 90-100 MHz, the iCE40 at 48 MHz) and a faster clock gets
#: fewer (xc7 at 200 MHz: 1). docs/timing.md has the measurements behind them.
LEVEL_DELAYS_NS: dict[str, tuple[float, float]] = {
    "xc7": (3.0, 2.5), "xcup": (3.0, 2.5), "ecp5": (3.0, 3.0), "ice40": (5.0, 6.0),
}
MAX_LEVELS_PER_STAGE = 16

#: Folds up to which a register-held vector's SIMD slice is a multiplexer (above: the vector rotates,
#: ``hw/spec.py`` ``MUX_FOLDS``), per synthesis family. One level of logic slices on every family at 8:
#: an 8:1 mux is two LUT4, a PFUMX and an L6MUX on the ECP5, a LUT6 and a MUXF7 on the 7-series.
#: The 7-series would take 16 in one slice (four LUT6, two MUXF7, a MUXF8) for about a quarter of the
#: rotation's LUTs, but its clock is measured on the ECP5 proxy, which places the very netlist Vivado
#: gets and where a 16:1 mux is four LUT4 levels (the FINN-shape CNV's critical path once): Xilinx
#: builds keep 8 so that the proxy's clock holds for them; a folding file may set 16.
SLICE_MUX_FOLDS: dict[str, int] = {"xc7": 8, "xcup": 8, "ecp5": 8, "ice40": 8}
MAX_MUX_FOLDS = 64


def slice_mux_folds(family: str) -> int:
    """``mux_folds`` for a part family (``SLICE_MUX_FOLDS``; unknown families as the 7-series)."""
    return SLICE_MUX_FOLDS.get(family, SLICE_MUX_FOLDS["xc7"])


def pipeline_levels(family: str, clock_mhz: float) -> int:
    """Adder levels between two pipeline registers that a clock of ``clock_mhz`` leaves room for
    on ``family`` (at least 1, at most 3: deeper trees save few registers and cost the clock)."""
    fixed, per_level = LEVEL_DELAYS_NS.get(family, LEVEL_DELAYS_NS["xc7"])
    return max(1, min(3, int((1e3 / clock_mhz - fixed) / per_level)))


@dataclass(frozen=True)
class Folding:
    pixels_per_beat: int
    layers: tuple[tuple[str, int, int], ...]  # (name, pe, simd)
    # Adder levels of the popcount trees between pipeline registers (0: one register after the
    # whole tree); None: the build chooses it from the clock and the part's family.
    popcount_levels_per_stage: int | None = None
    # Folds up to which a register-held vector is sliced by a multiplexer, above which it rotates
    # (``DenseLayerSpec.mux_folds``); None: the build chooses it from the part's family.
    mux_folds: int | None = None

    def of(self, name: str) -> tuple[int, int]:
        for n, pe, simd in self.layers:
            if n == name:
                return pe, simd
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pixels_per_beat": self.pixels_per_beat,
                               "layers": {name: {"pe": pe, "simd": simd} for name, pe, simd in self.layers}}
        if self.popcount_levels_per_stage is not None:
            out["popcount_levels_per_stage"] = self.popcount_levels_per_stage
        if self.mux_folds is not None:
            out["mux_folds"] = self.mux_folds
        return out

    @classmethod
    def from_json(cls, raw: Any, shapes: Sequence[LayerShape], samples: int, where: str = "folding",
                  pixel: int | None = None) -> Folding:
        """``pixel``: samples per pixel when the network takes a pixel stream (its ppb is fixed to it)."""
        if not isinstance(raw, dict) or "layers" not in raw or not isinstance(raw["layers"], dict):
            raise FoldingError(f"{where}: expected {{\"pixels_per_beat\": N, \"layers\": {{name: {{\"pe\": P, "
                               f"\"simd\": S}}}}}}; layer names: {', '.join(s.name for s in shapes)}")
        ppb = raw.get("pixels_per_beat", pixel or 1)
        if pixel is not None and ppb != pixel:
            raise FoldingError(f"{where}: a convolutional network takes one pixel per beat: pixels_per_beat must be "
                               f"{pixel} (the image's channels), not {ppb!r}")
        if isinstance(ppb, bool) or not isinstance(ppb, int) or ppb < 1 or samples % ppb:
            raise FoldingError(f"{where}: pixels_per_beat must be a positive divisor of {samples}, not {ppb!r}")
        unknown = sorted(set(raw["layers"]) - {s.name for s in shapes})
        if unknown:
            raise FoldingError(f"{where}: unknown layers {unknown}; this network has "
                               f"{', '.join(s.name for s in shapes)}")
        layers = []
        for s in shapes:
            if s.name not in raw["layers"]:
                raise FoldingError(f"{where}: no folding given for layer {s.name}")
            entry = raw["layers"][s.name]
            if not isinstance(entry, dict):
                raise FoldingError(f"{where}: layer {s.name}: expected {{\"pe\": P, \"simd\": S}}, not {entry!r}")
            pe, simd = entry.get("pe"), entry.get("simd")
            if isinstance(pe, bool) or not isinstance(pe, int) or not 1 <= pe <= s.mh:
                raise FoldingError(f"{where}: layer {s.name}: pe must be in 1..{s.mh} (its MH), not {pe!r}")
            if isinstance(simd, bool) or not isinstance(simd, int) or not 1 <= simd <= s.mw:
                raise FoldingError(f"{where}: layer {s.name}: simd must be in 1..{s.mw} (its MW), not {simd!r}")
            layers.append((s.name, pe, simd))
        levels = raw.get("popcount_levels_per_stage")
        if levels is not None and (isinstance(levels, bool) or not isinstance(levels, int)
                                   or not 0 <= levels <= MAX_LEVELS_PER_STAGE):
            raise FoldingError(f"{where}: popcount_levels_per_stage must be an integer in 0..{MAX_LEVELS_PER_STAGE} "
                               f"(adder levels between pipeline registers; 0: one register after the whole tree; "
                               f"leave it out to let the build choose from the clock), not {levels!r}")
        mux = raw.get("mux_folds")
        if mux is not None and (isinstance(mux, bool) or not isinstance(mux, int) or not 1 <= mux <= MAX_MUX_FOLDS):
            raise FoldingError(f"{where}: mux_folds must be an integer in 1..{MAX_MUX_FOLDS} (folds up to which a "
                               f"vector held in a register is sliced by a multiplexer, above which it rotates; leave "
                               f"it out to let the build choose from the part's family), not {mux!r}")
        return cls(ppb, tuple(layers), levels, mux)

    @classmethod
    def load(cls, path: Path, shapes: Sequence[LayerShape], samples: int, pixel: int | None = None) -> Folding:
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise FoldingError(f"{path}: cannot read folding JSON ({e})") from None
        return cls.from_json(raw, shapes, samples, str(path), pixel)


def beat_friendly_simd(simd: int, mw: int, beat: int) -> int:
    """The smallest SIMD >= ``simd`` that is a multiple or a divisor of ``beat`` (at most ``mw``).

    A layer that collects its vector from beats of ``beat`` bits stores it in rows of SIMD bits;
    when neither width divides the other a beat straddles two rows, which costs two memories and
    a rotation per plane (``hw/vecbuf.py``). Wider SIMD only shortens the layer's cycles."""
    if beat <= 0 or simd >= mw:
        return min(simd, mw)
    if simd <= beat:
        divisor = next(d for d in range(simd, beat + 1) if beat % d == 0)
        return divisor
    return min(mw, ceil_div(simd, beat) * beat)


def fold_layer(shape: LayerShape, budget: int, beat: int = 0) -> tuple[int, int]:
    """Fewest lanes (PE*SIMD) with vectors*ceil(MH/PE)*ceil(MW/SIMD) <= budget; among equals, the fewest
    block RAMs for the per-PE weight ROMs (depth = cycles, width = SIMD), then the fewest PEs.
    A budget below one cycle per vector gets the fully parallel layer. ``beat``: the bits per plane
    of the beats the layer collects its vector from (0: none); SIMD is then beat-friendly."""
    budget //= shape.vectors * shape.planes
    best: tuple[int, int, int, int] | None = None
    for pe in range(1, shape.mh + 1):
        groups = ceil_div(shape.mh, pe)
        if pe > 1 and groups == ceil_div(shape.mh, pe - 1):
            continue  # more lanes, same number of row groups: never better
        folds = budget // groups
        if folds < 1:
            continue
        simd = beat_friendly_simd(min(shape.mw, ceil_div(shape.mw, folds)), shape.mw, beat)
        depth = groups * ceil_div(shape.mw, simd)
        key = (pe * simd, pe * bram18_count(depth, simd), pe, simd)
        if best is None or key < best:
            best = key
    if best is None:
        return shape.mh, shape.mw
    return best[2], best[3]


def smallest_ppb(samples: int, budget: int, max_ppb: int | None = None) -> int:
    """The fewest pixels per beat that stream a frame within ``budget`` cycles; at most ``max_ppb``
    (the widest beat the host can send), where the input stream then sets a longer interval."""
    divisors = [d for d in range(1, samples + 1) if samples % d == 0 and (max_ppb is None or d <= max_ppb)]
    for d in divisors:
        if samples // d <= budget:
            return d
    return divisors[-1]


def fold_for_budget(shapes: Sequence[LayerShape], samples: int, budget: int, pixel: int | None = None,
                    max_ppb: int | None = None) -> Folding:
    """``pixel``: samples per pixel of a pixel-stream network (its ppb is fixed to that)."""
    ppb = pixel or smallest_ppb(samples, budget, max_ppb)
    return Folding(ppb, tuple((s.name, *fold_layer(s, budget, s.beat_bits(ppb))) for s in shapes))


def budgets(shapes: Sequence[LayerShape], samples: int) -> list[int]:
    """Candidate cycle budgets, fastest first: 1, 2, 3, 4, 6, 8, 12, ... (powers of two and their 1.5x)
    up to fully serial."""
    top = max([samples, *(s.mh * s.mw * s.vectors * s.planes for s in shapes)])
    out = {1, top}
    b = 2
    while b < top:
        out.update((b, b + b // 2))
        b *= 2
    return sorted(x for x in out if x <= top)


Estimator = Callable[[Folding], dict[str, float]]
Timer = Callable[[Folding], int]


@dataclass(frozen=True)
class FitReport:
    folding: Folding
    estimate: dict[str, float]
    initiation_interval: int


def interval_limit(clock_hz: float, fps: float) -> int:
    """The most cycles a frame may take at ``clock_hz`` to reach ``fps`` (rounding guarded: 100 MHz at
    1,020,408.16 FPS is 98 cycles, not 97.99999)."""
    return int(clock_hz / fps + 1e-9)


def fits(usage: dict[str, float], board: Board, margin: float, *, counted: bool = False) -> bool:
    """Within the board's logic (times ``margin``), flip-flops and block RAM. ``usage`` is the 7-series
    estimate (LUT6s, RAMB36s) unless ``counted``: then the synthesis's own counts, in the board's cells and
    blocks. An estimate's LUTs count as ``board.cells_per_lut6`` cells each (an iCE40 or ECP5 design
    takes about twice as many LUT4s), and block RAM is compared in Kbit: four RAMB36s (144 Kbit) do not
    fit the iCE40UP5K's 30 blocks of 4 Kbit."""
    lut = usage["lut"] if counted else usage["lut"] * board.cells_per_lut6
    bram_kbits = usage["bram36"] * (board.memory.kbits if counted else XILINX_BRAM36.kbits)
    return lut <= margin * board.lut and usage["ff"] <= margin * board.ff and bram_kbits <= board.bram_kbits


def auto_fold(shapes: Sequence[LayerShape], samples: int, board: Board, *, estimator: Estimator, timer: Timer,
              margin: float = 0.85, target_fps: float | None = None, clock_mhz: float | None = None,
              pixel: int | None = None, floor: int = 1, max_ppb: int | None = None) -> FitReport:
    """The fastest folding that fits (or, with target_fps, the cheapest that reaches it).

    ``pixel``: samples per pixel of a pixel-stream (conv) network, whose ppb is fixed to it.
    ``floor``: cycles per frame that no folding beats (a conv network's input and window units).
    ``max_ppb``: the most pixels per input beat the board's host link can deliver.
    In a conv network, engines that each need the whole interval wait on one another at row and
    frame boundaries, so a budget somewhat below the floor can still shorten the interval: every
    budget down to floor/4 that fits is timed, and the shortest interval wins (fewest LUT on ties)."""
    clock = (clock_mhz or board.clock_mhz) * 1e6
    candidates = sorted({max(b, floor // 4, 1) for b in budgets(shapes, samples)})
    if target_fps is not None:
        limit = interval_limit(clock, target_fps)
        if limit < 1:
            raise FoldingError(f"--target-fps {target_fps:g} needs under one cycle per frame at "
                               f"{clock / 1e6:g} MHz; the most is {clock:,.0f} FPS")
        candidates = sorted({c for c in candidates if c <= limit} | {limit}, reverse=True)
    last: FitReport | None = None
    best: FitReport | None = None
    fastest: FitReport | None = None
    for budget in candidates:
        if best is not None and budget > best.initiation_interval:
            break  # slower budgets cannot beat the best interval found (and take long to time)
        folding = fold_for_budget(shapes, samples, budget, pixel, max_ppb)
        est = estimator(folding)
        if pixel is not None and target_fps is None:
            if fits(est, board, margin):
                report = FitReport(folding, est, timer(folding))
                key = (report.initiation_interval, est["lut"])
                if best is None or key < (best.initiation_interval, best.estimate["lut"]):
                    best = report
            else:
                last = FitReport(folding, est, 0)
            continue
        report = FitReport(folding, est, timer(folding))
        if fastest is None or report.initiation_interval < fastest.initiation_interval:
            fastest = report
        if target_fps is not None:
            if report.initiation_interval <= limit:
                if fits(est, board, margin):
                    return report
                last = report
            continue
        if fits(est, board, margin):
            return report
        last = report
    if best is not None:
        return best
    if last is None:
        # Every folding timed was slower than the target: the rate is out of reach, not the chip.
        assert target_fps is not None and fastest is not None
        why = f"; its input and window units alone take {floor:,} cycles" if pixel is not None else ""
        raise FoldingError(
            f"--target-fps {target_fps:g} needs at most {clock // target_fps:,.0f} cycles per frame at "
            f"{clock / 1e6:g} MHz, but the fastest folding of this network takes {fastest.initiation_interval:,} "
            f"({clock / fastest.initiation_interval:,.0f} FPS{why}). Ask for at most that rate, or leave "
            f"--target-fps out for the fastest folding that fits")
    raise FoldingError(_no_fit_message(last, board, margin, target_fps, shapes))


def _no_fit_message(last: FitReport, board: Board, margin: float, target_fps: float | None,
                    shapes: Sequence[LayerShape]) -> str:
    e = last.estimate
    what = f"at {target_fps:g} FPS" if target_fps is not None else "at any folding"
    big = max(shapes, key=lambda s: s.mh * s.mw * s.vectors)
    windows = f" over {big.vectors} windows" if big.vectors > 1 else ""
    return (f"the design does not fit {board.name} ({board.part}) {what}: the most folded design still needs an "
            f"estimated {e['lut']:,.0f} LUT{_in_cells(e['lut'], board)} (of {board.lut:,}, {margin:.0%} usable), "
            f"{e['ff']:,.0f} FF, "
            f"{e['bram36']:g} BRAM36 ({e['bram36'] * 36:,.0f} Kbit of {board.bram_kbits:,}); "
            f"the largest layer is {big.name} ({big.mh} x {big.mw}"
            f"{windows}). Prune the network (bnn2fpga prune), keep fewer input planes, or pick a larger board")


def _in_cells(lut: float, board: Board) -> str:
    return "" if board.cells_per_lut6 == 1.0 else f" (about {lut * board.cells_per_lut6:,.0f} of its logic cells)"
