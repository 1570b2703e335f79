"""The ECP5 proxy clock: a Xilinx design's accelerator placed and routed by nextpnr on the ECP5-85F.

No open place and route exists for the 7-series, so a Xilinx build cannot measure its clock before
Vivado runs. The proxy places the very Verilog the build wrote (the AXI-Stream core, no bridge, no
processor) on the largest ECP5 with its stream ports registered, and reports nextpnr's post-route
Fmax, the median over placement seeds. It is a proxy, not the Xilinx clock: the ECP5's LUT4 and
carry chains differ from the 7-series' LUT6 and CARRY4, so it says whether the engines' structure
holds a clock (no wide multiplexer, no long combinational chain), not what Vivado will reach.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .synth import SynthError, ecp5_place_route, ecp5_synth

__all__ = ["ProxyResult", "PROXY_DEVICE", "registered_io_wrapper", "ecp5_proxy"]

PROXY_DEVICE = "LFE5U-85F-6 CABGA381"


@dataclass(frozen=True)
class ProxyResult:
    """Post-route Fmax of the accelerator core on the ECP5-85F (speed grade 6), per seed and median."""

    fmax_mhz: float                      # median over the seeds
    seeds: tuple[tuple[int, float], ...]  # (seed, Fmax) per placement
    critical_from: str | None            # the median seed's critical path, first and last net
    critical_to: str | None
    device: str = PROXY_DEVICE

    def to_json(self) -> dict[str, object]:
        row = asdict(self)
        row["seeds"] = [{"seed": s, "fmax_mhz": f} for s, f in self.seeds]
        row["evidence"] = "ECP5 proxy: nextpnr-ecp5 post-route Fmax of the AXI-Stream core, ports registered"
        return row


def registered_io_wrapper(top: str, in_bits: int) -> str:
    """A top around ``top`` with every stream port registered (reset through two flip-flops).

    Inside a real design the core's ports end at the DMA's registers; with them on pins instead,
    nextpnr pulls the stream glue toward the I/O ring and the pin routes dominate the report. Here
    they end at registers the placer can put beside the core. Timing only: the handshake is not
    meant to work through these registers.
    """
    return f"""`default_nettype none
module {top}_io (
    input  wire                  ap_clk,
    input  wire                  ap_rst_n,
    input  wire [{in_bits - 1}:0] s_axis_tdata,
    input  wire                  s_axis_tvalid,
    input  wire                  s_axis_tlast,
    output reg                   s_axis_tready,
    output reg  [31:0]           m_axis_tdata,
    output reg                   m_axis_tvalid,
    input  wire                  m_axis_tready,
    output reg                   m_axis_tlast
);
    reg [1:0] rst_q;
    reg [{in_bits - 1}:0] s_tdata_q;
    reg s_tvalid_q, s_tlast_q, m_tready_q;
    wire s_tready_c, m_tvalid_c, m_tlast_c;
    wire [31:0] m_tdata_c;
    always @(posedge ap_clk) begin
        rst_q <= {{rst_q[0], ap_rst_n}};
        s_tdata_q <= s_axis_tdata;
        s_tvalid_q <= s_axis_tvalid;
        s_tlast_q <= s_axis_tlast;
        m_tready_q <= m_axis_tready;
        s_axis_tready <= s_tready_c;
        m_axis_tdata <= m_tdata_c;
        m_axis_tvalid <= m_tvalid_c;
        m_axis_tlast <= m_tlast_c;
    end
    {top} core (
        .ap_clk(ap_clk), .ap_rst_n(rst_q[1]),
        .s_axis_tdata(s_tdata_q), .s_axis_tvalid(s_tvalid_q), .s_axis_tready(s_tready_c), .s_axis_tlast(s_tlast_q),
        .m_axis_tdata(m_tdata_c), .m_axis_tvalid(m_tvalid_c), .m_axis_tready(m_tready_q), .m_axis_tlast(m_tlast_c)
    );
endmodule
`default_nettype wire
"""


def _critical_nets(log_text: str) -> tuple[str | None, str | None]:
    """First and last net of the last critical path nextpnr printed (the post-route one)."""
    marker = "Critical path report for clock"
    block = log_text.rsplit(marker, 1)[-1] if marker in log_text else ""
    for end in ("Info: Max frequency", "Critical path report for cross-domain"):
        block = block.split(end)[0]
    nets = [line.split("Net ")[-1].split()[0] for line in block.splitlines() if "Net " in line]
    return (nets[0], nets[-1]) if nets else (None, None)


def ecp5_proxy(build_dir: str | Path, sources: Sequence[str], top: str, in_bits: int, *, work_dir: str | Path,
               seeds: Sequence[int] = (1, 2, 3), target_mhz: float = 100.0, router2: bool = False) -> ProxyResult:
    """Place the core ``top`` (Verilog ``sources`` relative to ``build_dir``) on the ECP5-85F.

    ``router2``: route with nextpnr's router2 (``synth.ecp5_place_route``), for designs too large for
    the default router to finish in reasonable time.

    Synthesised once; placed once per seed (placement noise moves one design's Fmax by several
    percent). ``work_dir`` receives the wrapper, netlist and logs; ``result.json`` caches the answer
    for the same sources and seeds."""
    if not seeds:
        raise ValueError("ecp5_proxy needs at least one placement seed")
    build = Path(build_dir).resolve()
    work = Path(work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    files = [build / s for s in sources]
    for f in files:
        if not f.is_file():
            raise SynthError(f"ECP5 proxy: Verilog source not found: {f}")
    wrapper = work / f"{top}_io.v"
    wrapper.write_text(registered_io_wrapper(top, in_bits))
    # ROMs a Xilinx part builds from LUTs stay in logic here too: Yosys would otherwise put every
    # synchronous ROM into a DP16KD and place a block RAM's clock-to-out in front of the popcount,
    # a path the Xilinx design does not have.
    netlist = ecp5_synth([*files, wrapper], f"{top}_io", cwd=build, work_dir=work / "synth",
                         defines=("BNN2FPGA_LOGIC_ROMS",))
    runs: list[tuple[int, float, str]] = []
    for seed in seeds:
        res = ecp5_place_route(netlist, f"{top}_io", freq_mhz=target_mhz, work_dir=work / f"seed{seed}", seed=seed,
                               router="router2" if router2 else "router1", clock_port="ap_clk" if router2 else None)
        runs.append((seed, res.mhz, str(res.log_path)))
    median = statistics.median_low(f for _, f, _ in runs)
    log = next(path for _, f, path in runs if f == median)
    first, last = _critical_nets(Path(log).read_text(errors="replace"))
    result = ProxyResult(fmax_mhz=median, seeds=tuple((s, f) for s, f, _ in runs), critical_from=first,
                         critical_to=last)
    (work / "result.json").write_text(json.dumps(result.to_json(), indent=1) + "\n")
    return result
