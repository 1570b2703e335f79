"""The graph forms of published binary networks that bnn2fpga used to refuse, made here in small (no
download): the QONNX zoo's older TFC_1W1A (weights, input and activations as ``Quant`` of bit width 1),
FINN's streamlined TFC (the raw pixel in, ``Div`` by 255, a bipolar ``MultiThreshold`` input, batch-norm
wrapped in ``Unsqueeze``/``Squeeze``, a ``TopK`` tail) and FINN's notebook LFC (``Sign`` activations,
``Unsqueeze``/``Squeeze`` around batch-norm, initializers listed as graph inputs). Each imports and
equals qonnx's executor image for image: the predictions and the integer class scores (the last
layer's dot product). docs/import.md, "Published networks tried", has the real files' results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import qonnx.core.onnx_exec as qonnx_exec
from onnx import TensorProto, helper, numpy_helper

from bnn2fpga import data
from bnn2fpga.checkpoint import load
from bnn2fpga.cli import main
from bnn2fpga.interop.onnx_graph import quant
from bnn2fpga.ir.pipeline import lower
from bnn2fpga.reference import run as reference_run
from tests.conftest import q17_codes

from .test_import_qonnx import QONNX, Graph


def _int64(g: Graph, value: list[int]) -> str:
    name = g.const(0.0)
    g.inits[-1] = numpy_helper.from_array(np.int64(value), name)
    return name


def _save(g: Graph, path: Path, opset: int, *, uint8_input: bool = False, inputs_listed: bool = False) -> Path:
    g.save(path)
    model = onnx.load(str(path))
    model.opset_import[0].version = opset
    if model.graph.node[-1].op_type == "TopK":  # the output is TopK's indices
        model.graph.output[0].type.tensor_type.elem_type = TensorProto.INT64
    if uint8_input:  # FINN's annotation: the graph takes the raw pixel
        a = model.graph.quantization_annotation.add()
        a.tensor_name = model.graph.input[0].name
        a.quant_parameter_tensor_names.add(key="finn_datatype", value="UINT8")
    if inputs_listed:  # PyTorch 1.1 listed every initializer as a graph input too
        model.graph.input.extend(helper.make_tensor_value_info(i.name, i.data_type, list(i.dims))
                                 for i in model.graph.initializer)
    onnx.save(model, str(path))
    return path


def _quant1(g: Graph) -> Graph:
    """Brevitas's older 1-bit form: a signed narrow Quant of bit width 1 (bipolar, as qonnx executes it)."""
    return g.node("Quant", g.const(np.float32(1)), g.const(np.float32(0)), g.const(np.float32(1)), domain=QONNX,
                  signed=1, narrow=1, rounding_mode="ROUND")


def old_quant_tfc() -> Graph:
    """The zoo's first TFC_1W1A: x.view(1, -1), 2x - 1, Quant(1 bit); weights Quant(1 bit) then Transpose;
    batch-norm; Quant(1 bit) activations; TensorNorm as Sub, Div, Mul, Add of single values."""
    g = Graph([1, 1, 28, 28], seed=11)
    g.node("Reshape", _int64(g, [1, -1])).node("Mul", g.const(2.0)).node("Sub", g.const(np.float32([1.0])))
    _quant1(g)
    fan_in = 784
    for out in (32, 24, 10):
        raw = g.const(g.rng.uniform(-1, 1, (out, fan_in)))
        g.count += 1
        wq, wt = f"wq{g.count}", f"wt{g.count}"
        g.nodes += [helper.make_node("Quant", [raw, g.const(np.float32(1)), g.const(np.float32(0)),
                                               g.const(np.float32(1))], [wq], domain=QONNX, signed=1, narrow=1,
                                     rounding_mode="ROUND", name=f"weight_quant{g.count}"),
                    helper.make_node("Transpose", [wq], [wt], perm=[1, 0], name=f"transpose{g.count}")]
        g.node("MatMul", wt)
        if out != 10:
            _quant1(g.batchnorm(out, fan_in**0.5 / 3))
        fan_in = out
    g.node("Sub", g.const(np.float32([0.45]))).node("Div", g.const(np.float32([17.8])))
    return g.node("Mul", g.const(np.float32([0.73]))).node("Add", g.const(np.float32([-1.14])))


def _signs(g: Graph, shape: tuple[int, int]) -> str:
    return g.const(np.where(g.rng.uniform(-1, 1, shape) >= 0, 1.0, -1.0))


def _squeezed_batchnorm(g: Graph, channels: int, scale: float, *, axes_as_input: bool) -> Graph:
    """FINN's (and PyTorch 1.1's) BatchNorm1d on (N, C): Unsqueeze to (N, C, 1), batch-norm, Squeeze."""
    if axes_as_input:  # opset 13
        g.node("Unsqueeze", _int64(g, [2])).batchnorm(channels, scale).node("Squeeze", _int64(g, [2]))
    else:
        g.node("Unsqueeze", axes=[2]).batchnorm(channels, scale).node("Squeeze", axes=[2])
    return g


def finn_streamlined_tfc() -> Graph:
    """FINN's build_dataflow TFC-W1A1: Div 255 in the graph, Reshape [1, -1], 2x - 1, MultiThreshold at 0 with
    out_scale 2 and out_bias -1; +-1 MatMuls, Mul 1, batch-norm inside Unsqueeze/Squeeze; TopK at the end."""
    g = Graph([1, 1, 28, 28], seed=12)
    g.node("Div", g.const(255.0)).node("Reshape", _int64(g, [1, -1]))
    g.node("Mul", g.const(2.0)).node("Sub", g.const(np.float32([1.0])))
    bipolar = {"domain": QONNX, "out_scale": 2.0, "out_bias": -1.0, "out_dtype": "BIPOLAR"}
    g.node("MultiThreshold", g.const(np.zeros((1, 1))), **bipolar)
    fan_in = 784
    for out in (32, 24):
        g.node("MatMul", _signs(g, (fan_in, out))).node("Mul", g.const(1.0))
        _squeezed_batchnorm(g, out, fan_in**0.5 / 3, axes_as_input=True)
        g.node("MultiThreshold", g.const(np.zeros((1, 1))), **bipolar)
        fan_in = out
    g.node("MatMul", _signs(g, (fan_in, 10))).node("Mul", g.const(1.0))
    g.node("Sub", g.const(np.float32([0.45]))).node("Div", g.const(np.float32([17.8])))
    g.node("Mul", g.const(np.float32([0.73]))).node("Add", g.const(np.float32([-1.14])))
    k = _int64(g, [1])
    g.count += 1
    g.nodes.append(helper.make_node("TopK", [g.current, k], [f"values{g.count}", "global_out"], name="TopK_0",
                                    axis=-1))
    g.current = "global_out"
    return g


def notebook_lfc(inverted: bool = False) -> Graph:
    """FINN's notebook LFC-W1A1 (a PyTorch 1.1 export): 2x - 1 and Sign; +-1 MatMuls, a per-channel Mul (1, C),
    Unsqueeze/BatchNormalization/Squeeze (axes as attributes), Sign; the last MatMul times one scale.
    ``inverted``: 1 - 2x instead, so pixel 128 and above give -1 (the complement of bit plane 7)."""
    g = Graph([1, 1, 28, 28], seed=13)
    g.node("Reshape", _int64(g, [1, -1])).node("Mul", g.const(2.0)).node("Sub", g.const(np.float32([1.0])))
    if inverted:
        g.node("Mul", g.const(-1.0))
    g.node("Sign")
    fan_in = 784
    for out in (32, 24):
        g.node("MatMul", _signs(g, (fan_in, out))).node("Mul", g.const(np.full((1, out), 0.05)))
        _squeezed_batchnorm(g, out, 0.05 * fan_in**0.5 / 3, axes_as_input=False).node("Sign")
        fan_in = out
    return g.node("MatMul", _signs(g, (fan_in, 10))).node("Mul", g.const(np.float32(0.0237)))


def _qonnx(path: Path, pixels: np.ndarray, divisor: float) -> tuple[np.ndarray, np.ndarray]:
    """qonnx's predictions and integer class scores (the last MatMul's output over its weights' magnitude),
    one image at a time: FINN's graphs reshape to a batch of 1."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    model = cleanup_model(ModelWrapper(str(path)))
    last = [n for n in model.graph.node if n.op_type == "MatMul"][-1]
    name_in, name_out = model.graph.input[0].name, model.graph.output[0].name
    predictions, dots = [], []
    for p in pixels:
        ctx = qonnx_exec.execute_onnx(model, {name_in: p[None].astype(np.float32) / np.float32(divisor)},
                                      return_full_exec_context=True)
        out = np.asarray(ctx[name_out]).reshape(-1)
        predictions.append(int(out[0]) if out.size == 1 else int(out.argmax()))
        dot = np.asarray(ctx[last.output[0]]).reshape(-1) / np.abs(np.asarray(ctx[last.input[1]])).max(0)
        assert np.array_equal(dot, np.rint(dot))
        dots.append(dot.astype(np.int64))
    return np.asarray(predictions), np.stack(dots)


def check_equal_to_qonnx(path: Path, tmp_path: Path, *extra: str, divisor: float = 255.0,
                         planes: list[int] | None = None, table: list[int] | None = None) -> None:
    ckpt = tmp_path / "imported.pt"
    if ckpt.exists():
        ckpt.unlink()
    assert main(["import", str(path), "--out", str(ckpt), *extra]) == 0
    loaded = load(ckpt)
    assert loaded.architecture["input"]["planes"] == (planes or [7])
    assert loaded.architecture["input"].get("table") == (None if table is None else [table])
    pixels = np.concatenate([data.load("fashion-mnist").test.images[:40],
                             np.random.default_rng(5).integers(0, 256, (20, 1, 28, 28), dtype=np.uint8)])
    ours = reference_run(lower(loaded), pixels)
    predictions, dots = _qonnx(path, pixels, divisor)
    fan_in = loaded.architecture["layers"][-2]["out"]
    assert (ours.predictions == predictions).all(), f"{(ours.predictions != predictions).sum()} predictions differ"
    assert np.array_equal(2 * ours.popcounts.astype(np.int64) - fan_in, dots)
    assert len(set(ours.predictions.tolist())) >= 2  # not a degenerate constant network


def test_a_signed_quant_of_bit_width_1_is_bipolar_as_qonnx_executes_it() -> None:
    from qonnx.custom_op.general.quant import quant as qonnx_quant

    x = np.float32([-2.0, -0.5, -0.0, 0.0, 0.25, 3.0])
    for narrow in (0, 1):
        ours = quant(x, np.float32(0.5), np.float32(0), np.float32(1), signed=1, narrow=narrow)
        assert np.array_equal(ours, qonnx_quant(x, np.float32(0.5), np.float32(0), np.float32(1), 1, narrow, "ROUND"))
        assert ours.tolist() == [-0.5, -0.5, 0.5, 0.5, 0.5, 0.5]


def test_the_zoos_older_quant_form_imports(tmp_path: Path) -> None:
    check_equal_to_qonnx(_save(old_quant_tfc(), tmp_path / "old.onnx", 9), tmp_path)


def test_finns_streamlined_tfc_takes_the_raw_pixel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The graph declares its input UINT8 and divides by 255 itself: the default divisor is then 1 and it
    imports as downloaded, saying so in the summary and the checkpoint."""
    path = _save(finn_streamlined_tfc(), tmp_path / "finn.onnx", 13, uint8_input=True)
    check_equal_to_qonnx(path, tmp_path, divisor=1.0)
    out = capsys.readouterr().out
    assert "model input = pixel / 1 (the graph declares its input UINT8: it takes the raw pixel)" in out, out
    origin = load(tmp_path / "imported.pt").training["imported_from"]
    assert (origin["pixel_divisor"], origin["pixel_divisor_from"]) == (1.0, "uint8")
    check_equal_to_qonnx(path, tmp_path, "--pixel-divisor", "1", divisor=1.0)  # the same, given explicitly
    assert load(tmp_path / "imported.pt").training["imported_from"]["pixel_divisor_from"] == "given"


def test_an_explicit_divisor_wins_over_the_uint8_annotation(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = _save(finn_streamlined_tfc(), tmp_path / "finn.onnx", 13, uint8_input=True)
    # Given pixel / 255, the graph divides again: its quantiser sees at most 1/255 and never switches.
    assert main(["import", str(path), "--pixel-divisor", "255", "--out", str(tmp_path / "refused.pt")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "(MultiThreshold)" in err, err
    assert "gives -1 at every pixel 0..255 (the model's input being pixel / 255)" in err, err
    assert "with --pixel-divisor 1 (the graph declares its input UINT8, the raw pixel) it imports exactly" in err
    assert not (tmp_path / "refused.pt").exists()


def test_without_the_annotation_the_divisor_is_255(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _save(notebook_lfc(), tmp_path / "lfc.onnx", 11)
    assert main(["import", str(path), "--out", str(tmp_path / "lfc.pt")]) == 0
    assert "model input = pixel / 255 (pixel / 255, as torchvision's ToTensor)" in capsys.readouterr().out
    origin = load(tmp_path / "lfc.pt").training["imported_from"]
    assert (origin["pixel_divisor"], origin["pixel_divisor_from"]) == (255.0, "default")


def test_a_refusal_under_the_chosen_divisor_says_why_it_was_chosen(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A graph annotated UINT8 whose 1-bit input splits at model input 0.5 (pixel 128 of pixel / 255, pixel 1 of
    the raw pixel), read straight by the output layer: under the divisor 1 it needs an input table, which the
    output layer cannot read; the line says where the divisor came from, and that 255 (checked) imports."""
    g = Graph([1, 1, 28, 28], seed=18)
    g.node("Flatten", axis=1).node("MultiThreshold", g.const(np.full((1, 1), 0.5)), domain=QONNX,
                                   out_scale=2.0, out_bias=-1.0)
    path = _save(g.node("MatMul", _signs(g, (784, 10))), tmp_path / "u8.onnx", 13, uint8_input=True)
    assert main(["import", str(path), "--out", str(tmp_path / "u8.pt")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "the output layer reads the quantised input itself" in err, err
    assert ("the pixel divisor 1 was chosen because the graph declares its input UINT8: it takes the raw pixel "
            "(with --pixel-divisor 255 it imports)") in err, err
    assert not (tmp_path / "u8.pt").exists()
    assert main(["import", str(path), "--pixel-divisor", "255", "--out", str(tmp_path / "u8.pt")]) == 0
    assert load(tmp_path / "u8.pt").architecture["input"]["planes"] == [7]  # bit plane 7, no table


def test_a_refusal_that_no_divisor_changes_says_nothing_of_the_divisor(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    g = Graph([1, 1, 28, 28], seed=19)
    g.node("Flatten", axis=1).node("Mul", g.const(2.0)).node("Sub", g.const(1.0)).node("Sign")
    g.node("MatMul", g.const(g.rng.uniform(-1, 1, (784, 10))))  # float weights
    path = _save(g, tmp_path / "float.onnx", 13, uint8_input=True)
    assert main(["import", str(path), "--out", str(tmp_path / "f.pt")]) == 2
    err = capsys.readouterr().err
    assert "the weights are not binary" in err and "divisor" not in err, err


def test_finns_notebook_lfc_with_unsqueeze_in_the_chain(tmp_path: Path) -> None:
    check_equal_to_qonnx(_save(notebook_lfc(), tmp_path / "lfc.onnx", 11, inputs_listed=True), tmp_path)


def test_an_input_that_switches_downward_at_128_is_bit_plane_7_complemented(tmp_path: Path) -> None:
    check_equal_to_qonnx(_save(notebook_lfc(inverted=True), tmp_path / "lfc.onnx", 11), tmp_path)


def test_a_constant_that_broadcasts_across_an_unsqueeze_is_refused(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """(N, C, 1) times a (1, C) constant is (N, C, C) in ONNX: not elementwise on the layer's channels."""
    g = Graph([1, 1, 28, 28], seed=14)
    g.node("Reshape", _int64(g, [1, -1])).node("Mul", g.const(2.0)).node("Sub", g.const(1.0)).node("Sign")
    g.node("MatMul", _signs(g, (784, 16))).node("Unsqueeze", _int64(g, [2]))
    g.node("Mul", g.const(np.ones((1, 16)))).node("Sign").node("MatMul", _signs(g, (16, 10)))
    assert main(["import", str(g.save(tmp_path / "bad.onnx")), "--out", str(tmp_path / "bad.pt")]) == 2
    err = capsys.readouterr().err
    assert "(Mul): a constant of shape [1, 16] against the activation's [1, 16, 1] gives [1, 16, 16]" in err, err


def _split_at(threshold: float) -> Graph:
    g = Graph([1, 1, 28, 28], seed=15)
    g.node("Flatten", axis=1).node("MultiThreshold", g.const(np.full((1, 1), threshold)), domain=QONNX,
                                   out_scale=2.0, out_bias=-1.0)
    g.node("MatMul", _signs(g, (784, 64))).node("Add", g.const(0.5)).node("Sign")
    return g.node("MatMul", _signs(g, (64, 10)))


def test_an_input_split_elsewhere_imports_through_an_input_table(tmp_path: Path) -> None:
    """pixel / 255 - 0.3 switches between pixels 76 and 77: the code [pixel >= 77], the first layer over its
    one plane; with --pixel-divisor 425 the switch is at 128 and the input is bit plane 7, without a table."""
    path = _save(_split_at(0.3), tmp_path / "split.onnx", 13)
    check_equal_to_qonnx(path, tmp_path, planes=[0], table=[int(p >= 77) for p in range(256)])
    check_equal_to_qonnx(path, tmp_path, "--pixel-divisor", "425", divisor=425.0)



def test_bnn_pynqs_q17_input_imports_through_an_input_table(tmp_path: Path) -> None:
    """BNN-PYNQ's CNV input (2x - 1 at Q1.7): 127 -> -1/128 and 128 -> +1/128, skipping 0; 254 and 255 -> 127/128.
    Not the pixel's bits, but levels on one grid (-1 + code / 128): the input table holds the codes."""
    g = Graph([1, 1, 28, 28], seed=16)
    g.node("Mul", g.const(2.0)).node("Sub", g.const(1.0))
    g.node("Quant", g.const(np.float32(1 / 128)), g.const(np.float32(0)), g.const(np.float32(8)), domain=QONNX,
           signed=1, narrow=0, rounding_mode="ROUND")
    g.node("Flatten", axis=1).node("MatMul", _signs(g, (784, 64))).node("Add", g.const(1 / 256)).node("Sign")
    g.node("MatMul", _signs(g, (64, 10)))
    path = _save(g, tmp_path / "q17.onnx", 13)
    check_equal_to_qonnx(path, tmp_path, planes=list(range(8)), table=q17_codes())


def test_an_input_off_any_grid_names_the_pixels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two thresholds whose levels are 0, 1 and 1 + 1/1000003: no grid of at most 256 codes holds them."""
    g = Graph([1, 1, 28, 28], seed=17)
    g.node("Flatten", axis=1).node("MultiThreshold", g.const(np.float32([[0.2, 0.6]])), domain=QONNX)
    g.node("Mul", g.const(np.float32(1.0)))
    g.node("MatMul", _signs(g, (784, 64))).node("Add", g.const(0.5)).node("Sign")
    g.node("MatMul", _signs(g, (64, 10)))
    path = _save(g, tmp_path / "grid.onnx", 13)
    from bnn2fpga.interop import qonnx_import

    q = np.float64([0.0] * 100 + [1.0] * 100 + [1.0 + 1 / 1000003] * 56)
    assert qonnx_import.code_table(q) is None
    assert qonnx_import.code_table(np.float64([0.0] * 128 + [1.0] * 128)) is not None
    assert main(["import", str(path), "--out", str(tmp_path / "g.pt")]) == 0  # 0, 1, 2 is a grid: imports


def test_the_graph_input_annotation_is_read(tmp_path: Path) -> None:
    from bnn2fpga.interop.onnx_graph import read_chain

    path = _save(finn_streamlined_tfc(), tmp_path / "finn.onnx", 13, uint8_input=True)
    assert read_chain(path).input_datatype == "UINT8"
    assert read_chain(_save(notebook_lfc(), tmp_path / "lfc.onnx", 11)).input_datatype is None



def test_finns_debug_markers_pass_through(tmp_path: Path) -> None:
    """FINN's test_brevitas_debug.onnx: Brevitas's debug export puts a DebugMarker (a copy) after each layer."""
    g = Graph([1, 1, 28, 28], seed=20)
    g.node("Reshape", _int64(g, [1, -1])).node("Mul", g.const(2.0)).node("Sub", g.const(np.float32([1.0])))
    g.node("Sign").node("DebugMarker", domain=QONNX, export_debug_name="input_quant")
    fan_in = 784
    for out in (32, 24):
        g.node("MatMul", _signs(g, (fan_in, out))).node("DebugMarker", domain=QONNX, export_debug_name=f"fc{out}")
        g.batchnorm(out, fan_in**0.5 / 3).node("Sign")
        fan_in = out
    g.node("MatMul", _signs(g, (fan_in, 10))).node("DebugMarker", domain=QONNX, export_debug_name="out")
    check_equal_to_qonnx(_save(g, tmp_path / "debug.onnx", 13), tmp_path)


@pytest.mark.parametrize("op, domain", [("StreamingFCLayer_Batch", "finn"),
                                        ("MVAU_hls", "finn.custom_op.fpgadataflow.hls"),
                                        ("StreamingFIFO_rtl", "finn.custom_op.fpgadataflow.rtl"),
                                        ("SomeFutureLayer", "finn.custom_op.fpgadataflow")])
def test_finns_hardware_layers_are_refused_as_such(tmp_path: Path, capsys: pytest.CaptureFixture[str], op: str,
                                                   domain: str) -> None:
    """FINN's graphs after convert_to_hls_layers / to_hw (FCLayer_graph.onnx, finn-hls-onnx-model.onnx, the
    cybsec notebook's) are FINN's dataflow, not a network: one line that says so and what to import instead."""
    g = Graph([1, 1, 28, 28], seed=21)
    g.node("Flatten", axis=1).node(op, g.const(np.ones((784, 10))), domain=domain, MW=784, MH=10)
    path = g.save(tmp_path / "hw.onnx")
    assert main(["import", str(path), "--out", str(tmp_path / "hw.pt")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert f"node '{op}_" in err and f"({op}) is one of FINN's hardware layers (1 of the graph's 2 nodes" in err, err
    assert "import the graph FINN started from" in err, err
    assert not (tmp_path / "hw.pt").exists()
