"""The hostile-but-realistic inputs a review found (issue: 62 of 236 ended in a traceback, a wrong accept
or lost data), as classes: bad output paths, bad numbers, conflicting options, markup in text, tampered
and concurrent build folders. Each case: exit 2, one ``error:`` line, no traceback, and every file that
existed in the workspace before is byte-identical after (nothing a user made is overwritten or lost).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bnn2fpga.cli import main
from tests.conftest import ROOT, random_checkpoint

TFC = str(ROOT / "examples" / "tfc-fmnist.pt")
SYN = ["--dataset", "synthetic"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's folder: a checkpoint, a build of it, notes, a model file, a folder."""
    d = tmp_path_factory.mktemp("hostile")
    random_checkpoint("tfc", widths=[19, 11, 5], planes=[5, 7], dataset="fashion-mnist").save(d / "tiny.pt")
    assert main(["build", str(d / "tiny.pt"), "--out", str(d / "build"), "--no-synth", "--quiet"]) == 0
    (d / "notes.txt").write_text("precious\n")
    (d / "existing.pt").write_bytes((d / "tiny.pt").read_bytes())
    (d / "folder").mkdir()
    (d / "model.onnx").write_bytes(b"\x08\x07onnx-ish")
    (d / "random.bin").write_bytes(bytes(range(256)) * 64)
    (d / "file").write_text("a file where a folder is wanted\n")
    (d / "fold-number.json").write_text('{"layers": {"dense0": 3}}')
    (d / "cmp").mkdir()
    (d / "cmp" / "report.md").write_text("an earlier comparison\n")
    _onnx_without_data(d / "no-data.onnx")
    (d / "fold-true.json").write_text('{"pixels_per_beat": true, "layers": {}}')
    (d / "fold-pe-true.json").write_text('{"layers": {"dense0": {"pe": true, "simd": 4}}}')
    _tampered_checkpoints(d)
    return d


def _tampered_checkpoints(d: Path) -> None:
    """Checkpoints that pass the format check but hold nonsense, and one that unpacks to over 1 GiB."""
    import copy
    import zipfile

    import torch

    conv = random_checkpoint("cnv", dataset="fashion-mnist", width_multiplier=0.125)
    dense = random_checkpoint("tfc", widths=[19, 11, 5], planes=[5, 7], dataset="fashion-mnist")

    def tampered(name: str, ckpt: object, change: object) -> None:
        raw = copy.deepcopy(torch.load(_saved(ckpt, d / f"{name}.src"), weights_only=True))
        change(raw)  # type: ignore[operator]
        torch.save(raw, d / f"{name}.pt")
        (d / f"{name}.src").unlink()

    tampered("accuracy-text", dense, lambda r: r["metrics"].update(test_accuracy="high"))
    tampered("metric-tensor", dense, lambda r: r["metrics"].update(test_accuracy=torch.ones(3)))
    tampered("huge-layer", dense, lambda r: r["architecture"]["layers"][0].update(out=10**8))
    tampered("height-text", dense, lambda r: r["architecture"]["input"].update(height="28"))
    tampered("kernel-negative", conv, lambda r: r["architecture"]["layers"][0].update(kernel=-3))
    tampered("pool-zero", conv, lambda r: next(x for x in r["architecture"]["layers"] if x["kind"] == "pool")
             .update(size=0))
    with zipfile.ZipFile(d / "bomb.pt", "w", compression=zipfile.ZIP_DEFLATED) as z, \
            z.open("archive/data/0", "w", force_zip64=True) as f:
        for _ in range(65):  # 1.02 GiB of zeros in about 1 MB
            f.write(bytes(1 << 24))


def _onnx_without_data(path: Path) -> None:
    """A model whose initializer declares dimensions but carries no data."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((784, 10), np.float32), "w")
    weight.ClearField("raw_data")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 784])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], [weight])
    onnx.save(helper.make_model(graph), str(path))


def _saved(ckpt: object, path: Path) -> Path:
    ckpt.save(path)  # type: ignore[attr-defined]
    return path


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "sim_build" not in p.parts}


def _long_name() -> str:
    return "x" * 250 + ".pt"


# (argv with {ws} for the workspace, a fragment of the one error line)
CASES: list[tuple[str, list[str], str]] = [
    # output paths, checked before any work
    ("train to /proc", ["train", *SYN, "--epochs", "1", "--out", "/proc/x.pt"], "/proc"),
    ("train into a missing folder", ["train", *SYN, "--out", "{ws}/missing/x.pt"], "does not exist"),
    ("train over a file", ["train", *SYN, "--out", "{ws}/existing.pt"], "already exists"),
    ("train onto a folder", ["train", *SYN, "--out", "{ws}/folder", "--force"], "not a file"),
    ("train under a file", ["train", *SYN, "--out", "{ws}/file/x.pt"], "is a file, not a folder"),
    ("train, too long a name", ["train", *SYN, "--out", "{ws}/" + _long_name()], "too long"),
    ("export over a file", ["export", TFC, "--out", "{ws}/notes.txt"], "already exists"),
    ("export into a missing folder", ["export", TFC, "--out", "{ws}/missing/x.onnx"], "does not exist"),
    ("report into its own build", ["report", "{ws}/build", "--out", "{ws}/build"], "is a build folder"),
    ("sensitivity --json over a checkpoint", ["sensitivity", TFC, "--json", "{ws}/existing.pt"], "names a checkpoint"),
    ("sensitivity --json over a file", ["sensitivity", TFC, "--json", "{ws}/notes.txt"], "already exists"),
    ("report over an earlier comparison", ["report", "{ws}/build", "--out", "{ws}/cmp"], "already holds report.md"),
    ("prune --pareto-json over a file", ["prune", TFC, "--method", "bitslice", "--pareto-json", "{ws}/notes.txt",
                                         "--out", "{ws}/o.pt"], "already exists"),
    ("sensitivity --plot onto a folder", ["sensitivity", TFC, "--plot", "{ws}/folder"], "is a folder"),
    ("sensitivity --plot of another kind", ["sensitivity", TFC, "--plot", "{ws}/plot.jpg"], "give a .png"),
    ("build over the user's folder", ["build", "{ws}/tiny.pt", "--out", "{ws}/folder2", "--force"], None),
    # numbers
    ("seed past 64 bits", ["train", *SYN, "--seed", str(2**70), "--out", "{ws}/o.pt"], "--seed"),
    ("lr inf", ["train", *SYN, "--lr", "inf", "--out", "{ws}/o.pt"], "--lr"),
    ("lr nan", ["train", *SYN, "--lr", "nan", "--out", "{ws}/o.pt"], "--lr"),
    ("epochs zero", ["train", *SYN, "--epochs", "0", "--out", "{ws}/o.pt"], "--epochs"),
    ("batch size text", ["train", *SYN, "--batch-size", "ten", "--out", "{ws}/o.pt"], "--batch-size"),
    ("width multiplier zero", ["train", *SYN, "--width-multiplier", "0", "--out", "{ws}/o.pt"], "--width-multiplier"),
    ("finetune lr nan", ["prune", TFC, "--method", "flip", "--finetune-lr", "nan", "--out", "{ws}/o.pt"],
     "--finetune-lr"),
    ("track lr negative", ["prune", TFC, "--method", "flip", "--track-lr", "-1", "--out", "{ws}/o.pt"], "--track-lr"),
    ("plane drop negative", ["prune", TFC, "--method", "bitslice", "--plane-drop", "-5", "--out", "{ws}/o.pt"],
     "--plane-drop"),
    ("stall one", ["sim", "{ws}/build", "--stall", "1"], "--stall"),
    ("margin above one", ["build", TFC, "--margin", "1.5", "--out", "{ws}/o"], "--margin"),
    ("classes zero", ["import", "{ws}/folder", "--classes", "0", "--out", "{ws}/o.pt"], "--classes"),
    # foldings whose entries are not what they claim (true is not 1)
    ("a folding entry that is a number", ["build", "{ws}/tiny.pt", "--folding", "{ws}/fold-number.json",
                                          "--out", "{ws}/o"], 'expected {"pe": P, "simd": S}'),
    ("pixels per beat true", ["build", "{ws}/tiny.pt", "--folding", "{ws}/fold-true.json", "--out", "{ws}/o"],
     "not True"),
    ("pe true", ["build", "{ws}/tiny.pt", "--folding", "{ws}/fold-pe-true.json", "--out", "{ws}/o"], "not True"),
    # conflicting options
    ("folding and target fps", ["build", TFC, "--folding", "{ws}/build/folding.json", "--target-fps", "100",
                                "--out", "{ws}/o"], "give one of them"),
    ("topology with an ONNX file", ["import", "{ws}/model.onnx", "--topology", "lfc", "--out", "{ws}/o.pt"],
     "BNN-PYNQ folders only"),
    # text that looks like markup, and inputs that are not what they claim
    ("markup in --widths", ["train", *SYN, "--widths", "[/b]", "--out", "{ws}/o.pt"], "[/b]"),
    ("markup in a path", ["eval", "{ws}/model[v2].pt"], "model[v2].pt"),
    ("random bytes as a checkpoint", ["info", "{ws}/random.bin"], "neither a zip archive nor a pickle"),
    ("an ONNX tensor with dimensions but no data", ["import", "{ws}/no-data.onnx", "--out", "{ws}/o.pt"],
     "initializer 'w' (dims [784, 10]) cannot be read"),
    ("an ONNX model as a checkpoint", ["build", "{ws}/model.onnx", "--out", "{ws}/o"], "an ONNX model"),
    ("a checkpoint given to sim", ["sim", "{ws}/tiny.pt"], "tiny.pt"),
    # checkpoints that pass the format check but hold nonsense
    ("accuracy as text", ["info", "{ws}/accuracy-text.pt"], "metrics.test_accuracy"),
    ("a tensor in metrics", ["info", "{ws}/metric-tensor.pt"], "metrics.test_accuracy"),
    ("a layer of 10^8 channels", ["eval", "{ws}/huge-layer.pt"], "width must be an integer in 1..65,536"),
    ("a height as text", ["info", "{ws}/height-text.pt"], "height"),
    ("a kernel of -3", ["info", "{ws}/kernel-negative.pt"], "kernel"),
    ("a pool of 0", ["build", "{ws}/pool-zero.pt", "--out", "{ws}/o"], "size"),
    ("a file that unpacks to 1 GiB", ["info", "{ws}/bomb.pt"], "unpacks to"),
    ("a dataset of the wrong shape", ["sim", "{ws}/build", "--dataset", "fashion-mnist-32rgb", "--images", "2"],
     "32"),
]


@pytest.mark.parametrize(("argv", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_input_is_one_clean_error_and_changes_nothing(argv: list[str], fragment: str | None,
                                                              workspace: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    if "{ws}/folder2" in argv:  # a folder of the user's that holds a build and a note of theirs
        shutil.rmtree(workspace / "folder2", ignore_errors=True)
        shutil.copytree(workspace / "build", workspace / "folder2")
        (workspace / "folder2" / "notes.txt").write_text("mine\n")
        fragment = "holds files bnn2fpga did not write (notes.txt)"
    before = _snapshot(workspace)
    code = main([a.replace("{ws}", str(workspace)) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, f"exit {code}: {err}"
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    assert fragment is not None and fragment.lower() in err.lower(), err
    assert _snapshot(workspace) == before  # nothing made before was changed, and nothing left behind
    assert not any(p.name.endswith((".partial", ".tmp")) for p in workspace.iterdir())


NUMERIC = [  # (command, option) with a command that then stops at once on a missing input
    (["train", "--out", "/nonexistent/dir/x.pt"], opt) for opt in
    ("--epochs", "--batch-size", "--lr", "--seed", "--width-multiplier", "--track-flips", "--holdout", "--limit")
] + [
    (["sim", "/nonexistent-build"], opt) for opt in ("--images", "--stall", "--seed")
] + [
    (["build", "/nonexistent.pt"], opt) for opt in ("--margin",)
] + [
    (["prune", "/nonexistent.pt", "--method", "flip", "--out", "/nonexistent/x.pt"], opt) for opt in
    ("--tau", "--interval", "--binop-target", "--rounds", "--finetune-lr", "--track-lr", "--accuracy-budget",
     "--min-keep", "--max-drop", "--plane-drop", "--holdout", "--sensitivity-draws", "--seed")
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=st.sampled_from(NUMERIC),
       value=st.one_of(st.integers(-2**80, 2**80).map(str), st.floats(allow_nan=True, allow_infinity=True).map(str),
                       st.text(max_size=12), st.sampled_from(["1e999", "-0", "0x10", "1_000", " 3", "nan", "-inf"])))
def test_any_value_of_any_numeric_option_is_accepted_or_one_clean_error(case: tuple[list[str], str], value: str,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    command, option = case
    code = main([*command, f"{option}={value}"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    # accepted values reach the missing input and fail on it; refused ones fail on the option: one line either way
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, (value, err)
