"""`bnn2fpga build --backend hls` and the C simulation of its C++ (g++ with our own ap_uint / hls::stream header):
the shipped dense and conv examples on real test images, random small networks with non-dividing folds, the
build folder's contents and determinism, and the refusals."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from bnn2fpga import reference
from bnn2fpga.backend import hls
from bnn2fpga.backend.boards import get_board
from bnn2fpga.backend.build import BuildOptions, plan
from bnn2fpga.backend.folding import Folding
from bnn2fpga.backend.lowering import to_spec
from bnn2fpga.cli import main
from bnn2fpga.ir.graph import Graph
from tests.conftest import EXAMPLES, random_checkpoint
from tests.strategies import graphs

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "sim_build" not in p.parts}


def sim(build: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict]:
    code = main(["sim", str(build), "--json", *extra])
    out = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(out[-1])


@pytest.fixture(scope="module", params=["tfc-fmnist", "cnv-fmnist"])
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hls") / request.param
    assert main(["build", str(EXAMPLES / f"{request.param}.pt"), "--backend", "hls", "--out", str(out),
                 "--quiet"]) == 0
    return out


def test_build_folder_is_an_hls_project_with_the_rtl_folding(built: Path) -> None:
    m = json.loads((built / "manifest.json").read_text())
    top = m["top"]
    assert m["backend"] == "hls" and "yosys" not in m["resources"] and m["memories"] == []
    assert {f"{top}.cpp", f"{top}.h", f"{top}_tb.cpp", "bnn2fpga_hls.h", "run_hls.tcl", "tb_frames.bin",
            "tb_expected.bin", "manifest.json", "report.md", "folding.json", "checkpoint.pt"} == set(files(built))
    # The folding is the one the RTL build chooses for the same checkpoint and board.
    rtl = plan(EXAMPLES / m["checkpoint"]["source"], BuildOptions(board="pynq-z2"))
    assert rtl.folding is not None and m["folding"] == rtl.folding.to_json()
    design = (built / f"{top}.cpp").read_text()
    assert "#pragma HLS DATAFLOW" in design and "#pragma HLS PIPELINE II=1" in design
    assert "#pragma HLS INTERFACE axis port=s_axis" in design and "#pragma HLS INTERFACE axis port=m_axis" in design
    for layer in m["layers"]:
        if layer["kind"] in ("dense", "conv", "output"):
            fn = design[design.index(f"static void mvtu_{layer['name']}("):]
            lanes = f"static const uint64_t weights[{layer['pe']}]"
            assert lanes in fn[:300] and "ARRAY_PARTITION variable=weights complete dim=1" in fn
    kinds = {layer["kind"] for layer in m["layers"]}
    for kind in ("window", "pool", "flatten"):
        assert (f"static void {kind}_" in design) == (kind in kinds), kind
    tcl = (built / "run_hls.tcl").read_text()
    assert "set_part xc7z020clg400-1" in tcl and "create_clock -period 10 " in tcl
    for step in ("csim_design", "csynth_design", "cosim_design", "export_design -format ip_catalog"):
        assert step in tcl
    report = (built / "report.md").read_text()
    assert m["cycles"]["bottleneck"] in report and "expected II" in report and "Frame rate set by" in report
    # Expected II: the largest engine loop (an MVTU's vectors x row groups x folds) and the two streams.
    loops = [layer["cycles"] for layer in m["layers"] if layer["kind"] != "fifo"]
    streams = [m["input"]["beats_per_frame"], m["output"]["beats_per_frame"]]
    assert m["cycles"]["initiation_interval"] == max(*loops, *streams)
    for layer in m["layers"]:
        if layer["kind"] in ("dense", "conv", "output"):
            folds = -(-layer["mw"] // layer["simd"]) * -(-layer["mh"] // layer["pe"])
            assert layer["cycles"] == layer.get("vectors", 1) * folds
            assert f"for (int i = 0; i < {layer['cycles']}; ++i)" in design


def test_identical_builds_are_byte_identical(built: Path, tmp_path: Path) -> None:
    source = EXAMPLES / json.loads((built / "manifest.json").read_text())["checkpoint"]["source"]
    assert main(["build", str(source), "--backend", "hls", "--out", str(tmp_path / "again"), "--quiet"]) == 0
    a, b = files(built), files(tmp_path / "again")
    assert a.keys() == b.keys() and [k for k in a if a[k] != b[k]] == []


def test_csim_on_real_test_images_is_bit_exact(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, s = sim(built, capsys, "--images", "300")
    assert code == 0 and s["mode"] == "csim" and s["images"] == 300
    assert s["mismatched_words"] == 0 and s["bit_exact"] and s["passed"]
    assert s["hardware_accuracy"] == s["reference_accuracy"] > 0.7
    assert list((built / "sim_build").glob("csim-*/*_tb")), "binary cached in sim_build/"


def test_the_vitis_testbench_checks_itself(built: Path) -> None:
    """Run as Vitis's csim_design does (no arguments, in the project folder): it compares the reference's
    popcounts of its own frames and exits 0."""
    top = json.loads((built / "manifest.json").read_text())["top"]
    binary, _ = hls.compile_design(built.resolve(), top)
    done = subprocess.run([str(binary)], cwd=built, capture_output=True, text=True, check=False)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0 and summary["frames"] == hls.TB_FRAMES and summary["mismatches"] == 0


def test_a_wrong_weight_is_caught(built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(built, broken, ignore=shutil.ignore_patterns("sim_build"))
    top = json.loads((built / "manifest.json").read_text())["top"]
    design = (broken / f"{top}.cpp").read_text()
    at = design.index("static void mvtu_output(")
    word = re.compile(r"0x([0-9a-f]+)ull").search(design, at)
    assert word is not None
    flipped = f"0x{int(word.group(1), 16) ^ 1:x}ull"  # one weight bit of class 0's row
    (broken / f"{top}.cpp").write_text(design[:word.start()] + flipped + design[word.end():])
    code, s = sim(broken, capsys, "--images", "20")
    assert code != 0 and not s["passed"] and s["mismatched_words"] == 20  # class 0 of every image is off by 1


def test_generated_cxx_is_cxx14(built: Path) -> None:
    """Vitis HLS compiles C++14: the design and testbench must not need anything newer."""
    top = json.loads((built / "manifest.json").read_text())["top"]
    done = subprocess.run(["g++", "-std=c++14", "-fsyntax-only", "-Wall", "-Wextra", "-Werror",
                           "-Wno-unknown-pragmas", "-I", str(built), str(built / f"{top}.cpp"),
                           str(built / f"{top}_tb.cpp")], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_csim_whole_test_set(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, s = sim(built, capsys, "--bulk")
    assert code == 0 and s["images"] == 10000 and s["mismatched_words"] == 0 and s["passed"]
    assert s["hardware_accuracy"] == s["reference_accuracy"]


def test_integer_input_network(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An integer-input first layer (planes shifted and added) with awkward widths and a folding file."""
    ck = tmp_path / "int.pt"
    random_checkpoint("tfc", seed=3, encoding="integer", widths=[37, 13, 7], planes=[4, 6, 7],
                      dataset="fashion-mnist").save(ck)
    folding = {"pixels_per_beat": 7, "layers": {"dense0": {"pe": 5, "simd": 100}, "dense1": {"pe": 3, "simd": 10},
                                                "dense2": {"pe": 2, "simd": 13}, "output": {"pe": 4, "simd": 7}}}
    (tmp_path / "f.json").write_text(json.dumps(folding))
    out = tmp_path / "b"
    assert main(["build", str(ck), "--backend", "hls", "--folding", str(tmp_path / "f.json"), "--out", str(out),
                 "--quiet"]) == 0
    assert json.loads((out / "manifest.json").read_text())["folding"] == folding
    code, s = sim(out, capsys, "--images", "200")
    assert code == 0 and s["mismatched_words"] == 0 and s["passed"]


# ------------------------------------------------------------------ random networks


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(graphs(max_channels=3, heights=(3, 9), widths=(3, 9), max_conv_out=70, max_dense_out=90,
              always_conv=False, few_folds=False))
def test_random_network_csim_equals_reference(tmp_path: Path, drawn: tuple[Graph, Folding]) -> None:
    graph, folding = drawn
    spec = to_spec(graph, folding)
    folder = tmp_path / f"n{abs(hash(repr(folding))) % 10**8}"
    hls.write_design(spec, graph, get_board("pynq-z2"), folder)
    i = graph.input
    pixels = np.random.default_rng(5).integers(0, 256, size=(6, i.channels, i.height, i.width), dtype=np.uint8)
    frames = hls.pack_images(spec, pixels.transpose(0, 2, 3, 1))
    result = hls.run_frames(folder, frames, top=spec.name, classes=spec.classes)
    assert result.protocol_ok
    np.testing.assert_array_equal(result.outputs, reference.run(graph, pixels).popcounts)


# ------------------------------------------------------------------ refusals


def test_a_value_wider_than_vitis_allows_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(hls, "HLS_MAX_BITS", 4096)  # tfc's 6272-bit input vector is then too wide
    out = tmp_path / "never"
    assert main(["build", str(EXAMPLES / "tfc-fmnist.pt"), "--backend", "hls", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "layer dense0" in err and "6,272 bits" in err and "--backend rtl" in err
    assert not out.exists()


def test_a_lattice_board_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "never"
    assert main(["build", str(EXAMPLES / "tfc-fmnist.pt"), "--backend", "hls", "--board", "ulx3s-85f",
                 "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Xilinx parts only" in err and "pynq-z2" in err and not out.exists()
