"""`bnn2fpga build --backend hls`: the same AcceleratorSpec as Vitis HLS C++, and its C simulation with g++.

The RTL build's folding and engine chain (``lowering.to_spec``) are rendered as one C++
function per engine (``templates/hls/design.cpp.j2``), connected by ``hls::stream``s under
``#pragma HLS DATAFLOW``, plus a testbench, a Vitis HLS TCL script and ``bnn2fpga_hls.h``:
our own small model of ``ap_uint``/``hls::stream`` that the design compiles against with
plain g++ (under Vitis the vendor headers take its place). ``bnn2fpga sim`` compiles the
design and testbench with ``g++ -O2`` (:func:`run_frames`) and compares every class
popcount with ``reference.py``; compiled with ``-O3 -march=native`` the same code is a
native inference engine (``benchmarks/reference_speed.py``).

Stream bit orders are the RTL's (docs/hardware-contract.md), so each function mirrors one
RTL engine: slicer, MVTU (dense, conv, output), sliding window, max-pool, output stage; a pixel
FIFO becomes the depth of the stream in front of its window unit. Unlike the RTL, no engine
holds a whole vector in one value (Vitis documents ap_uint up to 4,096 bits): an MVTU reads
SIMD-wide folds and writes PE-wide row groups, and width converters (:func:`_dwc`, also the
flatten) re-cut words between engines whose widths differ.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import numpy as np

from .. import reference
from ..boards import BOARDS, Board
from ..hw import timing as hwtiming
from ..hw.engines import describe
from ..hw.pool import PoolSpec
from ..hw.rom import weight_words
from ..hw.spec import AcceleratorSpec, DenseLayerSpec
from ..hw.stream import FifoSpec, FlattenSpec
from ..hw.window import WindowSpec
from ..ir.graph import Graph
from ..sim.runner import SimulationError, hash_files
from . import report as report_mod

if TYPE_CHECKING:
    from .build import BuildState

__all__ = ["HLS_MAX_BITS", "HlsUnsupported", "CsimResult", "check_board", "check_expressible", "generate",
           "hls_timing", "file_names", "compile_design", "run_frames", "render_report", "HEADER"]

#: Widest ap_uint the generated C++ may use: UG1399 documents ap_uint widths up to 4,096 bits
#: (bnn2fpga_hls.h sets AP_INT_MAX_W to that; the vendor default is 1,024).
HLS_MAX_BITS = 4096
HEADER = "bnn2fpga_hls.h"
TB_FRAMES = 8  # frames the Vitis testbench checks by itself (tb_frames.bin / tb_expected.bin)
CSIM_FLAGS: tuple[str, ...] = ("-std=c++17", "-O2")
NATIVE_FLAGS: tuple[str, ...] = ("-std=c++17", "-O3", "-march=native")
IP_VENDOR, IP_LIBRARY, IP_VERSION = "bnn2fpga.org", "hls", "1.0"
#: What the expected interval leaves out (manifest ``cycles.interval_overhead``, report, docs/hls.md).
INTERVAL_OVERHEAD = ("per frame, each process enters and leaves its pipelined loop once: the slowest one adds "
                     "its pipeline depth (csynth's iteration latency) plus about 2 cycles of loop entry and exit "
                     "to the interval")


class HlsUnsupported(ValueError):
    """The HLS backend cannot express this network or board; the message names the layer and what to do."""


def check_board(board: Board) -> None:
    if board.vendor != "xilinx":
        xilinx = ", ".join(sorted(b.name for b in BOARDS.values() if b.vendor == "xilinx"))
        raise HlsUnsupported(f"--backend hls writes a Vitis HLS project, which targets Xilinx parts only; "
                             f"{board.name} is a {board.vendor.capitalize()} board ({board.part}). Choose one of "
                             f"{xilinx}, or build RTL for {board.name} (--backend rtl)")


def _check_width(layer: str, what: str, bits: int, fix: str = "") -> None:
    if bits > HLS_MAX_BITS:
        raise HlsUnsupported(f"layer {layer}: {what} is {bits:,} bits, wider than the {HLS_MAX_BITS:,}-bit ap_uint "
                             f"UG1399 documents for Vitis HLS; {fix or 'narrow the layer (bnn2fpga prune)'}, or use "
                             "the RTL backend (--backend rtl)")


def check_expressible(spec: AcceleratorSpec) -> None:
    """Raise :class:`HlsUnsupported` unless every value the design holds fits a 4,096-bit ap_uint."""
    _engines(spec)


def file_names(spec: AcceleratorSpec) -> dict[str, str]:
    top = spec.name
    return {"design": f"{top}.cpp", "header": f"{top}.h", "testbench": f"{top}_tb.cpp", "support": HEADER,
            "tcl": "run_hls.tcl", "tb_frames": "tb_frames.bin", "tb_expected": "tb_expected.bin"}


def _hex_words(value: int, words: int) -> list[str]:
    return [f"0x{(value >> (64 * i)) & ((1 << 64) - 1):x}ull" for i in range(words)]


@dataclass(frozen=True)
class _Words:
    """A stream between engines: each of ``vectors`` vectors per frame is ``bits`` bits sent as
    ``count`` words of ``width`` bits, word k holding bits ``k*width ..`` (the last word's bits past
    ``bits`` are don't-care)."""

    name: str
    width: int
    count: int
    bits: int
    vectors: int


def _mvtu(layer: DenseLayerSpec, fn: str) -> dict[str, Any]:
    words = -(-layer.simd // 64)
    ob, planes = layer.out_bits, layer.plane_count
    fix = (f"choose SIMD <= {HLS_MAX_BITS // planes:,} for it (--folding) so its input word fits"
           if planes == 1 else f"choose SIMD <= {HLS_MAX_BITS // planes:,} (--folding): an input word carries "
           f"SIMD x {planes} plane bits")
    _check_width(layer.name, f"its input word (SIMD {layer.simd} x {planes} plane(s))", layer.simd * planes, fix)
    _check_width(layer.name, f"its output word (PE {layer.pe} x {ob} bit(s))", layer.pe * ob,
                 f"choose PE <= {HLS_MAX_BITS // ob:,} for it (--folding)")
    thresholds = None
    if layer.thresholds is not None:
        padded = np.zeros(layer.ng * layer.pe, dtype=np.int64)
        padded[:layer.mh] = layer.thresholds
        thresholds = [[int(padded[g * layer.pe + p]) for g in range(layer.ng)] for p in range(layer.pe)]
    kind = "output layer" if layer.is_output else "conv layer" if layer.is_conv else "dense layer"
    return {"kind": "mvtu", "what": kind, "fn": fn, "name": layer.name, "mh": layer.mh, "mw": layer.mw,
            "pe": layer.pe, "simd": layer.simd, "nf": layer.nf, "ng": layer.ng, "pc": planes,
            "vectors": layer.vectors, "in_bits": layer.simd * planes, "out_bits": layer.pe * ob, "ob": ob,
            "acc_bits": layer.acc_bits, "pc_bits": layer.simd.bit_length(), "thr_bits": layer.threshold_bits,
            "trip": layer.vectors * layer.ng * planes * layer.nf, "depth": layer.rom_depth, "words": words,
            "weights": [[_hex_words(w, words) for w in lane] for lane in weight_words(layer)],
            "thresholds": thresholds, "planes": None if layer.planes is None else list(layer.planes)}


def _dwc(fn: str, what: str, src: _Words, width: int, layer: str) -> dict[str, Any]:
    """A data-width converter: each vector of ``src.bits`` bits, arriving as ``src.count`` words of
    ``src.width`` bits, leaves as ``ceil(bits / width)`` words of ``width`` bits (the last one
    zero-padded), one word in and one out per cycle at most.

    Input words shift into the top of a register ``sr`` (a constant shift: no barrel shifter), and
    output word f is read once the ``need[f]`` words that hold its bits are in. The schedule is
    static, so word f always sits at the same place in ``sr``: a constant ``range()`` per word,
    chosen by a small case table (the distinct places are few when the widths share factors).
    Bit v of the vector, after r words of it are in, is at ``sr`` bit ``W - r*A + v``."""
    a, bits, count = src.width, src.bits, src.count
    assert count == -(-bits // a), (fn, src)
    outs = -(-bits // width)
    need = [min(count, -(-min(bits, (f + 1) * width) // a)) for f in range(outs)]
    held = max(need[f] - (f * width) // a for f in range(outs))  # input words sr must hold
    sr = a * held
    _check_width(layer, f"the width converter in front of it ({src.width}-bit words to {width}-bit words) "
                        f"holds {held} words of {a} bits", sr,
                 "choose a smaller SIMD for it or a smaller PE / narrower map upstream (--folding)")
    cases: list[tuple[int, int]] = []  # (lo, hi) in sr of each distinct place
    select: list[int] = []
    for f in range(outs):
        lo = sr - need[f] * a + f * width
        place = (lo, lo + min(width, bits - f * width) - 1)
        if place not in cases:
            cases.append(place)
        select.append(cases.index(place))
    # Cycles per vector: each iteration reads a word if the pending output still needs one, then
    # writes the pending output if its words are in. That is max(words in, words out), plus a cycle
    # or two when a zero-padded last word makes several outputs wait for the same input word.
    trip, r, f = 0, 0, 0
    while f < outs:
        trip += 1
        if r < need[f]:
            r += 1
        if r >= need[f]:
            f += 1
    assert r == count and max(count, outs) <= trip <= count + outs, (fn, trip, count, outs)
    return {"kind": "dwc", "fn": fn, "what": what, "in_bits": a, "out_bits": width, "bits": bits, "count": count,
            "outs": outs, "vectors": src.vectors, "sr": sr, "held": held, "need": need, "select": select,
            "cases": cases, "trip": src.vectors * trip}


def frame_flag_depth(spec: AcceleratorSpec) -> int:
    """Depth of the stream carrying each frame's packet-end flag from the input stage to the output
    stage: more than the frames between a frame's last input beat and its last output beat in a
    free-flowing pipeline (the RTL cycle model's latency over its interval, plus margin). A full
    stream only makes the input stage wait; it cannot lose a flag."""
    timing = hwtiming.predict(spec)
    in_flight = -(-(timing.latency + spec.classes) // timing.initiation_interval) + 3
    return max(4, 1 << (in_flight - 1).bit_length())


def _engines(spec: AcceleratorSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The engine functions in chain order and the streams between them (C++ template context).

    Every stream word is at most HLS_MAX_BITS wide: a vector wider than its consumer's word (the
    slicer's beats into the first dense layer, a PE-wide row group into the next layer's SIMD-wide
    folds, a map into a dense layer) goes through a width converter (:func:`_dwc`) instead of being
    held as one value."""
    streams: list[dict[str, Any]] = []
    engines: list[dict[str, Any]] = []

    def emit(engine: dict[str, Any], src: _Words | None, out: tuple[int, int, int, int] | None,
             layer: str) -> _Words | None:
        """Append ``engine`` reading ``src`` and writing (width, count, bits, vectors) words."""
        engine["src"] = "s_axis" if src is None else src.name
        engines.append(engine)
        if out is None:
            engine["dst"] = "m_axis"
            return None
        width, count, bits, vectors = out
        _check_width(layer, "a stream word", width)
        engine["dst"] = f"{engine['fn']}_out"
        streams.append({"name": engine["dst"], "bits": width, "depth": 2})
        return _Words(engine["dst"], width, count, bits, vectors)

    def words_of(src: _Words, width: int, layer: str, fn: str, what: str, keep: bool = False) -> _Words:
        """``src`` as words of ``width`` bits: itself when it already is (unless ``keep``: a flatten
        always has its function, the report's row for it), else through a converter."""
        if src.width == width and src.count * width == src.bits and not keep:
            return src
        engine = _dwc(fn, what, src, width, layer)
        out = emit(engine, src, (width, engine["outs"], src.bits, src.vectors), layer)
        assert out is not None
        return out

    planes = list(spec.planes)
    pb = len(planes) * spec.pixels_per_beat
    slicer = {"kind": "slicer", "fn": "input_slicer", "planes": planes, "ppb": spec.pixels_per_beat,
              "beats": spec.input_beats, "in_bits": spec.tdata_bits, "out_bits": pb,
              "identity": planes == list(range(8)), "trip": spec.input_beats}
    if spec.is_dense:
        cur = emit(slicer, None, (pb, spec.input_beats, spec.input_bits, 1), "input")
    else:  # a pixel stream: one beat is one pixel
        cur = emit(slicer, None, (pb, 1, pb, spec.input_beats), "input")
    assert cur is not None
    flatten: FlattenSpec | None = None
    for layer in spec.layers:
        if isinstance(layer, FifoSpec):  # a FIFO is the depth of the stream in front of its window unit
            streams[-1]["depth"] = max(streams[-1]["depth"], layer.depth)
        elif isinstance(layer, FlattenSpec):
            # The frame's pixels, back to back, are the vector (pixel k in bits k*C ..); the dense layer
            # after it converts them to its SIMD-wide folds. Words with padding bits (a conv MVTU's
            # last row group) become whole pixels first.
            assert cur.bits == layer.width and cur.vectors == layer.beats, (layer.name, cur)
            if cur.count * cur.width != cur.bits:
                cur = words_of(cur, layer.width, layer.name, f"dwc_{layer.name}", "width converter")
            cur = _Words(cur.name, cur.width, cur.count * layer.beats, layer.width * layer.beats, 1)
            flatten = layer
        elif isinstance(layer, DenseLayerSpec):
            engine = _mvtu(layer, f"mvtu_{layer.name}")
            if flatten is not None:
                cur = words_of(cur, engine["in_bits"], layer.name, f"flatten_{flatten.name}",
                               f"flatten {flatten.name} and width converter", keep=True)
                flatten = None
            else:
                cur = words_of(cur, engine["in_bits"], layer.name, f"dwc_{layer.name}", "width converter")
            assert cur.vectors == layer.vectors and cur.bits == layer.sink_bits, (layer.name, cur)
            out = emit(engine, cur, (engine["out_bits"], layer.ng, layer.mh * layer.out_bits, layer.vectors),
                       layer.name)
            assert out is not None
            cur = out
        elif isinstance(layer, WindowSpec):
            k, c = layer.kernel, layer.channels
            cur = words_of(cur, c, layer.name, f"dwc_{layer.name}", "width converter")
            engine = {"kind": "window", "fn": f"window_{layer.name}", "name": layer.name, "h": layer.height,
                      "w": layer.width, "c": c, "k": k, "p": layer.padding, "pad_bit": layer.pad_bit,
                      "hp": layer.padded_height, "wp": layer.padded_width, "lb": (k - 1) * c,
                      "trip": layer.padded_height * layer.padded_width}
            oh, ow = layer.padded_height - k + 1, layer.padded_width - k + 1
            out = emit(engine, cur, (k * k * c, 1, k * k * c, oh * ow), layer.name)
            assert out is not None
            cur = out
        elif isinstance(layer, PoolSpec):
            cur = words_of(cur, layer.channels, layer.name, f"dwc_{layer.name}", "width converter")
            engine = {"kind": "pool", "fn": f"pool_{layer.name}", "name": layer.name, "h": layer.height,
                      "w": layer.width, "c": layer.channels, "s": layer.size, "oh": layer.out_height,
                      "ow": layer.out_width, "trip": layer.height * layer.width}
            out = emit(engine, cur, (layer.channels, 1, layer.channels, layer.out_height * layer.out_width),
                       layer.name)
            assert out is not None
            cur = out
        else:
            raise HlsUnsupported(f"layer {layer.name}: the HLS backend has no engine for {type(layer).__name__}; "
                                 "use the RTL backend (--backend rtl)")
    last = spec.layers[-1]
    assert isinstance(last, DenseLayerSpec)
    cur = words_of(cur, last.out_bits, last.name, "dwc_output_stage", "width converter")
    emit({"kind": "output", "fn": "output_stage", "classes": last.mh, "ob": last.out_bits, "trip": last.mh},
         cur, None, last.name)
    return engines, streams


def _context(spec: AcceleratorSpec) -> dict[str, Any]:
    return {"top": spec.name, "prefix": spec.name.upper(), "guard": f"{spec.name.upper()}_H",
            "pixels_per_beat": spec.pixels_per_beat, "input_beats": spec.input_beats, "classes": spec.classes,
            "in_bits": spec.tdata_bits}


def _render(name: str, **context: object) -> str:
    """Render ``templates/hls/<name>``: the project's Jinja settings, and block tags leave no blank lines."""
    env = jinja2.Environment(keep_trailing_newline=True, undefined=jinja2.StrictUndefined, autoescape=False,
                             trim_blocks=True, lstrip_blocks=True)
    text = resources.files("bnn2fpga.templates").joinpath(f"hls/{name}").read_text(encoding="utf-8")
    return env.from_string(text).render(**context)


def support_header() -> str:
    return resources.files("bnn2fpga.templates").joinpath(f"hls/{HEADER}").read_text(encoding="utf-8")


def ip_name(spec: AcceleratorSpec, board: Board, design: str, header: str) -> str:
    """The IP-catalog name: the top's name and a short hash of what the IP is made from (the design's
    C++, the part and the clock), so two builds of the same network kind (other weights, folding or
    board) never export the same VLNV, while identical inputs keep giving identical build folders."""
    made_of = "\0".join((board.part, f"{board.clock_mhz:g}", header, design))
    return f"{spec.name}_{hashlib.sha256(made_of.encode()).hexdigest()[:8]}"


def ip_vlnv(name: str) -> str:
    return f"{IP_VENDOR}:{IP_LIBRARY}:{name}:{IP_VERSION}"


def generate(spec: AcceleratorSpec, graph: Graph, board: Board) -> dict[str, str | bytes]:
    """The HLS files of a build folder (name -> content); identical inputs give identical bytes.

    ``graph`` gives the expected popcounts of the Vitis testbench's own frames (random pixels, seed 0)."""
    check_board(board)
    engines, streams = _engines(spec)
    names = file_names(spec)
    ctx = _context(spec)
    inp = graph.input
    pixels = np.random.default_rng(0).integers(0, 256, (TB_FRAMES, inp.channels, inp.height, inp.width),
                                               dtype=np.uint8)
    frames = _pack(spec, np.ascontiguousarray(pixels.transpose(0, 2, 3, 1)))
    expected = reference.run(graph, pixels, workers=1).popcounts.astype("<u4")
    header = _render("design.h.j2", **ctx)
    design = _render("design.cpp.j2", engines=engines, streams=streams, frame_flags=frame_flag_depth(spec), **ctx)
    name = ip_name(spec, board, design, header)
    return {
        names["header"]: header,
        names["design"]: design,
        names["testbench"]: _render("tb.cpp.j2", **ctx),
        names["support"]: support_header(),
        names["tcl"]: _render("run_hls.tcl.j2", board=board.name, part=board.part, clock_mhz=f"{board.clock_mhz:g}",
                              period_ns=f"{1000.0 / board.clock_mhz:g}", tb_frames=TB_FRAMES, ip_name=name,
                              ip_vendor=IP_VENDOR, ip_library=IP_LIBRARY, ip_version=IP_VERSION,
                              vlnv=ip_vlnv(name), **ctx),
        names["tb_frames"]: frames.tobytes(),
        names["tb_expected"]: expected.tobytes(),
    }


def _pack(spec: AcceleratorSpec, hwc: np.ndarray) -> np.ndarray:
    """(N, H, W, C) uint8 -> the input stream's bytes per frame (N, beats * PPB), HWC order."""
    flat = hwc.reshape(len(hwc), -1)
    out = np.zeros((len(hwc), spec.input_beats * spec.pixels_per_beat), dtype=np.uint8)
    out[:, :flat.shape[1]] = flat
    return out


def _layer_function(layer: object) -> str | None:
    """The C++ function that does a layer's work (None for a FIFO: a stream depth)."""
    prefix = {DenseLayerSpec: "mvtu", WindowSpec: "window", PoolSpec: "pool", FlattenSpec: "flatten"}
    kind = prefix.get(type(layer))
    return None if kind is None else f"{kind}_{layer.name}"  # type: ignore[attr-defined]


def hls_timing(spec: AcceleratorSpec) -> hwtiming.Timing:
    """Expected cycles per frame of every dataflow process: the trip count of its II=1 loop (an MVTU
    OH·OW·ceil(MH/PE)·P·ceil(MW/SIMD), a window unit one per padded position, a pool one per input
    pixel, a width converter the larger of its words in and out, the slicer one per input beat, the
    output stage one per class); the dataflow interval is the largest of them. It is a lower bound:
    one call of the top is one frame, so every process also enters and leaves its loop once per
    frame (docs/hls.md). Latency is the RTL cycle model's (Vitis's schedule sets the real one)."""
    lps = spec.popcount_levels_per_stage
    rtl = hwtiming.predict(spec)
    trips = {e["fn"]: int(e["trip"]) for e in _engines(spec)[0]}
    cycles = []
    for layer in spec.layers:
        fn = _layer_function(layer)
        cycles.append(hwtiming.engine_cycles(layer, lps) if fn is None else trips[fn])
    return hwtiming.Timing(initiation_interval=max(trips.values()), latency=rtl.latency, per_layer_cycles=cycles,
                           input_cycles=spec.input_beats, output_cycles=spec.classes, per_layer_period=cycles)


# ------------------------------------------------------------------ build steps (bnn2fpga.backend.build)

def step_check_board(s: BuildState) -> None:
    from .build import BuildError

    try:
        check_board(s.board)
    except HlsUnsupported as e:
        raise BuildError(str(e)) from None


def step_generate(s: BuildState) -> None:
    from .build import BuildError

    assert s.spec is not None and s.graph is not None
    try:
        s.bundle = generate(s.spec, s.graph, s.board)
    except HlsUnsupported as e:
        raise BuildError(str(e)) from None
    s.timing = hls_timing(s.spec)


def step_write(s: BuildState) -> None:
    from .build import _manifest, _write_json, write_bundle

    assert s.spec is not None and s.timing is not None
    write_bundle(s)
    manifest = _manifest(s)
    names = file_names(s.spec)
    rtl = hwtiming.predict(s.spec)
    manifest["backend"] = "hls"
    manifest["sources"] = [names["design"], names["header"], names["support"]]
    manifest["memories"] = []
    design = s.bundle[names["design"]]
    header = s.bundle[names["header"]]
    assert isinstance(design, str) and isinstance(header, str)
    name = ip_name(s.spec, s.board, design, header)
    manifest["hls"] = {"testbench": names["testbench"], "tcl": names["tcl"], "tb_frames": names["tb_frames"],
                       "tb_expected": names["tb_expected"], "tb_frame_count": TB_FRAMES,
                       "csim_flags": list(CSIM_FLAGS), "native_flags": list(NATIVE_FLAGS),
                       "ip": {"name": name, "vlnv": ip_vlnv(name), "vendor": IP_VENDOR, "library": IP_LIBRARY,
                              "version": IP_VERSION},
                       "frame_flag_depth": frame_flag_depth(s.spec)}
    manifest["cycles"]["model"] = ("HLS: the largest trip count of the engines' II=1 loops (one call of the top per "
                                   "frame); latency from the RTL cycle model")
    manifest["cycles"]["interval_is"] = "lower bound"
    manifest["cycles"]["interval_overhead"] = INTERVAL_OVERHEAD
    manifest["cycles"]["rtl"] = {"initiation_interval": rtl.initiation_interval, "latency": rtl.latency}
    s.manifest = manifest
    _write_json(s.staging / "manifest.json", manifest)
    _write_json(s.staging / "folding.json", manifest["folding"])


def step_report(s: BuildState) -> None:
    assert s.spec is not None and s.timing is not None
    s.report = render_report(s.manifest, s.spec, s.timing, s.board)
    (s.staging / "report.md").write_text(s.report)


def render_report(manifest: dict[str, Any], spec: AcceleratorSpec, timing: hwtiming.Timing, board: Board) -> str:
    ii, clock = timing.initiation_interval, board.clock_mhz
    names = file_names(spec)
    engines = _engines(spec)[0]
    converters = {e["src"]: e for e in engines if e["kind"] == "dwc"}  # by the stream each one reads
    rows: list[list[Any]] = [["input", "slicer", f"{spec.samples_per_frame} samples", f"planes {list(spec.planes)}",
                              f"{spec.pixels_per_beat} px/beat", "", timing.input_cycles, "`input_slicer`"]]

    def converter_rows(fn: str) -> None:
        """The width converter after function ``fn``, if its output needs one."""
        e = converters.get(f"{fn}_out")
        if e is not None and e["fn"].startswith("dwc_"):
            rows.append(["", f"width {e['in_bits']} -> {e['out_bits']} bit", "", "", "", "", e["trip"],
                         f"`{e['fn']}`"])
            converter_rows(e["fn"])

    converter_rows("input_slicer")
    for layer, cycles in zip(spec.layers, timing.per_layer_cycles, strict=True):
        d = describe(layer)
        fn = _layer_function(layer)
        if fn is None:
            rows.append([layer.name, report_mod._kind(d), *report_mod._shape(d), "",
                         f"stream depth {layer.depth}"])
            continue
        rows.append([layer.name, report_mod._kind(d), *report_mod._shape(d), cycles, f"`{fn}`"])
        converter_rows(fn)
    rows.append(["output", "output stage", f"{spec.classes} classes", "", "", "", timing.output_cycles,
                 "`output_stage`"])
    table = report_mod._table(["layer", "kind", "MH", "MW", "PE", "SIMD", "expected II (cycles/frame)", "function"],
                              rows)
    rtl = manifest["cycles"].get("rtl", {})
    ck = manifest["checkpoint"]
    return f"""# bnn2fpga HLS build: {manifest['top']}

Checkpoint `{ck['source']}` (sha256 `{ck['sha256'][:16]}…`) for **{board.name}** ({board.part}) at {clock:g} MHz,
as Vitis HLS C++ (`--backend hls`).

## Throughput (expected)

| initiation interval | latency (first frame) | frames/s at {clock:g} MHz | bottleneck |
|---:|---:|---:|---|
| {ii} cycles | {timing.latency} cycles (RTL model) | {clock * 1e6 / ii:,.0f} | {manifest['cycles']['bottleneck']} |

{report_mod._rate_text(manifest)}

Cycle model: every engine is a dataflow process whose loop is pipelined at II=1 over a whole frame's
work, so it needs one cycle per loop iteration: a dense or conv MVTU OH·OW·ceil(MH/PE)·ceil(MW/SIMD)
per frame, a window unit one per padded position, a pool one per input pixel, a width converter the
larger of its words in and out, the slicer one per input beat, the output stage one per class
("expected II"). The dataflow pipeline's interval is the largest of them: the bottleneck above
bounds the frame rate. The interval is a **lower bound**: {INTERVAL_OVERHEAD}. The folding is the
RTL build's (same PE and SIMD); its RTL interval is {rtl.get('initiation_interval', '?')} cycles.
Vitis's `csynth_design` report gives the scheduled numbers; `bnn2fpga sim` checks the popcounts
bit-exactly (C simulation, untimed).

## Engines and folding

{table}

## Interface

- `s_axis` (`#pragma HLS INTERFACE axis`): {manifest['input']['tdata_bits']}-bit, {spec.pixels_per_beat} uint8
  sample(s) per beat, {spec.input_beats} beats per frame, HWC order; input bit planes kept: {list(spec.planes)}.
- `m_axis`: 32-bit, {spec.classes} beats per frame (class popcounts, class 0 first); `tlast` on the last class
  of a frame whose last input beat had `tlast` (one DMA transfer of N frames comes back as one packet);
  `tlast` on an earlier input beat completes that frame with zero pixels and ends the packet there.
- Prediction: argmax over classes of `manifest.json` `output.logit_table[k][popcount_k]`.

## Files

- `{names['design']}`, `{names['header']}`: the design (top function `{manifest['top']}`);
  `{names['support']}`: ap_uint / hls::stream for g++ (the vendor headers under Vitis)
- `{names['testbench']}`: testbench (checks `{names['tb_frames']}` against `{names['tb_expected']}`)
- `{names['tcl']}`: `vitis-run --mode hls --tcl {names['tcl']}` (Vitis 2023.2 and later; `vitis_hls -f
  {names['tcl']}` before) runs csim, csynth, cosim and the IP-catalog export as
  `{manifest['hls']['ip']['vlnv']}`
- `manifest.json`, `folding.json` (the same folding the RTL build would use)
"""


# ------------------------------------------------------------------ C simulation and the native engine

class CsimError(SimulationError):
    """The C++ did not compile or the testbench failed to run (the CLI's one `error:` line)."""


@dataclass(frozen=True)
class CsimResult:
    outputs: np.ndarray      # (N, classes) int64 popcounts
    frames: int
    seconds: float           # the testbench's own time around the design calls
    wall_time_s: float       # the whole run: process start, file reads and writes included
    build_time_s: float      # 0.0 when the cached binary was reused
    tlast_errors: int        # output beats whose tlast differed from "last class of a packet's last frame"
    missing_beats: int
    extra_beats: int
    leftover_input_beats: int
    binary: Path
    packets: int = 1         # input packets the testbench sent (sizes 1, 3, the rest; a cut frame ends one)

    @property
    def protocol_ok(self) -> bool:
        return not (self.tlast_errors or self.missing_beats or self.extra_beats or self.leftover_input_beats)


def find_compiler() -> str:
    path = shutil.which("g++")
    if path is None:
        raise CsimError("g++ not found: the C simulation of an HLS build needs a C++17 compiler; "
                        "sudo apt-get install g++")
    return path


def compile_design(build_dir: Path, top: str, flags: tuple[str, ...] = CSIM_FLAGS) -> tuple[Path, float]:
    """Compile design + testbench into ``sim_build/csim-<hash>/`` (reused while sources and flags are unchanged)."""
    sources = [build_dir / f"{top}.cpp", build_dir / f"{top}_tb.cpp"]
    headers = [build_dir / f"{top}.h", build_dir / HEADER]
    missing = [str(p) for p in (*sources, *headers) if not p.is_file()]
    if missing:
        raise CsimError(f"{build_dir}: HLS sources missing: {missing}; rebuild with bnn2fpga build --backend hls")
    compiler = find_compiler()
    key = hash_files([*sources, *headers], *flags)
    out_dir = build_dir / "sim_build" / f"csim-{key}"
    binary = out_dir / f"{top}_tb"
    if binary.is_file():
        return binary, 0.0
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cmd = [compiler, *flags, "-I", str(build_dir), *map(str, sources), "-o", str(tmp / binary.name)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    (tmp / "build.log").write_text(" ".join(cmd) + "\n" + done.stdout + done.stderr)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        raise CsimError(f"g++ failed on the HLS design (exit {done.returncode}); log {tmp / 'build.log'}:\n{tail}")
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return binary, time.perf_counter() - t0


def run_frames(build_dir: Path | str, frames: np.ndarray, *, top: str | None = None, classes: int | None = None,
               flags: tuple[str, ...] = CSIM_FLAGS, cuts: Mapping[int, int] | None = None) -> CsimResult:
    """Run input streams ``frames`` (N, beats * PPB) uint8 through the compiled design; ``top`` and
    ``classes`` default to the build folder's manifest. The testbench sends them as packets of 1, 3
    and the rest of the frames; ``cuts`` {frame: beats} sends only that frame's first beats, tlast
    on the last of them (the design pads the frame with zero pixels and ends the packet there)."""
    build_dir = Path(build_dir).resolve()
    if top is None or classes is None:
        raw = json.loads((build_dir / "manifest.json").read_text())
        top, classes = raw["top"], raw["output"]["beats_per_frame"]
    assert top is not None and classes is not None
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    if frames.ndim != 2 or len(frames) == 0:
        raise ValueError(f"frames must be a non-empty (N, bytes) uint8 array, not {frames.shape}")
    binary, build_time = compile_design(build_dir, top, flags)
    run_dir = binary.parent / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir()
    frames_path, out_path = run_dir / "frames.bin", run_dir / "outputs.bin"
    frames.tofile(frames_path)
    t0 = time.perf_counter()
    cut_args = [arg for frame, beats in sorted((cuts or {}).items()) for arg in ("--cut", f"{frame}:{beats}")]
    done = subprocess.run([str(binary), "--frames", str(frames_path), "--out", str(out_path), *cut_args],
                          cwd=run_dir, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    (run_dir / "tb.log").write_text(done.stdout + done.stderr)
    lines = done.stdout.strip().splitlines()
    if done.returncode not in (0, 1) or not lines:
        raise CsimError(f"the HLS testbench failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
    summary = json.loads(lines[-1])
    outputs = np.fromfile(out_path, dtype="<u4").astype(np.int64).reshape(len(frames), classes)
    outputs[outputs == 0xFFFFFFFF] = -1  # beats that never came
    return CsimResult(outputs=outputs, frames=summary["frames"], seconds=summary["seconds"], wall_time_s=wall,
                      build_time_s=build_time, tlast_errors=summary["tlast_errors"],
                      missing_beats=summary["missing_beats"], extra_beats=summary["extra_beats"],
                      leftover_input_beats=summary["leftover_input_beats"], binary=binary,
                      packets=summary["packets"])


def write_design(spec: AcceleratorSpec, graph: Graph, board: Board, folder: Path) -> None:
    """Only the HLS files of a spec (no manifest): what the tests compile for random networks."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in generate(spec, graph, board).items():
        if isinstance(content, bytes):
            (folder / name).write_bytes(content)
        else:
            (folder / name).write_text(content)


def pack_images(spec: AcceleratorSpec, hwc: np.ndarray) -> np.ndarray:
    """Images (N, H, W, C) uint8 -> input stream bytes (N, beats * PPB)."""
    return _pack(spec, np.ascontiguousarray(hwc, dtype=np.uint8))
