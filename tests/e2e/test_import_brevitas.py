"""Networks made the way Brevitas users make them, trained briefly, exported to QONNX, imported, built, simulated.

- BNN-PYNQ's TFC topology (``brevitas_examples.bnn_pynq``'s ``FC``: 1-bit input after ``2x - 1``,
  binary weights and activations, TensorNorm at the end); torch's two ONNX exporters give the same
  checkpoint;
- a small CNV-style network of Brevitas layers with an 8-bit input quantiser whose scale is
  1/255 (the pixel itself), valid 3x3 convs, max-pools and a dense head;
- BNN-PYNQ's CNV as published (``2x - 1`` then a Q1.7 8-bit quantiser): not the pixel's bits, so it
  imports through an input table, and equals qonnx as the others do.

Every import must predict what qonnx's executor predicts on all 10,000 Fashion-MNIST test images,
and the built hardware must equal the reference in co-simulation.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from bnn2fpga import data
from bnn2fpga.checkpoint import load
from bnn2fpga.cli import main
from bnn2fpga.ir.pipeline import lower
from bnn2fpga.reference import run as reference_run
from tests.conftest import q17_codes

pytestmark = pytest.mark.slow
warnings.filterwarnings("ignore", message=".*fast_hadamard_transform.*")

BATCH = 1000  # the exported graphs have a fixed batch; qonnx runs the test set in chunks of this size


def _brevitas():
    import brevitas.nn as qnn
    from brevitas.inject.enum import ScalingImplType
    from brevitas.quant import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst, Uint8ActPerTensorFloat

    class PixelQuant(Uint8ActPerTensorFloat):  # unsigned 8 bit, scale 1/255: the pixel itself
        scaling_impl_type = ScalingImplType.CONST
        scaling_const = 1.0
        max_val = 1.0

    return qnn, PixelQuant, SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst


def tfc() -> torch.nn.Module:
    from brevitas_examples.bnn_pynq.models.FC import FC

    return FC(num_classes=10, weight_bit_width=1, act_bit_width=1, in_bit_width=1, in_channels=1,
              out_features=[64, 64, 64])


def small_cnv() -> torch.nn.Module:
    qnn, pixel, act, weight = _brevitas()

    def block(cin: int, cout: int) -> list[torch.nn.Module]:
        return [qnn.QuantConv2d(cin, cout, 3, bias=False, weight_quant=weight), torch.nn.BatchNorm2d(cout),
                qnn.QuantIdentity(act_quant=act)]

    return torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=pixel), *block(1, 16), *block(16, 16), torch.nn.MaxPool2d(2),
        *block(16, 32), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
        qnn.QuantLinear(32 * 5 * 5, 64, bias=False, weight_quant=weight), torch.nn.BatchNorm1d(64),
        qnn.QuantIdentity(act_quant=act), qnn.QuantLinear(64, 10, bias=False, weight_quant=weight),
        torch.nn.BatchNorm1d(10))


def train_briefly(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray) -> torch.nn.Module:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    x_all = torch.from_numpy(images).float() / 255.0
    y_all = torch.from_numpy(labels)
    for i in range(0, len(images), 100):
        loss = torch.nn.functional.cross_entropy(model(x_all[i:i + 100]), y_all[i:i + 100])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def export(model: torch.nn.Module, path: Path, dynamo: bool) -> Path:
    from brevitas.export import export_qonnx

    with torch.no_grad():
        export_qonnx(model, torch.rand(BATCH, 1, 28, 28), str(path), dynamo=dynamo)
    return path


def onnx_predictions(path: Path, pixels: np.ndarray) -> np.ndarray:
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.util.cleanup import cleanup_model

    model = cleanup_model(ModelWrapper(str(path)))
    name_in, name_out = model.graph.input[0].name, model.graph.output[0].name
    out = [np.asarray(execute_onnx(model, {name_in: pixels[i:i + BATCH].astype(np.float32) / 255.0})[name_out])
           for i in range(0, len(pixels), BATCH)]
    return np.concatenate(out).argmax(1)


@pytest.fixture(scope="module")
def fmnist() -> data.Dataset:
    return data.load("fashion-mnist")


def check(onnx_path: Path, ckpt: Path, fmnist: data.Dataset, build_dir: Path,
          capsys: pytest.CaptureFixture[str], build_args: tuple[str, ...] = ()) -> float:
    assert main(["import", str(onnx_path), "--out", str(ckpt)]) == 0
    test = fmnist.test
    ours = reference_run(lower(load(ckpt)), test.images).predictions
    theirs = onnx_predictions(onnx_path, test.images)
    assert (ours == theirs).all(), f"{int((ours != theirs).sum())} of 10,000 predictions differ from qonnx"
    accuracy = float((ours == test.labels).mean())
    assert accuracy > 0.5  # trained, not a degenerate network (chance is 0.1)
    capsys.readouterr()
    assert main(["build", str(ckpt), "--board", "pynq-z2", "--no-synth", *build_args, "--out", str(build_dir),
                 "--quiet"]) == 0
    assert main(["sim", str(build_dir), "--images", "12", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["bit_exact"] and summary["cycles_equal"] and summary["passed"]
    return accuracy


def test_bnn_pynq_tfc(fmnist: data.Dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.set_num_threads(1)
    model = train_briefly(tfc(), fmnist.train.images[:6000], fmnist.train.labels[:6000])
    path = export(model, tmp_path / "tfc.onnx", dynamo=False)
    # A modest frame rate keeps the design (and Verilator's compile) small: the fastest folding of a
    # dense net fills the chip.
    check(path, tmp_path / "tfc.pt", fmnist, tmp_path / "build", capsys, ("--target-fps", "20000"))
    arch = load(tmp_path / "tfc.pt").architecture
    assert arch["input"]["planes"] == [7] and [x["out"] for x in arch["layers"]] == [64, 64, 64, 10]
    # torch's other exporter (dynamo: Gemm, no Flatten, other names) gives the very same checkpoint.
    dynamo = export(model, tmp_path / "tfc_dynamo.onnx", dynamo=True)
    assert main(["import", str(dynamo), "--out", str(tmp_path / "tfc_dynamo.pt")]) == 0
    a, b = load(tmp_path / "tfc.pt").state_dict, load(tmp_path / "tfc_dynamo.pt").state_dict
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_brevitas_cnv_with_8bit_input(fmnist: data.Dataset, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    torch.set_num_threads(1)
    model = train_briefly(small_cnv(), fmnist.train.images[:6000], fmnist.train.labels[:6000])
    path = export(model, tmp_path / "cnv.onnx", dynamo=False)
    check(path, tmp_path / "cnv.pt", fmnist, tmp_path / "build", capsys)
    arch = load(tmp_path / "cnv.pt").architecture
    assert arch["input"]["encoding"] == "integer"
    assert [x["kind"] for x in arch["layers"]] == ["conv", "conv", "pool", "conv", "pool", "dense", "output"]


@pytest.mark.parametrize("topology", ["sfc", "lfc", "cnv-1bit-input", "cnv"])
def test_bnn_pynq_topologies_import_exactly(topology: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # BNN-PYNQ's SFC, LFC and CNV (its 8-bit input, 2x - 1 at Q1.7, read through an input table, and a 1-bit
    # input) as brevitas_examples builds them, trained briefly on Fashion-MNIST (a few dozen
    # steps: the function is checked, not the accuracy), exported as they are (fixed batch 1): qonnx and the
    # import agree image for image, and the hardware built from the import equals the reference in co-simulation.
    from brevitas.export import export_qonnx
    from brevitas_examples.bnn_pynq.models.CNV import CNV
    from brevitas_examples.bnn_pynq.models.FC import FC
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.util.cleanup import cleanup_model

    torch.manual_seed(0)
    if topology.startswith("cnv"):
        model = CNV(num_classes=10, weight_bit_width=1, act_bit_width=1, in_ch=3,
                    in_bit_width=1 if topology == "cnv-1bit-input" else 8)
        shape, dataset = (1, 3, 32, 32), "fashion-mnist-32rgb"
    else:
        width = 256 if topology == "sfc" else 1024
        model = FC(num_classes=10, weight_bit_width=1, act_bit_width=1, in_bit_width=1, in_channels=1,
                   out_features=[width] * 3)
        shape, dataset = (1, 1, 28, 28), "fashion-mnist"
    torch.set_num_threads(1)
    train = data.load(dataset).train
    steps = 10 if topology.startswith("cnv") else 30
    train_briefly(model, train.images[:100 * steps], train.labels[:100 * steps])
    path = tmp_path / f"{topology}.onnx"
    with torch.no_grad():
        export_qonnx(model.eval(), torch.rand(*shape), str(path), dynamo=False)
    assert main(["import", str(path), "--dataset", dataset, "--out", str(tmp_path / "m.pt")]) == 0
    inp = load(tmp_path / "m.pt").architecture["input"]
    if topology == "cnv":  # 2 pixel / 255 - 1 rounded to Q1.7, as codes (+128)
        assert inp["table"] == [q17_codes()] * 3 and inp["planes"] == list(range(8)) and inp["encoding"] == "integer"
    else:
        assert inp["planes"] == [7] and "table" not in inp
    pixels = np.concatenate([data.load(dataset).test.images[:40],
                             np.random.default_rng(0).integers(0, 256, (20, *shape[1:]), dtype=np.uint8)])
    graph = cleanup_model(ModelWrapper(str(path)))
    name_in, name_out = graph.graph.input[0].name, graph.graph.output[0].name
    theirs = [int(np.asarray(execute_onnx(graph, {name_in: p[None].astype(np.float32) / 255})[name_out]).argmax())
              for p in pixels]
    ours = reference_run(lower(load(tmp_path / "m.pt")), pixels).predictions
    assert ours.tolist() == theirs and len(set(theirs)) > 2
    if not topology.startswith("cnv"):
        assert (ours[:40] == data.load(dataset).test.labels[:40]).mean() > 0.3  # trained (chance is 0.1)
    capsys.readouterr()
    # Modest frame rates keep the designs, and Verilator's compile of them, small.
    fps = {"sfc": "20000", "lfc": "5000", "cnv-1bit-input": "1500", "cnv": "1500"}[topology]
    assert main(["build", str(tmp_path / "m.pt"), "--board", "pynq-z2", "--no-synth", "--target-fps", fps,
                 "--out", str(tmp_path / "build"), "--quiet"]) == 0
    assert main(["sim", str(tmp_path / "build"), "--images", "3", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["bit_exact"] and summary["cycles_equal"] and summary["passed"]
