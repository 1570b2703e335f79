"""The human-readable build report (report.md): folding, cycles, resources, bottleneck."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..boards import Board
from ..contract.manifest import ClockRecord
from ..contract.wire import link_frames_per_second

if TYPE_CHECKING:  # the report reads the spec and timing; importing it loads no Amaranth
    from ..hw.spec import AcceleratorSpec
    from ..hw.timing import Timing


def bottleneck(spec: AcceleratorSpec, timing: Timing) -> str:
    """The engine whose period sets the initiation interval (the first, if several tie)."""
    stages = [("input stream", timing.input_cycles)]
    stages += [(layer.name, period) for layer, period in zip(spec.layers, timing.per_layer_period, strict=True)]
    stages.append(("output stream", timing.output_cycles))
    return max(stages, key=lambda x: x[1])[0]


def kind(d: dict[str, Any]) -> str:
    if d["kind"] == "conv":
        return f"conv x{d['vectors']}"
    if d["kind"] == "window":
        return f"window {d['kernel']}x{d['kernel']} pad {d['padding']}"
    if d["kind"] == "pool":
        return f"max-pool {d['size']}x{d['size']}"
    return d["kind"]


def shape(d: dict[str, Any]) -> list[Any]:
    """MH, MW, PE, SIMD columns; windows and pools show their input map instead."""
    if "mh" in d:
        return [d["mh"], d["mw"], d["pe"], d["simd"]]
    if "shape" in d:
        return ["x".join(map(str, d["shape"])), "", "", ""]
    if d["kind"] == "fifo":
        return [f"{d['depth']} px", f"{d['width']} bit", "", ""]
    return [f"{d['pixels']} px", f"{d['width']} bit", "", ""]


def _cycle_text(spec: AcceleratorSpec) -> str:
    if spec.is_dense:
        return """Cycle model: an engine needs ceil(MH/PE)·ceil(MW/SIMD) cycles per frame ("cycles"); "period" is the
spacing it actually runs at (at least its cycles; a little more when its pipeline is deeper than its
work). The initiation interval is the largest period on the chain, input and output streams
included. `bnn2fpga sim` measures both numbers and requires them to be equal to these."""
    return """Cycle model: a conv MVTU needs OH·OW·ceil(MH/PE)·ceil(MW/SIMD) cycles per frame, a window unit one
cycle per padded position, a pool or flatten one per input pixel ("cycles"; "period" is the frame
time the engine alone would allow). The interval and latency come from the engines' cycle models
composed clock by clock (docs/hardware-contract.md): they add the waits at row and frame boundaries
to the largest period. `bnn2fpga sim` measures both numbers and requires them to be equal to these.
Memory column: where each weight ROM or line buffer goes (block RAM or LUTs)."""


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def rate_text(manifest: dict[str, Any]) -> str:
    rate = manifest.get("rate") or {}
    if "bound" not in rate:
        return ""
    text = f"**Frame rate set by {rate['bound']}**: {rate['why']}."
    if rate.get("host_link"):
        text += (f" Host link assumed: {rate['host_link']}, {rate['host_bytes_per_second'] / 1e6:,.1f} MB/s "
                 f"({rate['host_link_source']}).")
    return text


def _payload_text(uart: dict[str, Any]) -> str:
    """What a request's payload holds: packed planes (``pack_payload``) or one byte per pixel."""
    bits = uart.get("bits_per_pixel", 8)
    if bits == 8:
        return f"{uart['frame_bytes']:,} pixel bytes"
    planes = ", ".join(str(p) for p in uart["planes"])
    return (f"{uart['frame_bytes']:,} payload bytes ({uart['pixels']:,} pixels, planes {planes} in {bits} "
            f"bit{'s' if bits > 1 else ''} each)")


def _bitstream_text(manifest: dict[str, Any], board: Board) -> str:
    """Open-toolchain boards: the clock chosen, nextpnr's Fmax and utilisation, the serial link."""
    bit = manifest.get("bitstream")
    uart = manifest.get("uart")
    if bit is None or uart is None:
        return ""
    link_fps = link_frames_per_second(uart["baud"], uart["frame_bytes"])
    lines = ["## Bitstream (open toolchain)", ""]
    if "skipped" in bit:
        lines.append(f"Not built: {bit['skipped']}.")
    else:
        tries = "; ".join(f"{a['clock_mhz']:g} MHz: Fmax {a['fmax_mhz']:.1f} MHz"
                          + (" (met with margin)" if a["met_with_margin"] else " (missed)") for a in bit["attempts"])
        rows = [[kind, f"{u['used']:,}", f"{u['available']:,}", f"{u['used'] / u['available']:.1%}"]
                for kind, u in bit["utilisation"].items() if u["used"]]
        lines += [f"`{bit['file']}` at **{bit['clock_mhz']:g} MHz** (nextpnr post-route Fmax "
                  f"{bit['fmax_mhz']:.1f} MHz, {bit['fmax_mhz'] / bit['clock_mhz'] - 1:+.0%}; required margin "
                  f"{bit['margin']:.0%}). Tried: {tries}. PLL: "
                  + ", ".join(f"{k} {v}" for k, v in bit["pll"].items()) + ".", "",
                  table(["cell", "used", "available", "utilisation"], rows), "",
                  f"Load it: `{bit['load']}`."]
    lines += ["", f"Serial link: {uart['baud'] / 1e6:g} Mbaud 8N1 ({uart['divisor']} clocks per bit), "
              f"{_payload_text(uart)} + 4 framing bytes per request: at most **{link_fps:,.0f} "
              f"frames/s** through the link, against {manifest['cycles']['fps']:,.0f} the accelerator computes. "
              f"Board core for simulation: `{uart['top']}.v` (`bnn2fpga run BUILD --sim`)."]
    return "\n".join(lines)


def _clock_text(manifest: dict[str, Any], clock: float) -> str:
    """What the clock every frame rate of the report assumes rests on (docs/timing.md)."""
    if not manifest.get("clock"):
        return f"Clock: {clock:g} MHz, assumed (a build folder from before clock evidence was recorded)."
    info = ClockRecord.from_json(manifest["clock"])
    if info.evidence == "nextpnr":
        text = f"Clock: {clock:g} MHz, **measured**: {info.why}."
    else:
        text = f"Clock: {clock:g} MHz, **assumed**: {info.why}."
    proxy = info.ecp5_proxy
    if proxy:
        seeds = " / ".join(f"{r['fmax_mhz']:.1f}" for r in proxy["seeds"])
        verdict = "holds" if proxy["fmax_mhz"] >= clock else "does not hold"
        text += (f" ECP5 proxy (the same core placed and routed by nextpnr on the {proxy['device']}, stream ports "
                 f"registered): **{proxy['fmax_mhz']:.1f} MHz** median over seeds ({seeds} MHz); the structure "
                 f"{verdict} {clock:g} MHz there. A proxy, not the Xilinx timing; its critical path starts at "
                 f"`{proxy['critical_from']}`.")
    return text


def _engine_rows(d: dict[str, Any], est: dict[str, Any], prefix: str) -> list[list[Any]]:
    """The report's row of one engine and, for a branch, a row per engine of each path after it
    (named ``<branch>/<path>: <engine>``)."""
    memory = est.get("weight_rom") or est.get("line_buffer") or ""
    rows = [[prefix + d["name"], kind(d), *shape(d), d["cycles"], d["period"], f"{est['lut']:,.0f}",
             f"{est['ff']:,.0f}",
             f"{est['bram36']:g} ({memory})" if memory and memory != "none" else f"{est['bram36']:g}"]]
    for i, (inner_rows, inner_ests) in enumerate(zip(d.get("paths", ()), est.get("paths", ()), strict=True)):
        for inner, inner_est in zip(inner_rows, inner_ests, strict=True):
            rows += _engine_rows(inner, inner_est, f"{prefix}{d['name']}/{i}: ")
    return rows


def _with_estimates(layers: Any, estimates: list[dict[str, Any]]) -> list[tuple[Any, dict[str, Any]]]:
    """(engine spec, its estimate) for every engine, those on a branch's paths included."""
    pairs = []
    for layer, est in zip(layers, estimates, strict=True):
        if "paths" in est:
            for path, path_ests in zip(layer.paths, est["paths"], strict=True):
                pairs += _with_estimates(path, path_ests)
        else:
            pairs.append((layer, est))
    return pairs


def render(manifest: dict[str, Any], spec: AcceleratorSpec, timing: Timing, estimate: dict[str, Any],
           synth: dict[str, Any] | None, board: Board) -> str:
    ii, lat = timing.initiation_interval, timing.latency
    clock = manifest.get("clock_mhz", board.clock_mhz)
    planes = f"planes {list(spec.planes)}" + (" of the input table's codes" if spec.input_table else "")
    rows = [["input", "slicer", f"{spec.samples_per_frame} samples", planes,
             f"{spec.pixels_per_beat} px/beat", "", timing.input_cycles, timing.input_cycles, "", "", ""]]
    for d, est in zip(manifest["layers"], estimate["layers"], strict=True):  # the engines as described there
        rows += _engine_rows(d, est, "")
    io = estimate["io"]
    rows.append(["io", "stream glue", "", "", "", "", "", "", f"{io['lut']:,.0f}", f"{io['ff']:,.0f}", "0"])
    layer_table = table(["layer", "kind", "MH", "MW", "PE", "SIMD", "cycles", "period", "LUT (est.)",
                          "FF (est.)", "BRAM36 (est.)"], rows)
    total = estimate["total"]
    res_rows = [["estimate (bnn2fpga)", f"{total['lut']:,.0f}", f"{total['ff']:,.0f}", f"{total['bram36']:g}", "0"]]
    if synth is not None:
        res_rows.append(["Yosys synth_xilinx", f"{synth['lut']:,}", f"{synth['ff']:,}", f"{synth['bram36']:g}",
                         f"{synth['dsp']}"])
        res_rows.append(["utilisation (Yosys)", f"{synth['lut'] / board.lut:.1%}", f"{synth['ff'] / board.ff:.1%}",
                         f"{synth['bram36'] / board.bram:.1%}", f"{synth['dsp'] / board.dsp:.1%}"])
    res_rows.append([f"capacity ({board.part})", f"{board.lut:,}", f"{board.ff:,}", f"{board.bram}",
                     f"{board.dsp}"])
    res_table = table(["", "LUT", "FF", "BRAM36", "DSP"], res_rows)
    # Block-RAM weight ROMs have an output register (Fmax); Yosys leaves it in the fabric,
    # Vivado packs it into the RAMB36. Say how much of the FF count that is, so nobody
    # is surprised when Vivado reports fewer.
    bram_out_ff = sum(layer.pe * layer.simd for layer, est in _with_estimates(spec.layers, estimate["layers"])
                      if est.get("weight_rom") == "block")
    if bram_out_ff:
        res_table += (f"\n\nFF include {bram_out_ff:,} output registers of the block-RAM weight ROMs (PE x SIMD per "
                      "block-RAM layer); Vivado packs them into the RAMB36 (`DOA_REG`), Yosys keeps them as FF.")
    depth = synth.get("logic_depth") if synth is not None else None
    if depth:
        res_table += (f"\n\nDeepest register-to-register path after Yosys mapping: {depth['cells']} cells "
                      f"({depth['luts']} LUT, {depth['carries']} carry, {depth['muxes']} MUXF), starting at "
                      f"`{depth['start']}`. A count of cells, not a delay, and the only timing evidence before Vivado "
                      f"places the design: the {clock:g} MHz this report's frame rates assume is not shown to close.")
    if synth is not None and synth.get("block_roms") == "one per layer" and bram_out_ff:
        res_table += ("\n\nYosys mapped each layer's block-RAM weight ROMs once, with PE 0's weights, and counted "
                      "them once per PE: a block ROM's tiles depend on its depth and width, not its bits. "
                      "`bnn2fpga build --exact-roms` maps every PE's ROM with its own weights (slower).")
    ck = manifest["checkpoint"]
    return f"""# bnn2fpga build: {manifest['top']}

Checkpoint `{ck['source']}` (sha256 `{ck['sha256'][:16]}…`) for **{board.name}** ({board.part}) at {clock:g} MHz.

## Throughput

| initiation interval | latency (first frame) | frames/s at {clock:g} MHz | bottleneck |
|---:|---:|---:|---|
| {ii} cycles | {lat} cycles ({lat / clock:.2f} µs) | {clock * 1e6 / ii:,.0f} | {manifest['cycles']['bottleneck']} |

{_clock_text(manifest, clock)}

{rate_text(manifest)}

{_cycle_text(spec)}

## Layers and folding

{layer_table}

## Resources

{res_table}

{_bitstream_text(manifest, board)}

## Interface

- `s_axis`: {manifest['input']['tdata_bits']}-bit, {spec.pixels_per_beat} uint8 sample(s) per beat,
  {spec.input_beats} beats per frame, HWC order; input bit planes kept: {list(spec.planes)}.
- `m_axis`: 32-bit, {spec.classes} beats per frame (class popcounts, class 0 first), `tlast` on the last.
- Prediction: argmax over classes of `manifest.json` `output.logit_table[k][popcount_k]` (`driver.py`).

## Files

- Verilog: {", ".join(f"`{s}`" for s in manifest['sources'])}
- weight ROM images: {len(manifest['memories'])} `.mem` files (`$readmemh`, paths relative to this folder)
- `manifest.json` (machine-readable contract), `folding.json` (reuse with `--folding`),
  `vivado.tcl` (project + block design + bitstream), `driver.py` (PYNQ)
"""
