"""`bnn2fpga export` to QONNX: qonnx's executor gives the reference's scores, and import(export(m)) is m."""

from __future__ import annotations

import copy
import filecmp
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from qonnx.core import onnx_exec
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.util.cleanup import cleanup_model

from bnn2fpga import data
from bnn2fpga.checkpoint import Checkpoint, load
from bnn2fpga.cli import main
from bnn2fpga.ir.pipeline import HARDWARE_STEPS, lower
from bnn2fpga.nn.models import BNN, make_architecture
from bnn2fpga.reference import Result, run
from tests.conftest import ROOT, q17_codes


def qonnx_scores(path: Path, pixels: np.ndarray) -> np.ndarray:
    proto = onnx.load(str(path))
    proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value = len(pixels)
    model = cleanup_model(ModelWrapper(proto))  # qonnx executes graphs whose shapes are all known
    x = pixels.astype(np.float32) / 255.0
    return np.asarray(onnx_exec.execute_onnx(model, {model.graph.input[0].name: x})[model.graph.output[0].name])


def export_and_score(ckpt: Checkpoint, tmp_path: Path, *, real: int, random: int) -> tuple[np.ndarray, Result]:
    """Export ``ckpt`` to ``tmp_path/m.onnx`` and run qonnx on ``real`` Fashion-MNIST test images and ``random``
    random ones: its scores must be the reference's float table at the reference's popcounts, bit for bit.
    Returns (qonnx's scores, the reference's result)."""
    ckpt.save(tmp_path / "m.pt")
    assert main(["export", str(tmp_path / "m.pt"), "--out", str(tmp_path / "m.onnx")]) == 0
    pixels = np.concatenate([data.load("fashion-mnist").test.images[:real],
                             np.random.default_rng(1).integers(0, 256, (random, 1, 28, 28), dtype=np.uint8)])
    graph = lower(ckpt)
    ref = run(graph, pixels)
    table = np.asarray(graph.output.logit_table)
    scores = qonnx_scores(tmp_path / "m.onnx", pixels)
    assert np.array_equal(scores, table[np.arange(table.shape[0])[None, :], ref.popcounts])
    return scores, ref


def random_checkpoint(arch: dict, seed: int) -> Checkpoint:
    torch.manual_seed(seed)
    model = BNN(arch)
    model.eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                c = m.num_features
                m.weight.copy_(torch.where(torch.rand(c) < 0.3, -1.0, 1.0) * (0.2 + torch.rand(c)))
                m.running_mean.copy_(torch.randn(c) * 3)
                m.running_var.copy_(0.5 + torch.rand(c))
                m.bias.copy_(torch.randn(c) * 0.2)
    return Checkpoint.from_model(model, dataset="fashion-mnist", metrics={"test_accuracy": None})


def _same_integer_network(a: Checkpoint, b: Checkpoint) -> None:
    assert a.architecture == b.architecture
    for x, y in zip(lower(a, HARDWARE_STEPS).layers, lower(b, HARDWARE_STEPS).layers, strict=True):
        for attr in ("weights", "thresholds", "logit_table"):
            u, v = getattr(x, attr, None), getattr(y, attr, None)
            assert (u is None and v is None) or np.array_equal(u, v), f"{x.name}.{attr}"


ARCHITECTURES = {
    "dense-all-planes": make_architecture("tfc", width_multiplier=0.5),
    "dense-msb": make_architecture("tfc", planes=[7], width_multiplier=0.5),
    "dense-two-planes": make_architecture("tfc", planes=[5, 7], width_multiplier=0.5),
    "conv-padded-pool": make_architecture("cnv", planes=[6, 7], width_multiplier=0.125),
    "conv-integer": make_architecture("cnv", encoding="integer", width_multiplier=0.125),
    "conv-integer-sliced": make_architecture("cnv", encoding="integer", planes=[3, 4, 5, 6, 7],
                                             width_multiplier=0.125),
    "dense-integer-sliced": make_architecture("tfc", encoding="integer", planes=[2, 5, 6, 7], width_multiplier=0.5),
}


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_export_runs_in_qonnx_and_imports_back(name: str, tmp_path: Path) -> None:
    ckpt = random_checkpoint(ARCHITECTURES[name], seed=len(name))
    scores, ref = export_and_score(ckpt, tmp_path, real=150, random=50)
    assert np.array_equal(scores.argmax(1), ref.predictions)
    assert main(["import", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "back.pt")]) == 0
    _same_integer_network(ckpt, load(tmp_path / "back.pt"))



@pytest.mark.parametrize("name", ["conv-integer", "dense-integer-sliced", "dense-two-planes"])
def test_an_input_table_exports_as_a_multithreshold(name: str, tmp_path: Path) -> None:
    """The Q1.7 codes of BNN-PYNQ's CNV input, counted by a MultiThreshold on pixel / 255: qonnx's scores
    equal the reference's, and the network imports back, table and planes included: over all 8 planes,
    and over some of the codes' planes (the MultiThreshold, then the codes taken apart)."""
    arch = copy.deepcopy(ARCHITECTURES[name])
    arch["input"]["table"] = [q17_codes()]
    ckpt = random_checkpoint(arch, seed=3)
    export_and_score(ckpt, tmp_path, real=60, random=20)
    assert main(["import", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "back.pt")]) == 0
    back = load(tmp_path / "back.pt")
    assert back.architecture["input"]["table"] == [q17_codes()]
    assert back.architecture["input"]["planes"] == arch["input"]["planes"]
    _same_integer_network(ckpt, back)


def test_a_falling_input_table_is_refused_by_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arch = copy.deepcopy(ARCHITECTURES["conv-integer"])
    arch["input"]["table"] = [[255 - p for p in range(256)]]
    random_checkpoint(arch, seed=3).save(tmp_path / "m.pt")
    assert main(["export", str(tmp_path / "m.pt"), "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert "the input table's codes fall as the pixel rises (channel 0)" in err and "Traceback" not in err
    assert not (tmp_path / "m.onnx").exists()


def test_round_trip_builds_the_same_hardware(tmp_path: Path) -> None:
    example = ROOT / "examples" / "tfc-fmnist.pt"
    assert main(["export", str(example), "--out", str(tmp_path / "tfc.onnx")]) == 0
    assert main(["import", str(tmp_path / "tfc.onnx"), "--out", str(tmp_path / "tfc.pt")]) == 0
    for source, out in ((example, "a"), (tmp_path / "tfc.pt", "b")):
        assert main(["build", str(source), "--board", "pynq-z2", "--no-synth", "--quiet", "--target-fps", "100000",
                     "--out", str(tmp_path / out)]) == 0
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "b").iterdir())
    differ = [f for f in files if not filecmp.cmp(tmp_path / "a" / f, tmp_path / "b" / f, shallow=False)]
    assert set(differ) <= {"checkpoint.pt", "manifest.json", "report.md"}  # they name their checkpoint file
    assert not [f for f in files if f.endswith((".v", ".mem", ".tcl", ".json")) and f in differ and
                f != "manifest.json"]
    import json

    a, b = (json.loads((tmp_path / d / "manifest.json").read_text()) for d in "ab")
    a.pop("checkpoint"), b.pop("checkpoint")
    a["sha256"].pop("checkpoint.pt"), b["sha256"].pop("checkpoint.pt")  # the checkpoints' bytes differ, not the design
    assert a == b


def test_export_refuses_an_existing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.onnx"
    out.write_text("mine")
    assert main(["export", str(ROOT / "examples" / "tfc-fmnist.pt"), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_text() == "mine"


@pytest.mark.slow
@pytest.mark.parametrize("example", ["tfc-fmnist", "sfc-fmnist-bitslice", "cnv-fmnist", "nin-fmnist"])
def test_shipped_examples_agree_with_qonnx_on_the_whole_test_set(example: str, tmp_path: Path) -> None:
    ckpt_path = ROOT / "examples" / f"{example}.pt"
    assert main(["export", str(ckpt_path), "--out", str(tmp_path / "m.onnx")]) == 0
    pixels = data.load("fashion-mnist").test.images
    graph = lower(load(ckpt_path))
    for start in range(0, len(pixels), 2500):
        batch = pixels[start:start + 2500]
        ref = run(graph, batch)
        scores = qonnx_scores(tmp_path / "m.onnx", batch)
        assert np.array_equal(scores.argmax(1), ref.predictions), f"images {start}..{start + len(batch)}"
    assert main(["import", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "back.pt")]) == 0
    _same_integer_network(load(ckpt_path), load(tmp_path / "back.pt"))


def test_external_data_beside_the_model_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(ROOT / "examples" / "tfc-fmnist.pt"), "--out", str(tmp_path / "m.onnx")]) == 0
    model = onnx.load(str(tmp_path / "m.onnx"))
    onnx.save(model, str(tmp_path / "ext.onnx"), save_as_external_data=True, location="ext.data", size_threshold=0)
    assert main(["import", str(tmp_path / "ext.onnx"), "--out", str(tmp_path / "ext.pt")]) == 0
    _same_integer_network(load(ROOT / "examples" / "tfc-fmnist.pt"), load(tmp_path / "ext.pt"))
    evil = onnx.load(str(tmp_path / "ext.onnx"), load_external_data=False)
    for tensor in evil.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../outside.data"
    onnx.save(evil, str(tmp_path / "evil.onnx"))
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes((tmp_path / "m.onnx").read_bytes()[:3000])
    for bad, message in ((tmp_path / "evil.onnx", "outside the model's folder"),
                         (truncated, "not a readable ONNX model")):
        capsys.readouterr()
        assert main(["import", str(bad), "--out", str(tmp_path / "x.pt")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and message in err and "Traceback" not in err
        assert not (tmp_path / "x.pt").exists()
