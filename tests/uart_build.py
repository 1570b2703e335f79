"""UART board build folders for the host-side tests (`bnn2fpga run`).

``bnn2fpga build --board ulx3s-85f --no-synth`` writes ``<name>_board.v`` (the board core) and the
manifest's ``uart`` block; ``without_uart`` turns a copy into what an AXI board's build looks like.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import ROOT

TFC = ROOT / "examples" / "tfc-fmnist.pt"


def make_uart_build(out: Path, checkpoint: Path = TFC) -> Path:
    """A ulx3s-85f build of ``checkpoint`` in ``out`` (no place and route)."""
    from bnn2fpga.backend.build import BuildOptions, build

    build(checkpoint, BuildOptions(board="ulx3s-85f", out=out, synth=False, force=True), show_progress=False)
    uart = json.loads((out / "manifest.json").read_text())["uart"]
    assert all((out / name).is_file() for name in uart["sources"]), uart
    return out


def without_uart(build_dir: Path, out: Path) -> Path:
    """A copy of ``build_dir`` as an AXI board's build would be: no ``uart`` block (a pynq-z2 build, say)."""
    shutil.copytree(build_dir, out, ignore=shutil.ignore_patterns("sim_build"))
    manifest = json.loads((out / "manifest.json").read_text())
    manifest.pop("uart", None)
    manifest["board"] = "pynq-z2"
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return out
