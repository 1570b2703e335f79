"""`bnn2fpga build --backend hls` and the C simulation of its C++ (g++ with our own ap_uint / hls::stream header):
the shipped dense and conv examples on real test images, random small networks with non-dividing folds, the
build folder's contents and determinism, and the refusals."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from bnn2fpga import reference
from bnn2fpga.backend import hls
from bnn2fpga.backend.build import BuildOptions, BuildState, plan, step_load, step_lower
from bnn2fpga.backend.folding import Folding
from bnn2fpga.backend.lowering import to_spec
from bnn2fpga.boards import get_board
from bnn2fpga.cli import main
from bnn2fpga.ir.graph import Graph
from bnn2fpga.sim import hls_csim
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
    assert "vitis-run --mode hls --tcl run_hls.tcl" in tcl and "vitis_hls -f run_hls.tcl" in tcl
    assert "config_compile -disable_unroll_code_size_check" in tcl
    ip = m["hls"]["ip"]
    assert ip["name"].startswith(f"{top}_") and ip["vlnv"] == f"bnn2fpga.org:hls:{ip['name']}:1.0"
    assert f"-ipname {ip['name']} -vendor bnn2fpga.org -library hls -version 1.0" in tcl
    # Every engine's loop is one II=1 loop over the frame, flushable.
    pipelines = re.findall(r"#pragma HLS PIPELINE.*", design)
    assert pipelines and set(pipelines) == {"#pragma HLS PIPELINE II=1 style=flp"}
    assert m["cycles"]["interval_is"] == "lower bound" and "pipeline depth" in m["cycles"]["interval_overhead"]
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
    # Popcounts and accumulators are ap_uints of their width, not int.
    for layer in m["layers"]:
        if layer["kind"] in ("dense", "conv", "output"):
            fn = design[design.index(f"static void mvtu_{layer['name']}("):]
            fn = fn[:fn.index("\n}\n")]
            assert f"const ap_uint<{layer['simd'].bit_length()}> count = bnn2fpga_popcount(" in fn
            assert re.search(r"ap_uint<\d+> acc\[", fn) and "unsigned" not in fn


def test_identical_builds_are_byte_identical(built: Path, tmp_path: Path) -> None:
    source = EXAMPLES / json.loads((built / "manifest.json").read_text())["checkpoint"]["source"]
    assert main(["build", str(source), "--backend", "hls", "--out", str(tmp_path / "again"), "--quiet"]) == 0
    a, b = files(built), files(tmp_path / "again")
    assert a.keys() == b.keys() and [k for k in a if a[k] != b[k]] == []


def test_another_build_of_the_same_network_exports_another_ip(built: Path, tmp_path: Path) -> None:
    m = json.loads((built / "manifest.json").read_text())
    other = tmp_path / "zcu104"
    assert main(["build", str(EXAMPLES / m["checkpoint"]["source"]), "--backend", "hls", "--board", "zcu104",
                 "--out", str(other), "--quiet"]) == 0
    m2 = json.loads((other / "manifest.json").read_text())
    assert m2["top"] == m["top"] and m2["hls"]["ip"]["vlnv"] != m["hls"]["ip"]["vlnv"]
    assert m2["hls"]["ip"]["name"] in (other / "run_hls.tcl").read_text()


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
    binary, _ = hls_csim.compile_design(built.resolve(), top)
    done = subprocess.run([str(binary)], cwd=built, capture_output=True, text=True, check=False)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0 and summary["frames"] == hls.TB_FRAMES and summary["mismatches"] == 0


VENDOR_SHIMS = {
    # Used only where the folder given has no header of that name (Xilinx's open-source ap_int.h
    # comes without them): what C simulation needs of hls::stream and ap_axiu.
    "hls_stream.h": """#pragma once
#include <cstdio>
#include <cstdlib>
#include <deque>
namespace hls {
template <typename T> class stream {
  public:
    stream() {}
    explicit stream(const char*) {}
    void write(const T& v) { q_.push_back(v); }
    T read() { if (q_.empty()) std::exit(3); T v = q_.front(); q_.pop_front(); return v; }
    bool empty() const { return q_.empty(); }
  private:
    std::deque<T> q_;
};
}
""",
    "ap_axi_sdata.h": """#pragma once
#include <ap_int.h>
template <int D, int U, int TI, int TD> struct ap_axiu {
    ap_uint<D> data; ap_uint<(D + 7) / 8> keep; ap_uint<(D + 7) / 8> strb; ap_uint<1> last;
};
""",
}


def test_csim_with_the_vendor_ap_int(built: Path, tmp_path: Path) -> None:
    """The design under -DBNN2FPGA_VITIS, compiled against the vendor's ap_int.h (a Vitis include folder or
    github.com/Xilinx/HLS_arbitrary_Precision_Types/include, named by BNN2FPGA_AP_INT_INCLUDE): Vitis's own
    C simulation semantics, checked against the reference by the testbench."""
    include = os.environ.get("BNN2FPGA_AP_INT_INCLUDE")
    if not include or not (Path(include) / "ap_int.h").is_file():
        pytest.skip("set BNN2FPGA_AP_INT_INCLUDE to a folder holding the vendor's ap_int.h")
    for name, text in VENDOR_SHIMS.items():
        (tmp_path / name).write_text(text)
    top = json.loads((built / "manifest.json").read_text())["top"]
    binary = tmp_path / "tb"
    subprocess.run(["g++", "-std=c++14", "-O2", "-DBNN2FPGA_VITIS", "-Wno-unknown-pragmas", "-I", str(built), "-I",
                    include, "-I", str(tmp_path), str(built / f"{top}.cpp"), str(built / f"{top}_tb.cpp"), "-o",
                    str(binary)], check=True)
    done = subprocess.run([str(binary)], cwd=built, capture_output=True, text=True, check=False)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0 and summary["mismatches"] == 0 and summary["tlast_errors"] == 0


def test_packets_come_back_whole(built: Path, tmp_path: Path) -> None:
    """Frames sent as packets of 1, 3 and the rest (tlast on each packet's last beat) come back with tlast
    exactly on each packet's last class; a packet that ends mid-frame (tlast on an earlier beat) has
    that frame completed with zero pixels and ends the output packet there, and the next packet starts
    on a frame boundary."""
    m = json.loads((built / "manifest.json").read_text())
    top, classes, beats, ppb = m["top"], m["output"]["beats_per_frame"], m["input"]["beats_per_frame"], \
        m["input"]["pixels_per_beat"]
    graph = _graph(EXAMPLES / m["checkpoint"]["source"])
    i = graph.input
    pixels = np.random.default_rng(9).integers(0, 256, size=(9, i.channels, i.height, i.width), dtype=np.uint8)
    hwc = pixels.transpose(0, 2, 3, 1).copy()
    cut = beats // 3  # frame 5 ends its packet after a third of its beats
    flat = hwc.reshape(len(hwc), -1)
    flat[5, cut * ppb:] = 0  # what the design must see: the rest of the frame as zero pixels
    expected = reference.run(graph, flat.reshape(hwc.shape).transpose(0, 3, 1, 2)).popcounts
    frames = np.zeros((len(hwc), beats * ppb), dtype=np.uint8)
    frames[:, :flat.shape[1]] = flat
    frames[5, cut * ppb:] = 255  # bytes the testbench never sends: they must not matter
    result = hls_csim.run_frames(built, frames, top=top, classes=classes, cuts={5: cut})
    assert result.packets == 4  # frames 0 | 1-3 | 4-5 (cut) | 6-8
    assert result.protocol_ok, result
    np.testing.assert_array_equal(result.outputs, expected)
    # The check can fail: an output stage that ends a packet after every frame gets 9 - 4 tlasts too many.
    broken = tmp_path / "broken"
    shutil.copytree(built, broken, ignore=shutil.ignore_patterns("sim_build"))
    design = (broken / f"{top}.cpp").read_text()
    assert design.count("beat.last = last;") == 1
    (broken / f"{top}.cpp").write_text(design.replace("beat.last = last;", f"beat.last = k == {classes - 1};"))
    bad = hls_csim.run_frames(broken, frames, top=top, classes=classes, cuts={5: cut})
    assert bad.tlast_errors == 9 - 4 and not bad.protocol_ok


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
    assert main(["sim", str(broken), "--json", "--images", "20"]) == 2  # the manifest's digest no longer matches
    assert f"changed since the build wrote them: {top}.cpp" in capsys.readouterr().err
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["sha256"][f"{top}.cpp"] = hashlib.sha256((broken / f"{top}.cpp").read_bytes()).hexdigest()
    (broken / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")  # forged: the simulation decides
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
    assert json.loads((out / "manifest.json").read_text())["folding"] == {**folding, "popcount_levels_per_stage": 2,
                                                                        "mux_folds": 8}
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
    assert max(_widths({p.name: p.read_text() for p in folder.glob("*.cpp")})) <= hls.HLS_MAX_BITS
    i = graph.input
    pixels = np.random.default_rng(5).integers(0, 256, size=(6, i.channels, i.height, i.width), dtype=np.uint8)
    frames = hls.pack_images(spec, pixels.transpose(0, 2, 3, 1))
    result = hls_csim.run_frames(folder, frames, top=spec.name, classes=spec.classes)
    assert result.protocol_ok
    np.testing.assert_array_equal(result.outputs, reference.run(graph, pixels).popcounts)


# ------------------------------------------------------------------ refusals


def _graph(checkpoint: Path) -> Graph:
    state = BuildState(checkpoint, BuildOptions(board="pynq-z2"), get_board("pynq-z2"), Path(), Path())
    step_load(state)
    step_lower(state)
    assert state.graph is not None
    return state.graph


WIDTH = re.compile(r"\b(?:ap_uint|ap_axiu)<\s*(\d+)")


def _widths(bundle: dict[str, str | bytes]) -> list[int]:
    return [int(n) for name, text in bundle.items() if name.endswith((".cpp", ".h")) and isinstance(text, str)
            for n in WIDTH.findall(text)]


@pytest.mark.parametrize(("example", "folding"), [
    ("tfc-fmnist", None),                                 # MW 6272, SIMD 128: was a 6272-bit vector
    ("sfc-fmnist", None),                                 # MW 6272, SIMD 2091 from 56-bit beats
    ("tfc-fmnist", {"dense0": {"pe": 64, "simd": 4096}}),  # the widest fold there is
    ("cnv-fmnist", None),                                 # windows, pools, flatten
])
def test_no_ap_uint_is_wider_than_4096_bits(example: str, folding: dict | None) -> None:
    """UG1399 documents ap_uint up to 4,096 bits: every width in the generated C++ stays within it, even
    for dense layers 6,272 bits wide."""
    checkpoint = EXAMPLES / f"{example}.pt"
    chosen = plan(checkpoint, BuildOptions(board="pynq-z2")).folding
    assert chosen is not None
    if folding is not None:
        chosen = Folding(chosen.pixels_per_beat, tuple(
            (name, *((folding[name]["pe"], folding[name]["simd"]) if name in folding else (pe, simd)))
            for name, pe, simd in chosen.layers))
    graph = _graph(checkpoint)
    spec = to_spec(graph, chosen)
    widths = _widths(hls.generate(spec, graph, get_board("pynq-z2")))
    assert widths and max(widths) <= hls.HLS_MAX_BITS == 4096, max(widths)
    assert max(layer.mw for layer in spec.mvtus) >= 576  # wide layers, so the bound is doing work
    if folding is not None:
        assert max(widths) == 4096  # the 4096-bit fold itself, and no converter wider than it


def test_a_fold_wider_than_4096_bits_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    chosen = plan(EXAMPLES / "tfc-fmnist.pt", BuildOptions(board="pynq-z2")).folding
    assert chosen is not None
    raw = chosen.to_json()
    raw["layers"]["dense0"] = {"pe": 1, "simd": 4097}
    (tmp_path / "f.json").write_text(json.dumps(raw))
    out = tmp_path / "never"
    assert main(["build", str(EXAMPLES / "tfc-fmnist.pt"), "--backend", "hls", "--board", "zcu104", "--folding",
                 str(tmp_path / "f.json"),
                 "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "layer dense0" in err and "4,097 bits" in err and "SIMD <= 4,096" in err
    assert "--backend rtl" in err and not out.exists()


def test_a_lattice_board_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "never"
    assert main(["build", str(EXAMPLES / "tfc-fmnist.pt"), "--backend", "hls", "--board", "ulx3s-85f",
                 "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Xilinx parts only" in err and "pynq-z2" in err and not out.exists()


def test_the_fastest_folding_search_skips_what_vitis_cannot_hold() -> None:
    """On the ZCU104 the fastest RTL folding of tfc reads dense0's 6,272 bits in one fold; for HLS the
    search goes on to the fastest folding whose words fit 4,096 bits."""
    checkpoint = EXAMPLES / "tfc-fmnist.pt"
    rtl = plan(checkpoint, BuildOptions(board="zcu104", target_fps="max"))
    hls_plan = plan(checkpoint, BuildOptions(board="zcu104", target_fps="max", backend="hls"))
    assert rtl.folding is not None and hls_plan.folding is not None
    assert max(simd for _, _, simd in rtl.folding.layers) > hls.HLS_MAX_BITS  # the search had to skip it
    graph = _graph(checkpoint)
    hls.check_expressible(to_spec(graph, hls_plan.folding))
