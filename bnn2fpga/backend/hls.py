"""`bnn2fpga build --backend hls`: the same AcceleratorSpec as Vitis HLS C++ (its build steps:
:mod:`bnn2fpga.backend.hls_build`; its C simulation with g++: :mod:`bnn2fpga.sim.hls_csim`).

The RTL build's folding and engine chain (``lowering.to_spec``) are rendered as one C++
function per engine (``templates/hls/design.cpp.j2``), connected by ``hls::stream``s under
``#pragma HLS DATAFLOW``, plus a testbench, a Vitis HLS TCL script and ``bnn2fpga_hls.h``:
our own small model of ``ap_uint``/``hls::stream`` that the design compiles against with
plain g++ (under Vitis the vendor headers take its place). ``bnn2fpga sim`` compiles the
design and testbench with ``g++ -O2`` (:func:`bnn2fpga.sim.hls_csim.run_frames`) and compares every class
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
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import numpy as np

from .. import reference
from ..boards import BOARDS, Board
from ..errors import UserError
from ..hw import timing as hwtiming
from ..hw.branch import BranchSpec
from ..hw.pool import PoolSpec
from ..hw.rom import weight_words
from ..hw.spec import AcceleratorSpec, DenseLayerSpec
from ..hw.stream import FifoSpec, FlattenSpec
from ..hw.window import WindowSpec
from ..ir.graph import Graph

if TYPE_CHECKING:
    pass

__all__ = ["HLS_MAX_BITS", "HlsUnsupported", "check_board", "check_expressible", "check_structure", "generate",
           "hls_timing", "file_names", "engine_table", "layer_function", "write_design", "pack_images", "HEADER",
           "CSIM_FLAGS", "NATIVE_FLAGS"]

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


class HlsUnsupported(UserError, ValueError):
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


def check_structure(spec: AcceleratorSpec) -> None:
    """Raise :class:`HlsUnsupported` for a network no folding makes expressible: one that branches."""
    branch = next((layer for layer in spec.layers if isinstance(layer, BranchSpec)), None)
    if branch is not None:
        raise HlsUnsupported(f"layer {branch.name}: a branch (a fork into paths and their join) is expressed by the "
                             "RTL backend only; the HLS design is one chain of dataflow processes. Build with "
                             "--backend rtl")


def check_expressible(spec: AcceleratorSpec) -> None:
    """Raise :class:`HlsUnsupported` unless every value the design holds fits a 4,096-bit ap_uint."""
    engine_table(spec)


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


def engine_table(spec: AcceleratorSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The engine functions in chain order and the streams between them (C++ template context).

    Every stream word is at most HLS_MAX_BITS wide: a vector wider than its consumer's word (the
    slicer's beats into the first dense layer, a PE-wide row group into the next layer's SIMD-wide
    folds, a map into a dense layer) goes through a width converter (:func:`_dwc`) instead of being
    held as one value."""
    check_structure(spec)
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
              "identity": planes == list(range(8)), "trip": spec.input_beats,
              "table": None if spec.input_table is None else [list(row) for row in spec.input_table]}
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
    engines, streams = engine_table(spec)
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


def layer_function(layer: object) -> str | None:
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
    trips = {e["fn"]: int(e["trip"]) for e in engine_table(spec)[0]}
    cycles = []
    for layer in spec.layers:
        fn = layer_function(layer)
        cycles.append(hwtiming.engine_cycles(layer, lps) if fn is None else trips[fn])
    return hwtiming.Timing(initiation_interval=max(trips.values()), latency=rtl.latency, per_layer_cycles=cycles,
                           input_cycles=spec.input_beats, output_cycles=spec.classes, per_layer_period=cycles)


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
