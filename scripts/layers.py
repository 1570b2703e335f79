"""Check bnn2fpga's import layering with import-linter, as the package is installed.

The repository keeps ``hw/``, ``sim/`` and ``templates/`` at the top level and installs them as
``bnn2fpga.hw``, ``.sim`` and ``.templates``; an editable install maps them with an import hook that
import-linter's graph builder does not follow. So this stages the package in its installed shape in
a temporary folder and runs ``lint-imports`` there with the contracts of ``pyproject.toml``
(``[tool.importlinter]``).

    python scripts/layers.py            # check the contracts (exit 1 if one is broken)
    python scripts/layers.py --map      # print the package-level import map (Mermaid)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAPPED = ("hw", "sim", "templates")  # top-level folders installed as bnn2fpga.<name>
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "sim_build")


def stage(into: Path) -> Path:
    """Copy the package into ``into`` as it is installed; returns the folder to put on sys.path."""
    pkg = into / "bnn2fpga"
    shutil.copytree(ROOT / "bnn2fpga", pkg, ignore=IGNORE, symlinks=False,
                    ignore_dangling_symlinks=True)
    for name in MAPPED:
        target = pkg / name
        if target.is_symlink() or target.exists():  # a worktree's convenience links
            shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()
        shutil.copytree(ROOT / name, target, ignore=IGNORE)
    return into


def import_map(path: Path) -> str:
    """Package-level import map of the staged tree as a Mermaid flowchart (sorted, so stable)."""
    code = (
        "import grimp\n"
        "g = grimp.build_graph('bnn2fpga', cache_dir=None)\n"
        "top = lambda m: m.split('.')[1] if m.count('.') else m\n"
        "edges = sorted({(top(a), top(b)) for a in g.modules for b in g.find_modules_directly_imported_by(a)\n"
        "                if b.startswith('bnn2fpga.') and a.startswith('bnn2fpga.') and top(a) != top(b)})\n"
        "print('flowchart TD')\n"
        "for a, b in edges: print(f'    {a} --> {b}')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(path)}
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=path, check=True, capture_output=True,
                          text=True).stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--map", action="store_true", help="print the import map instead of checking the contracts")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bnn2fpga-layers-") as tmp:
        path = stage(Path(tmp))
        if args.map:
            sys.stdout.write(import_map(path))
            return 0
        lint = shutil.which("lint-imports")
        if lint is None:
            print("lint-imports not found: pip install -e '.[test]' installs import-linter", file=sys.stderr)
            return 2
        env = {**os.environ, "PYTHONPATH": str(path)}
        return subprocess.run([lint, str(ROOT / "pyproject.toml"), "--no-cache"], env=env,
                              cwd=path).returncode


if __name__ == "__main__":
    raise SystemExit(main())
