"""The CLI is a dispatch table of command modules; every user error is one line, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bnn2fpga.cli import COMMANDS, build_parser, main


def test_every_command_module_has_its_name_arguments_and_handler() -> None:
    names = [c.NAME for c in COMMANDS]
    assert len(set(names)) == len(names) == 13
    for command in COMMANDS:
        assert callable(command.add_arguments) and callable(command.run), command.__name__
    sub = next(a for a in build_parser()._actions if a.dest == "command")  # noqa: SLF001 (argparse's own table)
    assert list(sub.choices) == names  # --help lists them in the table's order


@pytest.mark.parametrize("name", [c.NAME for c in COMMANDS])
def test_each_command_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([name, "--help"]) == 0
    assert f"usage: bnn2fpga {name}" in capsys.readouterr().out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("bnn2fpga ")


def test_a_user_error_is_one_line_with_exit_2(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "bnn2fpga.cli", "build", str(tmp_path / "missing[v2].pt")],
                          capture_output=True, text=True)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in done.stderr
    assert "missing[v2].pt" in lines[0]  # rich markup in a message is printed as it is


def test_an_os_refusal_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder is wanted")
    code = main(["train", "--model", "tfc", "--dataset", "synthetic", "--epochs", "1", "--quiet",
                 "--out", str(blocker / "sub" / "x.pt")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error:") and "Traceback" not in err, err


def test_paths_that_look_like_markup_are_printed_as_they_are(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    from tests.conftest import ROOT

    named = tmp_path / "model[v2].pt"
    shutil.copyfile(ROOT / "examples" / "tfc-fmnist.pt", named)
    assert main(["info", str(named)]) == 0
    assert "model[v2].pt: tfc on fashion-mnist" in capsys.readouterr().out
    out = tmp_path / "net[b].onnx"
    assert main(["export", str(named), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out.replace("\n", "")
