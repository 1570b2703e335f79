"""`bnn2fpga build`: checkpoint -> a self-contained, deterministic build folder (docs/architecture.md, build folder).

The build is one ordered list of named steps (``STEPS``); each reads and extends a
:class:`BuildState`. The folder is assembled beside the destination and moved into
place only when every step passed, so a refused build leaves nothing behind and an
existing folder is replaced only if it is a bnn2fpga build and ``--force`` was given.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import json
import math
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import checkpoint as ckpt_mod
from ..boards import BOARDS, Board, get_board
from ..contract.manifest import ClockRecord, ManifestError, foreign_files, write_manifest
from ..contract.wire import bits_per_pixel, payload_bytes, wire_planes
from ..hw import timing as hwtiming
from ..hw.generate import generate, render_template
from ..hw.rom import bram18_count, has_rom, weight_rom_is_block
from ..hw.spec import AcceleratorSpec
from ..ir.graph import Graph
from ..ir.pipeline import HARDWARE_STEPS, lower
from ..progress import progress_bar
from . import report as report_mod
from .folding import FitReport, Folding, FoldingError, auto_fold, fits, pipeline_levels, slice_mux_folds
from .lowering import check_supported, fixed_cycles, layer_shapes, pixel_stream, samples_per_frame, to_spec
from .state import (
    DMA_LENGTH_WIDTH,
    DMA_MAX_BYTES,
    Backend,
    BuildError,
    BuildOptions,
    BuildState,
    Overflow,
    Sections,
    Step,
    host_beat_bytes,
    manifest_base,
    merge_sections,
    write_bundle,
)

if TYPE_CHECKING:
    from .bitstream import DoesNotFit

BRAM36_BITS = 36 * 1024


def default_out(checkpoint_path: Path, board: str) -> Path:
    return Path("build") / f"{checkpoint_path.stem}-{board}"


# ---------------------------------------------------------------- steps

def step_load(s: BuildState) -> None:
    s.checkpoint = ckpt_mod.load(s.checkpoint_path)


def step_lower(s: BuildState) -> None:
    assert s.checkpoint is not None
    s.graph = lower(s.checkpoint, HARDWARE_STEPS)
    try:
        check_supported(s.graph)
    except ValueError as e:
        raise BuildError(str(e)) from None


def step_check_memory(s: BuildState) -> None:
    """Refuse at once when the weights alone exceed the board's block RAM."""
    assert s.graph is not None
    shapes = layer_shapes(s.graph)
    bits = sum(x.mh * x.mw for x in shapes)
    capacity = s.board.bram_kbits * 1024
    if bits > capacity:
        biggest = max(shapes, key=lambda x: x.mh * x.mw)
        planes = len(s.graph.input.planes)
        raise BuildError(
            f"the weights need {bits / 1e6:.2f} Mbit but {s.board.name} ({s.board.part}) has "
            f"{capacity / 1e6:.2f} Mbit of block RAM ({s.board.bram} {s.board.memory.kind}); "
            f"layer {biggest.name} alone "
            f"holds {biggest.mh * biggest.mw / 1e6:.2f} Mbit ({biggest.mh} x {biggest.mw}, over {planes} input "
            "bit planes). " + _pruning_hint(s.graph, capacity, s.checkpoint_path))


# Weight ROMs fill block RAM unevenly (each PE's ROM rounds up to whole blocks of the family's
# widths and depths), so a suggestion aims at this fraction of the bits the blocks hold.
ROM_PACKING = 0.75


def _pruning_hint(graph: Graph, capacity_bits: int, checkpoint: Path) -> str:
    """The pruning that would fit: for a dense network whose first layer reads the input bit planes
    as channels, the most planes and then the widest layers (``bnn2fpga prune --method bitslice``
    candidates) whose weights fill at most ROM_PACKING of the block RAM."""
    generic = ("Keep fewer input planes (bnn2fpga prune --method bitslice) or narrow the layers "
               "(bnn2fpga prune --method flip)")
    layers = graph.layers
    if pixel_stream(graph) or any(getattr(x, "input_planes", None) for x in layers):
        return generic
    inp = graph.input
    pixels = inp.channels * inp.height * inp.width
    hidden = [x.mh for x in layers[:-1]]
    budget = ROM_PACKING * capacity_bits
    options: list[tuple[int, float, list[int], int]] = []  # (planes, multiplier, widths, bits)
    for multiplier in (1.0, 0.75, 0.5, 0.375, 0.25):
        widths = [max(1, round(w * multiplier)) for w in hidden]
        for keep in range(len(inp.planes), 0, -1):
            fan_in = [pixels * keep, *widths]
            bits = sum(mh * mw for mh, mw in zip([*widths, layers[-1].mh], fan_in, strict=True))
            if bits <= budget:
                if not options or keep > options[-1][0]:  # a narrower option must keep more planes
                    options.append((keep, multiplier, widths, bits))
                break
    if options:
        options = options[:3]
        listed = "; ".join(f"{k} plane(s) with hidden widths {','.join(map(str, w))} ({b / 1e3:,.0f} kbit)"
                           for k, _, w, b in options)
        keeps = ",".join(str(k) for k in sorted({o[0] for o in options}))
        mults = ",".join(f"{m:g}" for m in sorted({o[1] for o in options}, reverse=True))
        return (f"Pruning that would fit (weights at most {ROM_PACKING:.0%} of the block RAM, as ROMs fill whole "
                f"blocks): {listed}. Train and compare them with bnn2fpga prune {checkpoint} --method bitslice "
                f"--keep-bits {keeps} --multipliers {mults} --save-candidates DIR --out pruned.pt, then build the "
                "candidate that fits; --method flip narrows the layers further")
    return generic + "; even one plane at a quarter of the widths does not fit this board"


def _spec_for(s: BuildState) -> Callable[[Folding], AcceleratorSpec]:
    """Lower the graph under a folding, once per folding: the search asks for both the
    estimate and the interval of every candidate, and lowering copies every weight."""
    assert s.graph is not None
    graph = s.graph

    levels, mux_folds = _pipeline_defaults(s)

    @functools.lru_cache(maxsize=8)
    def spec_for(folding: Folding) -> AcceleratorSpec:
        return to_spec(graph, folding, popcount_levels_per_stage=levels, mux_folds=mux_folds)
    return spec_for


def design_clock_mhz(board: Board) -> float:
    """The clock the engines are pipelined for: the board's fabric clock, or an open board's fastest try."""
    flow = board.open_flow
    return max(flow.clock_ladder_mhz) if flow is not None else board.clock_mhz


def _pipeline_defaults(s: BuildState) -> tuple[int, int]:
    """(popcount levels per stage, mux folds) for a folding that does not give them: the build
    option, else chosen from the part's family and the design clock."""
    levels = s.options.popcount_levels_per_stage
    if levels is None:
        levels = pipeline_levels(s.board.family, design_clock_mhz(s.board))
    return levels, slice_mux_folds(s.board.family)


def _with_pipeline(folding: Folding, defaults: tuple[int, int]) -> Folding:
    """``folding`` with its pipeline parameters filled in from ``defaults`` where it leaves them out,
    as ``folding.json`` records them: passing it back with ``--folding`` rebuilds the same pipeline."""
    levels, mux_folds = defaults
    return dataclasses.replace(
        folding,
        popcount_levels_per_stage=levels if folding.popcount_levels_per_stage is None
        else folding.popcount_levels_per_stage,
        mux_folds=mux_folds if folding.mux_folds is None else folding.mux_folds)


def _estimator(spec_for: Callable[[Folding], AcceleratorSpec]) -> Callable[[Folding], dict[str, float]]:
    return lambda folding: hwtiming.estimate(spec_for(folding))["total"]


def _timer(spec_for: Callable[[Folding], AcceleratorSpec]) -> Callable[[Folding], int]:
    return lambda folding: hwtiming.predict(spec_for(folding)).initiation_interval


def _only_expressible(estimator: Callable[[Folding], dict[str, float]],
                      spec_for: Callable[[Folding], AcceleratorSpec],
                      expressible: Callable[[AcceleratorSpec], bool]) -> Callable[[Folding], dict[str, float]]:
    """The estimator the folding search uses for a backend that cannot express every folding (HLS:
    words wider than Vitis holds): such a folding counts as not fitting, so the search goes on to
    the next slower one."""
    def estimate(folding: Folding) -> dict[str, float]:
        total = dict(estimator(folding))
        if not expressible(spec_for(folding)):
            total.update(lut=math.inf, ff=math.inf)
        return total
    return estimate


def _pixel(graph: Graph) -> int | None:
    """Samples per input beat fixed by a pixel-stream (conv) network: one pixel."""
    return graph.input.channels if pixel_stream(graph) else None


def step_fold(s: BuildState) -> None:
    assert s.graph is not None
    shapes = layer_shapes(s.graph)
    samples = samples_per_frame(s.graph)
    spec_for = _spec_for(s)
    estimator, timer = _estimator(spec_for), _timer(spec_for)
    expressible = backends()[s.options.backend].searchable if s.options.backend in BACKENDS else None
    searched = estimator if expressible is None else _only_expressible(estimator, spec_for, expressible)
    fold = functools.partial(auto_fold, shapes, samples, s.board, estimator=searched, timer=timer,
                             margin=s.options.margin, pixel=_pixel(s.graph), floor=fixed_cycles(s.graph),
                             max_ppb=_max_ppb(s))
    target = s.options.target_fps
    link = s.board.host_link
    inp = s.graph.input
    frame_bytes = inp.channels * inp.height * inp.width
    packing = ""
    if s.board.open_flow is not None:  # the UART bridge carries only the planes read
        kept = len(wire_planes(inp.planes, inp.table is not None))
        bits = bits_per_pixel(kept)
        if bits < 8:
            packing = (f" ({frame_bytes:,} pixels, {kept} plane{'s' if kept > 1 else ''} packed in {bits} "
                       f"bit{'s' if bits > 1 else ''} each)")
            frame_bytes = payload_bytes(frame_bytes, kept)
    io_fps = link.frames_per_second(frame_bytes) if link is not None else None
    s.rate = {"frame_bytes": frame_bytes, "host_link": link.name if link else None,
              "host_bytes_per_second": link.bytes_per_second if link else None,
              "host_link_source": link.source if link else None, "host_fps": io_fps}
    try:
        if s.options.folding is not None:
            folding = Folding.load(s.options.folding, shapes, samples, _pixel(s.graph))
            s.fit = FitReport(folding, estimator(folding), timer(folding))
            if not fits(s.fit.estimate, s.board, 1.0):
                raise BuildError(_refusal(s, s.fit.estimate, "the estimate for this folding"))
            s.rate["bound"] = "folding"
            s.rate["why"] = f"the folding given with --folding ({s.options.folding})"
        elif s.interval_limit is not None:  # nextpnr could not place a faster folding (see Refold)
            limit = s.interval_limit
            placed = [r.folding for r in s.refolds]
            s.fit = fold(target_fps=s.board.clock_mhz * 1e6 / limit)
            while s.fit.folding in placed:  # the cheapest within the limit is one that did not fit
                limit = max(limit + 1, math.ceil(limit * 1.15))
                s.fit = fold(target_fps=s.board.clock_mhz * 1e6 / limit)
            tried = "; ".join(f"{r.text} ({r.interval:,} cycles/frame) needed {r.overfill:.0%}" for r in s.refolds)
            s.rate["bound"] = "resources"
            s.rate["why"] = (f"the fastest folding nextpnr could place: {tried} of the board's logic cells, so the "
                             f"build took the cheapest folding within {limit:,} cycles per frame")
            if io_fps:
                s.rate["why"] += f" (slower than the {io_fps:,.0f} frames/s its host link could feed)"
            s.rate["refolds"] = [r.to_json() for r in s.refolds]
        elif isinstance(target, int | float):
            s.fit = fold(target_fps=float(target))
            s.rate["bound"] = "target"
            s.rate["why"] = f"--target-fps {target:g}: the cheapest folding that reaches it"
        elif target is None and io_fps is not None:
            try:
                s.fit = fold(target_fps=io_fps)
                s.rate["bound"] = "I/O"
                s.rate["why"] = (f"the host link ({link.name}, {link.bytes_per_second / 1e6:,.1f} MB/s peak) feeds "
                                 f"{frame_bytes:,} bytes per frame{packing} at most {io_fps:,.0f} times a second; the "
                                 "cheapest folding that keeps up with it (--target-fps max: the fastest that fits)")
            except FoldingError:
                _fastest(s, fold)
        else:
            _fastest(s, fold)
    except FoldingError as e:
        raise BuildError(str(e)) from None
    s.fit = FitReport(_with_pipeline(s.fit.folding, _pipeline_defaults(s)), s.fit.estimate,
                      s.fit.initiation_interval)
    s.spec = spec_for(s.fit.folding)
    s.timing = hwtiming.predict(s.spec)
    s.estimate = hwtiming.estimate(s.spec)


def _max_ppb(s: BuildState) -> int | None:
    """Pixels (bytes) per beat the host can send: an AXI DMA's widest stream, rounded to a power of two."""
    link = s.board.host_link
    return link.max_beat_bytes if link is not None else None


def _fastest(s: BuildState, fold: Any) -> None:
    """The fastest folding that fits; says whether the chip or the conv input/window units bound it."""
    assert s.graph is not None
    s.fit = fold(target_fps=None)
    floor = fixed_cycles(s.graph)
    widest = _max_ppb(s)
    samples = samples_per_frame(s.graph)
    if widest is not None and s.fit.folding.pixels_per_beat * 2 > widest and \
            s.fit.initiation_interval <= -(-samples // s.fit.folding.pixels_per_beat):
        s.rate["bound"] = "I/O"
        s.rate["why"] = (f"the input stream at its widest ({s.fit.folding.pixels_per_beat} pixels per beat; the "
                         f"host link's beats are at most {widest} bytes) takes {s.fit.initiation_interval:,} cycles "
                         "per frame")
    elif s.fit.initiation_interval <= floor:
        s.rate["bound"] = "compute"
        s.rate["why"] = (f"the network's input and window units take {floor:,} cycles per frame, which no "
                         "folding shortens")
    else:
        s.rate["bound"] = "resources"
        s.rate["why"] = (f"the fastest folding within {s.options.margin:.0%} of the board's LUT and FF and all its "
                         "BRAM")
    if s.options.target_fps is None and s.rate.get("host_fps"):
        s.rate["why"] += f" (slower than the {s.rate['host_fps']:,.0f} frames/s its host link could feed)"


def step_generate(s: BuildState) -> None:
    assert s.spec is not None
    s.bundle = dict(generate(s.spec))


def _check_vivado_target(s: BuildState) -> None:
    """Refuse what the generated vivado.tcl could only fail on: a Xilinx board without a block design,
    or an input beat wider than the AXI DMA streams."""
    assert s.spec is not None
    board = s.board
    if board.vendor == "xilinx" and board.block_design is None:
        known = sorted(b.name for b in BOARDS.values() if b.block_design is not None)
        raise BuildError(f"{board.name} ({board.part}) has no block design for vivado.tcl (its processing system, "
                         f"board part and ports); boards with one: {', '.join(known)}. Choose one of them with "
                         "--board, or give the board a ZynqBlockDesign in bnn2fpga/boards.py")
    beat = host_beat_bytes(s.spec.tdata_bits)
    if board.block_design is not None and beat > DMA_MAX_BYTES:
        pixel_bytes = -(-s.spec.tdata_bits // (8 * s.spec.pixels_per_beat))
        raise BuildError(f"the accelerator reads {s.spec.pixels_per_beat} pixels per beat ({s.spec.tdata_bits} bits, "
                         f"{beat} bytes on the DMA's power-of-two stream), wider than the {DMA_MAX_BYTES * 8}-bit "
                         "stream an AXI DMA offers (PG021): rebuild with a lower --target-fps, or a --folding with "
                         f"pixels_per_beat at most {DMA_MAX_BYTES // pixel_bytes}")


def block_rom_bram18(spec: AcceleratorSpec) -> int:
    """RAMB18 the weight ROMs forced into block RAM (``rom_style = "block"``) take at least: what
    vivado.tcl expects to find in the synthesised accelerator (see docs/vivado.md, block RAM check)."""
    return sum(layer.pe * bram18_count(layer.rom_depth, layer.simd) for layer in spec.mvtus
               if has_rom(layer) and weight_rom_is_block(layer))


def step_write(s: BuildState) -> Sections:
    assert s.spec is not None and s.graph is not None
    _check_vivado_target(s)
    write_bundle(s)
    base = manifest_base(s)
    ctx = {"top": base["top"], "board": s.board.name, "part": s.board.part, "clock_mhz": s.board.clock_mhz,
           "sources": base["sources"], "memories": base["memories"],
           "in_bits": s.spec.tdata_bits, "pixels_per_beat": s.spec.pixels_per_beat,
           "host_beat_bytes": host_beat_bytes(s.spec.tdata_bits), "dma_max_bytes": DMA_MAX_BYTES,
           "dma_length_width": DMA_LENGTH_WIDTH,
           "input_beats": s.spec.input_beats, "classes": s.spec.classes,
           "height": s.graph.input.height, "width": s.graph.input.width,
           "channels": s.spec.channels}
    if s.board.block_design is not None:
        (s.staging / "vivado.tcl").write_text(render_template(
            "vivado.tcl.j2", **ctx, bd=s.board.block_design, block_rom_bram18=block_rom_bram18(s.spec)))
    (s.staging / "driver.py").write_text(render_template("driver.py.j2", **ctx))
    return base


def step_synth(s: BuildState) -> Sections | None:
    if not s.options.synth or s.board.open_flow is not None:
        return None  # open-toolchain boards: place and route counts the real netlist (step_bitstream)
    from .synth import SynthError, synth_sources

    try:
        result = synth_sources(s.staging, s.manifest["sources"], s.manifest["top"], s.board.family,
                               memories=s.manifest["memories"], on_pass=s.progress,
                               share_block_roms=not s.options.exact_roms)
    except SynthError as e:
        raise BuildError(f"Yosys synthesis failed: {e}") from None
    finally:
        shutil.rmtree(s.staging / "sim_build", ignore_errors=True)  # scratch, not part of the build
    s.synth = {"lut": result.lut_total, "lut_logic": result.lut, "lutram": result.lutram, "srl": result.srl,
               "ff": result.ff, "bram36": result.bram, "dsp": result.dsp,
               "block_roms": "one per layer" if result.shared_block_roms else "each PE"}
    if result.depth is not None:
        s.synth["logic_depth"] = result.depth.to_json()
    s.synth_seconds, s.synth_cached = result.seconds, result.cached
    usage = {"lut": s.synth["lut"], "ff": s.synth["ff"], "bram36": s.synth["bram36"]}
    if not fits(usage, s.board, 1.0, counted=True):
        raise BuildError(_refusal(s, usage, "Yosys counts", s.board.memory.kind))
    return {"resources": {"yosys": s.synth}}


def step_proxy(s: BuildState) -> Sections | None:
    """``--ecp5-proxy``: the accelerator core placed and routed on an ECP5-85F, 3 seeds (docs/timing.md)."""
    if not s.options.ecp5_proxy or s.board.open_flow is not None:
        return None
    from .proxy import ecp5_proxy
    from .synth import SynthError

    if s.progress is not None:
        s.progress("nextpnr-ecp5, 3 seeds")
    work = s.staging / "ecp5_proxy"
    try:
        result = ecp5_proxy(s.staging, s.manifest["sources"], s.manifest["top"], s.spec.tdata_bits if s.spec else 8,
                            work_dir=work, seeds=(1, 2, 3), target_mhz=s.board.clock_mhz)
    except SynthError as e:
        raise BuildError(f"ECP5 proxy place and route failed: {e}") from None
    finally:
        for scratch in work.glob("*/") if work.is_dir() else ():
            shutil.rmtree(scratch, ignore_errors=True)  # netlists and logs: large, and not part of the build
    clock = ClockRecord.from_json(s.manifest["clock"])
    return {"clock": dataclasses.replace(clock, ecp5_proxy=result.to_json()).to_json()}


BRIDGE_TIMEOUT_BYTES = 4  # idle byte times that end a broken request (hw/uart.py)


def step_bitstream(s: BuildState) -> Sections | None:
    """Open-toolchain boards: the board core for simulation (``<name>_board.v``) and, unless
    ``--no-synth``, the bitstream from Yosys, nextpnr and the packer at a clock that meets timing."""
    flow = s.board.open_flow
    if flow is None:
        return None
    assert s.spec is not None
    from ..hw.board import bridge_spec
    from ..hw.generate import board_module, generate_board
    from .bitstream import BitstreamError, DoesNotFit, choose_baud, make_bitstream

    if s.options.synth:
        try:
            result = make_bitstream(s.spec, s.board.name, s.staging, name=s.spec.name,
                                    timeout_bytes=BRIDGE_TIMEOUT_BYTES, on_pass=s.progress)
        except DoesNotFit as e:
            refold_or_refuse(s, e)
        except BitstreamError as e:
            raise BuildError(str(e)) from None
        clock_mhz, baud, divisor = result.clock_mhz, result.baud, result.clocks_per_bit
        sections: Sections = {
            "bitstream": result.to_json(flow),
            "clock": ClockRecord(clock_mhz, "nextpnr", f"nextpnr's post-route Fmax of the whole board design, "
                                 f"{result.fmax_mhz:.1f} MHz", result.fmax_mhz).to_json()}
    else:
        clock_mhz = flow.clock_ladder_mhz[-1]  # the slowest: nothing was placed, so nothing better is known
        baud, divisor = choose_baud(flow, int(clock_mhz * 1e6))
        sections = {
            "bitstream": {"skipped": "--no-synth: no place and route; the clock is the board's slowest, not checked "
                                     "by timing analysis"},
            "clock": ClockRecord(clock_mhz, "assumed", "--no-synth: nothing was placed; the board's slowest clock, "
                                 "unchecked").to_json()}
    for name, text in generate_board(s.spec, divisor, BRIDGE_TIMEOUT_BYTES).items():
        (s.staging / name).write_text(text)
    top = board_module(s.spec)
    bridge = bridge_spec(s.spec, divisor, BRIDGE_TIMEOUT_BYTES)
    assert s.timing is not None
    sections["uart"] = {"top": top, "sources": [f"{top}.v", f"{s.spec.name}_rom.v"], "baud": baud,
                        "divisor": divisor, "clock_hz": int(round(clock_mhz * 1e6)),
                        "frame_bytes": bridge.frame_bytes, "pixels": bridge.pixels, "planes": list(bridge.planes),
                        "bits_per_pixel": bridge.bits_per_pixel, "classes": s.spec.classes,
                        "timeout_bytes": BRIDGE_TIMEOUT_BYTES}
    sections["clock_mhz"] = clock_mhz
    sections["cycles"] = {"fps": clock_mhz * 1e6 / s.timing.initiation_interval}
    return sections


MAX_REFOLDS = 3  # placements of smaller foldings after the first that did not fit


class Refold(Exception):  # noqa: N818 (a signal to the build loop, not an error)
    """The placer could not fit the chosen folding: fold again from :func:`step_fold`, the cheapest
    folding within ``BuildState.interval_limit`` cycles per frame that was not placed before."""


def refold_or_refuse(s: BuildState, e: DoesNotFit) -> None:
    """After nextpnr could not place the design: fold again, the cheapest folding within an interval
    longer by the factor it overfilled the logic cells by and the build's margin, unless the user
    chose the folding or the frame rate, the refolds are spent, or nextpnr said nothing to go by.
    (A small FPGA's logic cells are where the estimate is weakest: it counts 6-input LUTs and
    leaves out the UART bridge.)"""
    assert s.fit is not None
    if e.memory:  # the weights' block RAM does not shrink with the folding: refolding cannot help
        over = ", ".join(f"{u['used']} of the {u['available']} {kind}" for kind, u in e.memory.items())
        raise BuildError(f"the design does not fit {s.board.name}: its block RAM needs {over} blocks nextpnr has "
                         "(the estimate undercounted it; the weights need the same memory at any folding). "
                         "Keep fewer input planes or narrow the layers (bnn2fpga prune), or pick a larger board")
    chosen = s.options.folding is not None or isinstance(s.options.target_fps, int | float)
    if chosen or len(s.refolds) >= MAX_REFOLDS or math.isnan(e.overfill):  # NaN: nextpnr printed no utilisation
        tried = "".join(f" Before: {r.text} needed {r.overfill:.0%} of the logic cells." for r in s.refolds)
        hint = " Fold with more cycles per frame (a lower --target-fps) or prune." if chosen else ""
        if s.refolds and e.overfill > 0.97 * s.refolds[0].overfill:
            hint += _fixed_logic_hint(s)
        raise BuildError(str(e) + tried + hint)
    interval = s.fit.initiation_interval
    s.refolds.append(Overflow(s.fit.folding, interval, e.overfill))
    # A placement can fail short of 100 % (carry chains, packing), so always at least 1/margin slower.
    s.interval_limit = max(interval + 1, math.ceil(interval * max(e.overfill, 1.0) / s.options.margin))
    raise Refold


def _fixed_logic_hint(s: BuildState) -> str:
    """Why folding slower stopped helping: what the design holds at any folding."""
    if s.spec is None or s.graph is None:
        return ""
    if pixel_stream(s.graph):
        return " Folding slower no longer shrinks it: narrow the layers or keep fewer input planes."
    bits = s.spec.samples_per_frame * len(s.spec.planes)
    return (f" Folding slower no longer shrinks it: at any folding the dense first layer holds its input frame "
            f"twice in flip-flops ({len(s.spec.planes)} plane(s) x {s.spec.samples_per_frame:,} pixels = {bits:,} "
            f"bits, one frame being received and one computed), {2 * bits:,} of the {s.board.ff:,} flip-flops: "
            "keep fewer input planes (bnn2fpga prune --method bitslice).")




def _refusal(s: BuildState, usage: dict[str, float], source: str, block: str = "BRAM36") -> str:
    """Numbers, and a folding that would fit once the estimate is calibrated by this synthesis."""
    assert s.fit is not None and s.graph is not None
    est = s.fit.estimate
    scale = {k: (usage[k] / est[k]) if est.get(k) else 1.0 for k in usage}
    spec_for = _spec_for(s)
    base = _estimator(spec_for)

    def calibrated(folding: Folding) -> dict[str, float]:
        e = base(folding)
        return {k: e[k] * max(1.0, scale.get(k, 1.0)) for k in e}
    try:
        better = auto_fold(layer_shapes(s.graph), samples_per_frame(s.graph), s.board, estimator=calibrated,
                           timer=_timer(spec_for), margin=s.options.margin, pixel=_pixel(s.graph),
                           floor=fixed_cycles(s.graph), max_ppb=_max_ppb(s))
        hint = (f"a folding that should fit (II {better.initiation_interval} cycles, "
                f"{better.estimate['lut']:,.0f} LUT, {better.estimate['bram36']:g} BRAM36 estimated): "
                f"{json.dumps(better.folding.to_json(), separators=(',', ':'))} — save it and pass --folding FILE")
    except FoldingError:
        hint = "no folding fits: prune the network or choose a larger board"
    b = s.board
    return (f"the design does not fit {b.name}: {source} {usage['lut']:,.0f} LUT (of {b.lut:,}), "
            f"{usage['ff']:,.0f} FF (of {b.ff:,}), {usage['bram36']:g} {block} (the board has "
            f"{b.bram} {b.memory.kind}, {b.bram_kbits:,} Kbit); {hint}")


def step_manifest(s: BuildState) -> None:
    """The manifest, written once and read back through the contract's reader (a build never leaves
    a folder its own readers refuse), and the folding it was built with."""
    (s.staging / "folding.json").write_text(json.dumps(s.manifest["folding"], indent=1) + "\n")
    try:
        write_manifest(s.staging, s.manifest)
    except ManifestError as e:
        raise BuildError(f"internal error: the build's own manifest does not read back ({e}); please report it") \
            from None


def step_report(s: BuildState) -> None:
    assert s.spec is not None and s.timing is not None
    s.report = report_mod.render(s.manifest, s.spec, s.timing, s.estimate, s.synth, s.board)
    (s.staging / "report.md").write_text(s.report)


def step_install(s: BuildState) -> None:
    if s.out.exists():
        shutil.rmtree(s.out)
    s.out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(s.staging, s.out)


#: Every backend's first steps: the network, its integer graph and its folding.
FRONT: tuple[Step, ...] = (
    ("load checkpoint", step_load),
    ("lower to integer IR", step_lower),
    ("check weight memory", step_check_memory),
    ("fold", step_fold),
)
#: Every backend's last steps, after its report: the manifest, written once (listing every file the build
#: wrote), then the folder moved into place.
BACK: tuple[Step, ...] = (("write manifest", step_manifest),)

RTL = Backend(
    name="rtl", description="Verilog (Amaranth), synthesised by Yosys; open boards placed and routed by nextpnr",
    checks=(),
    steps=(("generate Verilog", step_generate), ("write build folder", step_write), ("synthesize (Yosys)", step_synth),
           ("ECP5 proxy clock", step_proxy), ("place, route and pack", step_bitstream)),
    report=step_report,
)


def backends() -> dict[str, Backend]:
    """The backends by name (``--backend``): RTL, and Vitis HLS C++ (:data:`bnn2fpga.backend.hls_build.HLS`)."""
    from .hls_build import HLS

    return {b.name: b for b in (RTL, HLS)}


BACKENDS = ("rtl", "hls")


def steps_for(options: BuildOptions) -> tuple[Step, ...]:
    """A backend's build: its checks, the shared front, its own steps, the manifest, its report, install."""
    table = backends()
    if options.backend not in table:
        raise BuildError(f"unknown backend {options.backend!r}; choose one of {', '.join(table)}")
    b = table[options.backend]
    return (*b.checks, *FRONT, *b.steps, ("report", b.report), *BACK, ("install", step_install))


def _check_out(out: Path, force: bool) -> None:
    if not out.exists():
        return
    foreign = foreign_files(out)  # None: not a build folder
    if foreign is None and (out.is_file() or any(out.iterdir())):
        raise BuildError(f"{out} exists and is not a bnn2fpga build folder; choose another --out "
                         "(bnn2fpga never deletes files it did not write)")
    if foreign is not None and not force:
        raise BuildError(f"{out} already holds a build; pass --force to replace it or choose another --out")
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise BuildError(f"{out} holds files bnn2fpga did not write ({shown}); --force replaces only a build's "
                         "own files: move them out, or choose another --out")


@dataclass(frozen=True)
class Plan:
    """What `build` would choose for a checkpoint and board, generating nothing: its folding,
    estimate and interval, or the reason no folding fits (the message `build` would refuse with)."""

    fits: bool
    reason: str | None = None
    folding: Folding | None = None
    estimate: dict[str, float] | None = None
    initiation_interval: int | None = None
    rate: dict[str, Any] = field(default_factory=dict)


def plan(checkpoint_path: Path | str, options: BuildOptions) -> Plan:
    """The first steps of :func:`build` (load, lower, memory check, folding); seconds, not minutes."""
    checkpoint_path = Path(checkpoint_path)
    state = BuildState(checkpoint_path, options, get_board(options.board), Path(), Path())
    try:
        for step in (step_load, step_lower, step_check_memory, step_fold):
            step(state)
    except BuildError as e:
        return Plan(False, reason=str(e), rate=state.rate)
    assert state.fit is not None
    return Plan(True, folding=state.fit.folding, estimate=state.fit.estimate,
                initiation_interval=state.fit.initiation_interval, rate=state.rate)


def build(checkpoint_path: Path | str, options: BuildOptions, *, show_progress: bool = True) -> BuildState:
    checkpoint_path = Path(checkpoint_path)
    board = get_board(options.board)
    steps = steps_for(options)
    if options.ecp5_proxy and (board.open_flow is not None or options.backend != "rtl"):
        raise BuildError("--ecp5-proxy places a Xilinx board's Verilog core on an ECP5 for a proxy clock; "
                         + (f"{board.name} is placed and routed by nextpnr itself, and its report gives that Fmax"
                            if board.open_flow is not None else "the HLS backend writes C++, not Verilog")
                         + ": drop --ecp5-proxy")
    out = options.out or default_out(checkpoint_path, board.name + ("-hls" if options.backend == "hls" else ""))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)  # build/ on a fresh checkout: the README's first command
    except OSError as e:
        raise BuildError(f"--out {out}: cannot create {out.parent} ({e.strerror}); choose another --out") from None
    with _folder_lock(out):
        _check_out(out, options.force)
        return _run_steps(checkpoint_path, options, board, out, steps, show_progress)


@contextlib.contextmanager
def _folder_lock(out: Path) -> Iterator[None]:
    """One build at a time into ``out``: a second one is refused at once instead of both writing the same
    staging folder and one silently replacing the other. The lock is the kernel's (``flock``), so a build
    that died holds nothing."""
    lock_path = out.parent / f".{out.name}.lock"
    try:
        handle = lock_path.open("a")
    except OSError as e:
        raise BuildError(f"--out {out}: cannot write in {out.parent} ({e.strerror}); choose another --out") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BuildError(f"another bnn2fpga build is writing {out} now; wait for it to finish or choose "
                             "another --out") from None
        yield
    finally:
        lock_path.unlink(missing_ok=True)
        handle.close()


def _run_steps(checkpoint_path: Path, options: BuildOptions, board: Board, out: Path, steps: tuple[Step, ...],
               show_progress: bool) -> BuildState:
    staging = out.parent / f".{out.name}.partial"
    state = BuildState(checkpoint_path, options, board, out, staging)
    try:
        with progress_bar(show_progress) as bar:
            task = bar.add_task("build", total=len(steps), info="")
            i = 0
            while i < len(steps):
                name, step = steps[i]
                bar.update(task, info=name)
                state.progress = functools.partial(_show, bar, task, name)
                try:
                    sections = step(state)
                except Refold:
                    # Back to the folding, with the placer's correction; the staging folder and the
                    # manifest start afresh.
                    shutil.rmtree(staging, ignore_errors=True)
                    state.manifest = {}
                    i = next(k for k, (_, st) in enumerate(steps) if st is step_fold)
                    bar.update(task, completed=i, info=f"fold again ({len(state.refolds)} did not fit)")
                    continue
                if sections:
                    merge_sections(state.manifest, sections)
                bar.update(task, advance=1)
                i += 1
            bar.update(task, info="done")
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return state


def _show(bar: Any, task: Any, step: str, what: str) -> None:
    bar.update(task, info=f"{step}: {what}")
