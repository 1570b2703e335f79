"""The HLS backend's build steps and report (``bnn2fpga build --backend hls``): the code it writes comes
from :mod:`bnn2fpga.backend.hls`, its C simulation runs in :mod:`bnn2fpga.sim.hls_csim`."""

from __future__ import annotations

from typing import Any

from ..boards import Board
from ..hw import timing as hwtiming
from ..hw.engines import describe
from ..hw.spec import AcceleratorSpec
from . import report as report_mod
from .hls import (
    CSIM_FLAGS,
    INTERVAL_OVERHEAD,
    IP_LIBRARY,
    IP_VENDOR,
    IP_VERSION,
    NATIVE_FLAGS,
    TB_FRAMES,
    HlsUnsupported,
    check_board,
    check_expressible,
    check_structure,
    engine_table,
    file_names,
    frame_flag_depth,
    generate,
    hls_timing,
    ip_name,
    ip_vlnv,
    layer_function,
)
from .state import Backend, BuildError, BuildState, Sections, manifest_base, write_bundle

__all__ = ["HLS", "render_report"]


def step_check_board(s: BuildState) -> None:
    try:
        check_board(s.board)
    except HlsUnsupported as e:
        raise BuildError(str(e)) from None


def step_generate(s: BuildState) -> None:
    assert s.spec is not None and s.graph is not None
    try:
        s.bundle = generate(s.spec, s.graph, s.board)
    except HlsUnsupported as e:
        raise BuildError(str(e)) from None
    s.timing = hls_timing(s.spec)


def step_write(s: BuildState) -> Sections:
    assert s.spec is not None and s.timing is not None
    write_bundle(s)
    manifest = manifest_base(s)
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
    return manifest


def step_report(s: BuildState) -> None:
    assert s.spec is not None and s.timing is not None
    s.report = render_report(s.manifest, s.spec, s.timing, s.board)
    (s.staging / "report.md").write_text(s.report)


def render_report(manifest: dict[str, Any], spec: AcceleratorSpec, timing: hwtiming.Timing, board: Board) -> str:
    ii, clock = timing.initiation_interval, board.clock_mhz
    names = file_names(spec)
    engines = engine_table(spec)[0]
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
        fn = layer_function(layer)
        if fn is None:
            rows.append([layer.name, report_mod.kind(d), *report_mod.shape(d), "",
                         f"stream depth {layer.depth}"])
            continue
        rows.append([layer.name, report_mod.kind(d), *report_mod.shape(d), cycles, f"`{fn}`"])
        converter_rows(fn)
    rows.append(["output", "output stage", f"{spec.classes} classes", "", "", "", timing.output_cycles,
                 "`output_stage`"])
    table = report_mod.table(["layer", "kind", "MH", "MW", "PE", "SIMD", "expected II (cycles/frame)", "function"],
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

{report_mod.rate_text(manifest)}

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


def _expressible(spec: AcceleratorSpec) -> bool:
    check_structure(spec)  # no slower folding helps: refuse at once
    try:
        check_expressible(spec)
    except HlsUnsupported:
        return False
    return True


HLS = Backend(
    name="hls", description="Vitis HLS C++ (one function per engine under DATAFLOW), C-simulated with g++",
    checks=(("check board", step_check_board),),
    steps=(("generate HLS C++", step_generate), ("write build folder", step_write)),
    report=step_report,
    searchable=_expressible,
)
