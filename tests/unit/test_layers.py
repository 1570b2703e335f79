"""The import layering (pyproject.toml ``[tool.importlinter]``) holds, and docs/architecture.md's
import map is the one the code has (regenerate it with ``python scripts/layers.py --write-map``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "layers.py"


def test_import_linter_contracts_are_kept() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " 0 broken" in done.stdout, done.stdout[-4000:]


def test_architecture_doc_shows_the_current_import_map() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--check-map"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def _private_names_used_across_modules() -> list[str]:
    """``from m import _x`` and ``m._x`` where ``m`` is one of ours: a private name used outside its module."""
    import ast

    found = []
    for folder in ("bnn2fpga", "hw", "sim", "tests", "benchmarks", "scripts"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if any(p.is_symlink() for p in (path, *path.parents)):
                continue  # a checkout's bnn2fpga/hw -> ../hw link: the same files again
            tree = ast.parse(path.read_text())
            modules: set[str] = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom):
                    ours = node.level > 0 or (node.module or "").startswith("bnn2fpga")
                    for alias in node.names:
                        if ours and alias.name.startswith("_") and not alias.name.startswith("__"):
                            found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {alias.name}")
                        elif ours:
                            modules.add(alias.asname or alias.name)
                elif isinstance(node, ast.Import):
                    modules.update(a.asname or a.name for a in node.names if a.name.startswith("bnn2fpga"))
            for node in ast.walk(tree):
                if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                        and node.attr.startswith("_") and not node.attr.startswith("__")):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} uses {node.value.id}.{node.attr}")
    return found


def test_no_private_name_is_used_outside_its_module() -> None:
    assert _private_names_used_across_modules() == []


def test_the_report_loads_no_amaranth() -> None:
    # The report renders a build's manifest and estimates; reading one must not need the HDL.
    code = "import sys, bnn2fpga.backend.report; print(sorted(m for m in sys.modules if m.split('.')[0] == 'amaranth'))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]", done.stdout
