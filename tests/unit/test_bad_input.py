"""Every subcommand, given bad arguments or bad files, exits 2 with one `error:` line and no traceback.

The table is the product's promise to a new user: whatever they type, the answer names what is
wrong and what to do, and nothing they made is touched. Each row runs the real CLI in-process.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bnn2fpga.cli import main
from tests.conftest import ROOT
from tests.uart_build import make_uart_build, without_uart

EXAMPLES = sorted((ROOT / "examples").glob("*.pt"))
TFC = str(ROOT / "examples" / "tfc-fmnist.pt")
CNV = str(ROOT / "examples" / "cnv-fmnist.pt")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("bad")
    text = d / "notes.txt"
    text.write_text("not a checkpoint\n")
    truncated = d / "truncated.pt"
    truncated.write_bytes((ROOT / "examples" / "tfc-fmnist.pt").read_bytes()[:5000])
    empty = d / "empty.pt"
    empty.write_bytes(b"")
    not_onnx = d / "model.onnx"
    not_onnx.write_bytes(b"\x00garbage" * 10)
    folding = d / "folding.json"
    folding.write_text(json.dumps({"layers": {"dense0": {"pe": 0, "simd": 4}}}))
    broken_json = d / "broken.json"
    broken_json.write_text("{")
    fake_build = d / "fake-build"
    fake_build.mkdir()
    (fake_build / "manifest.json").write_text("{}")
    uart_build = make_uart_build(d / "uart-build")  # `run` fails on these before any simulation
    plain_build = without_uart(uart_build, d / "plain-build")
    return {"text": str(text), "truncated": str(truncated), "empty": str(empty),
            "dir": str(d), "not_onnx": str(not_onnx), "folding": str(folding), "broken_json": str(broken_json),
            "fake_build": str(fake_build), "missing": str(d / "nope.pt"), "out": str(d / "out-never-written"),
            "uart_build": str(uart_build), "plain_build": str(plain_build)}


# (argv with {placeholders} from `files`, a fragment the one error line must contain)
TABLE: list[tuple[list[str], str]] = [
    # train
    (["train", "--widths", "2,x", "--dataset", "synthetic", "--out", "{out}"], "--widths"),
    (["train", "--widths", "0,5,5", "--dataset", "synthetic", "--out", "{out}"], "at least one channel"),
    (["train", "--epochs", "-1", "--dataset", "synthetic", "--out", "{out}"], "--epochs"),
    (["train", "--model", "resnet", "--dataset", "synthetic", "--out", "{out}"], "resnet"),
    (["train", "--planes", "9", "--dataset", "synthetic", "--out", "{out}"], "plane"),
    (["train", "--resume", "{text}", "--dataset", "synthetic", "--out", "{out}"], "notes.txt"),
    (["train", "--dataset", "cifar10", "--data", "{missing}", "--out", "{out}"], "nope.pt"),
    # import / export
    (["import", "{missing}", "--out", "{out}"], "no such file"),
    (["import", "{not_onnx}", "--out", "{out}"], "not a readable ONNX model"),
    (["import", "{dir}", "--out", "{out}"], "--topology"),
    (["import", "{dir}", "--topology", "lfc", "--out", "{out}"], "missing"),
    (["import", "{dir}", "--format", "bnn-pynq", "--topology", "cnv", "--classes", "0", "--out", "{out}"], "--classes"),
    (["import", "{not_onnx}", "--pixel-divisor", "0", "--out", "{out}"], "--pixel-divisor"),
    (["export", "{missing}", "--out", "{out}"], "nope.pt"),
    (["export", "{text}", "--out", "{out}"], "notes.txt"),
    (["export", TFC, "--format", "bnn-pynq", "--out", "{out}"], "--topology"),
    (["export", TFC, "--format", "bnn-pynq", "--topology", "lfc", "--out", "{out}"], "fixed"),
    (["export", TFC, "--format", "bnn-pynq", "--topology", "lfc", "--config", "{missing}", "--out", "{out}"], "fixed"),
    # info / eval
    (["info", "{missing}"], "nope.pt"),
    (["info", "{text}"], "notes.txt"),
    (["info", "{truncated}"], "truncated.pt"),
    (["info", "{empty}"], "empty.pt"),
    (["info", "{dir}"], "directory"),
    (["eval", "{missing}"], "nope.pt"),
    (["eval", TFC, "--limit", "0"], "--limit"),
    (["eval", TFC, "--dataset", "fashion-mnist-32rgb"], "32"),
    (["eval", TFC, "--data", "{missing}", "--dataset", "cifar10"], "nope.pt"),
    # prune / sensitivity
    (["prune", "{missing}", "--method", "flip", "--out", "{out}"], "nope.pt"),
    (["prune", TFC, "--method", "flip", "--binop-target", "1.5", "--out", "{out}"],
     "--binop-target: must be a finite number in (0, 1]"),
    (["prune", TFC, "--method", "flip", "--tau", "-1", "--out", "{out}"], "--tau: must be an integer >= 0"),
    (["prune", TFC, "--method", "bitslice", "--keep-bits", "0", "--out", "{out}"], "--keep-bits"),
    (["prune", TFC, "--method", "bitslice", "--multipliers", "a,b", "--out", "{out}"], "--multipliers"),
    (["prune", TFC, "--method", "flip", "--holdout", "-3", "--out", "{out}"], "--holdout: must be a positive integer"),
    (["prune", TFC, "--method", "flip", "--out", TFC], "already exists"),
    (["sensitivity", "{missing}"], "nope.pt"),
    (["sensitivity", TFC, "--draws", "0"], "--draws"),
    (["sensitivity", TFC, "--limit", "-2"], "--limit"),
    # build
    (["build", "{missing}", "--out", "{out}"], "nope.pt"),
    (["build", "{text}", "--out", "{out}"], "notes.txt"),
    (["build", TFC, "--board", "de10-nano", "--out", "{out}"], "de10-nano"),
    (["build", TFC, "--folding", "{missing}", "--out", "{out}"], "nope.pt"),
    (["build", TFC, "--folding", "{broken_json}", "--out", "{out}"], "broken.json"),
    (["build", TFC, "--folding", "{folding}", "--out", "{out}"], "pe"),
    (["build", TFC, "--margin", "0", "--out", "{out}"], "--margin"),
    (["build", TFC, "--target-fps", "0", "--out", "{out}"], "--target-fps"),
    (["build", CNV, "--target-fps", "2000000", "--out", "{out}"], "the fastest folding"),
    (["build", TFC, "--out", TFC], "exists"),
    (["build", TFC, "--backend", "hls", "--board", "ulx3s-85f", "--out", "{out}"], "Xilinx parts only"),
    (["build", TFC, "--backend", "vhdl", "--out", "{out}"], "--backend"),
    (["build", TFC, "--board", "icebreaker", "--out", "{out}"], "--keep-bits 1,2,3"),
    # report
    (["report", "{missing}"], "not a bnn2fpga build folder"),
    (["report", "{dir}"], "not a bnn2fpga build folder"),
    (["report", "{fake_build}"], "not a bnn2fpga build folder"),
    # sim
    (["sim", "{missing}"], "nope.pt"),
    (["sim", "{dir}"], "manifest.json"),
    (["sim", "{fake_build}"], "manifest"),
    (["sim", "{fake_build}", "--images", "0"], "--images"),
    (["sim", "{fake_build}", "--stall", "1.5"], "--stall"),
    # run (a board that does not answer or answers garbage: tests/unit/test_host_session.py, on ptys)
    (["run", "{missing}", "--port", "/dev/ttyUSB0"], "nope.pt"),
    (["run", "{plain_build}", "--port", "/dev/ttyUSB0"], "--board ulx3s-85f"),
    (["run", "{uart_build}", "--port", "{missing}"], "no serial port"),
    (["run", "{uart_build}", "--port", "{text}"], "cannot open serial port"),
    (["run", "{uart_build}", "--port", "{missing}", "--images", "0"], "--images"),
    (["run", "{uart_build}", "--port", "{missing}", "--images", "-5"], "--images"),
    (["run", "{uart_build}", "--port", "{missing}", "--timeout", "0"], "--timeout"),
    (["run", "{uart_build}"], "--port"),
    (["run", "{uart_build}", "--port", "{missing}", "--sim"], "not allowed with"),
    (["run", "{uart_build}", "--sim", "--baud", "9600"], "--baud"),
]


def _ids() -> list[str]:
    return [" ".join(a if not a.startswith("/") else Path(a).name for a in argv)[:60] for argv, _ in TABLE]


@pytest.mark.parametrize(("argv", "fragment"), TABLE, ids=_ids())
def test_bad_input_is_one_clear_error(argv: list[str], fragment: str, files: dict[str, str],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    argv = [a.format(**files) for a in argv]
    before = {p: p.stat().st_mtime_ns for p in (ROOT / "examples").glob("*.pt")}
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, f"exit {code}, stderr: {err!r}"
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error:"), err
    assert "Traceback" not in err and len(lines) <= 2, err
    assert fragment.lower() in err.lower(), err
    assert not Path(files["out"]).exists()
    assert before == {p: p.stat().st_mtime_ns for p in (ROOT / "examples").glob("*.pt")}


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_through_info_and_eval_json(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(example), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["binops"] > 0 and info["layers"]
    assert main(["eval", str(example), "--json", "--limit", "200"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 200 and 0.5 < result["reference_accuracy"] <= 1.0


def _one_error_line(code: int, err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    return lines[0]


def test_build_refuses_an_input_beat_wider_than_the_dma(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import random_checkpoint

    random_checkpoint("tfc", widths=[37, 13, 7], planes=[4, 6, 7], dataset="fashion-mnist").save(tmp_path / "n.pt")
    # 196 three-plane pixels a beat: 196 bytes, 256 on the DMA's power-of-two stream, past its 128
    # (one PE a layer: the refusal comes after the Verilog is generated, which this keeps quick).
    folding = {"pixels_per_beat": 196, "layers": {"dense0": {"pe": 1, "simd": 147}, "dense1": {"pe": 1, "simd": 37},
                                                  "dense2": {"pe": 1, "simd": 13}, "output": {"pe": 1, "simd": 7}}}
    (tmp_path / "f.json").write_text(json.dumps(folding))
    code = main(["build", str(tmp_path / "n.pt"), "--board", "zcu104", "--folding", str(tmp_path / "f.json"),
                 "--no-synth", "--quiet", "--out", str(tmp_path / "out")])
    line = _one_error_line(code, capsys.readouterr().err)
    assert "196 pixels per beat" in line and "1024-bit stream an AXI DMA offers" in line, line
    assert "--target-fps" in line and "pixels_per_beat at most 128" in line, line
    assert not (tmp_path / "out").exists()


def test_build_refuses_a_xilinx_board_without_a_block_design(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    import dataclasses

    from bnn2fpga import boards

    monkeypatch.setitem(boards.BOARDS, "kv260", dataclasses.replace(boards.BOARDS["kv260"], block_design=None))
    code = main(["build", TFC, "--board", "kv260", "--no-synth", "--quiet", "--out", str(tmp_path / "out")])
    line = _one_error_line(code, capsys.readouterr().err)
    assert "kv260 (xck26-sfvc784-2LV-c) has no block design for vivado.tcl" in line, line
    assert "boards with one: pynq-z2, ultra96-v2, zcu104" in line, line
    assert not (tmp_path / "out").exists()
