"""UART board build folders for the host-side tests (`bnn2fpga run`).

``bnn2fpga build --board ulx3s-85f`` writes ``<name>_board.v`` and the manifest's ``uart`` block
itself once the board build does; until then (or for a board build that lacks them) this helper
adds both to an ordinary ulx3s-85f build, the way that build will: the board core from
:func:`bnn2fpga.hw.generate.generate_board`, 25 MHz / 8 clocks per bit.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import ROOT

TFC = ROOT / "examples" / "tfc-fmnist.pt"
DIVISOR = 8            # 25 MHz / 8 = 3.125 Mbaud: the FT231X's 3 Mbaud within 4 %
TIMEOUT_BYTES = 4


def make_uart_build(out: Path, checkpoint: Path = TFC, *, verilog: bool = True) -> Path:
    """A ulx3s-85f build of ``checkpoint`` in ``out`` with a ``uart`` block (and, with ``verilog``, its board core)."""
    from bnn2fpga.backend.build import BuildOptions, build

    state = build(checkpoint, BuildOptions(board="ulx3s-85f", out=out, synth=False, force=True), show_progress=False)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    if "uart" in manifest and (not verilog or all((out / s).is_file() for s in manifest["uart"]["sources"])):
        return out
    assert state.spec is not None
    name = state.spec.name
    if verilog:
        from bnn2fpga.hw.generate import generate_board

        for file, text in generate_board(state.spec, DIVISOR, TIMEOUT_BYTES).items():
            (out / file).write_text(text)
    clock_hz = round(manifest["clock_mhz"] * 1e6)
    manifest["uart"] = {"top": f"{name}_board", "sources": [f"{name}_board.v", f"{name}_rom.v"],
                        "baud": clock_hz // DIVISOR, "divisor": DIVISOR, "clock_hz": clock_hz,
                        "frame_bytes": state.spec.samples_per_frame, "classes": state.spec.classes,
                        "timeout_bytes": TIMEOUT_BYTES}
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    return out


def without_uart(build_dir: Path, out: Path) -> Path:
    """A copy of ``build_dir`` as an AXI board's build would be: no ``uart`` block (a pynq-z2 build, say)."""
    shutil.copytree(build_dir, out, ignore=shutil.ignore_patterns("sim_build"))
    manifest = json.loads((out / "manifest.json").read_text())
    manifest.pop("uart", None)
    manifest["board"] = "pynq-z2"
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return out
