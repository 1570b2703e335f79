"""The CLI end to end on synthetic data: train -> info -> eval, and its error answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bnn2fpga.cli import main

TINY = ["train", "--model", "tfc", "--dataset", "synthetic", "--epochs", "3", "--batch-size", "25",
        "--widths", "32,16,8", "--planes", "5,6,7", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "tiny.pt"
    assert main([*TINY, "--out", str(out)]) == 0
    return out


def test_train_learns_synthetic_data(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(trained), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["input"]["planes"] == [5, 6, 7]
    assert [row["out"][2] for row in info["layers"]] == [32, 16, 8, 10]
    assert info["binops"] == 784 * 3 * 32 + 32 * 16 + 16 * 8 + 8 * 10
    assert info["metrics"]["test_accuracy"] > 0.6  # chance is 0.1


def test_eval_agrees_with_reference(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(trained), "--dataset", "synthetic", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["agree"] and report["images"] == 500
    assert report["torch_accuracy"] == report["reference_accuracy"] > 0.6


def test_train_is_deterministic(trained: Path, tmp_path: Path) -> None:
    import torch
    again = tmp_path / "again.pt"
    assert main([*TINY, "--out", str(again)]) == 0
    a = torch.load(trained, weights_only=True)["state_dict"]
    b = torch.load(again, weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_train_refuses_to_overwrite(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = trained.read_bytes()
    assert main(["train", "--dataset", "synthetic", "--epochs", "1", "--out", str(trained), "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert trained.read_bytes() == before


def test_eval_wrong_dataset_shape(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(trained), "--dataset", "cifar10", "--data", str(tmp_path)]) == 2
    assert "CIFAR-10 not found" in capsys.readouterr().err


def test_bad_planes_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--dataset", "synthetic", "--planes", "9", "--out", str(tmp_path / "x.pt")]) == 2
    assert "--planes takes bit positions 0..7" in capsys.readouterr().err


def test_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "/nonexistent/model.pt"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_doctor_reports_every_tool(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for tool in ("PyTorch", "Amaranth", "Verilator", "cocotb", "cocotbext-axi", "Yosys", "Fashion-MNIST"):
        assert tool in out


class _Interrupted(Exception):
    pass


@pytest.mark.parametrize("extra", [[], ["--track-flips", "2", "--flip-checks", "iteration"]], ids=["plain", "flips"])
def test_train_resume_equals_a_straight_run(extra: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from bnn2fpga.nn import train as training

    straight = tmp_path / "straight.pt"
    assert main([*TINY, *extra, "--out", str(straight)]) == 0
    # The same run, ended after its first epoch's state is saved, as if the session had ended there.
    save = training.save_train_state

    def save_then_stop(*args: object) -> None:
        save(*args)  # type: ignore[arg-type]
        raise _Interrupted

    out = tmp_path / "resumed.pt"
    monkeypatch.setattr(training, "save_train_state", save_then_stop)
    with pytest.raises(_Interrupted):
        main([*TINY, *extra, "--out", str(out)])
    monkeypatch.setattr(training, "save_train_state", save)
    partial = out.with_name(out.name + ".partial")
    assert partial.exists() and not out.exists()

    assert main([*TINY, *extra, "--out", str(out)]) == 2  # an interrupted run is never silently restarted
    assert "pass --resume to continue it" in capsys.readouterr().err
    assert main([*TINY, "--out", str(out), "--resume"]) == (0 if not extra else 2)  # other arguments: refused
    if extra:
        assert "another track_flips" in capsys.readouterr().err
        assert main([*TINY, *extra, "--out", str(out), "--resume"]) == 0
    assert "resuming after epoch 1 of 3" in capsys.readouterr().out
    a = torch.load(straight, weights_only=True)
    b = torch.load(out, weights_only=True)
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"]) and not partial.exists()
    if extra:  # the flips counted across the interruption equal the straight run's, weight for weight
        fa, fb = a["training"]["flips"], b["training"]["flips"]
        assert fa["flip_checks"] == fb["flip_checks"] == 2 * 80  # 2000 images / 25 per step, last 2 epochs
        assert all(torch.equal(x, y) for x, y in zip(fa["flip_counts"], fb["flip_counts"], strict=True))
        assert sum(int(c.count_nonzero()) for c in fa["flip_counts"]) > 0


def test_train_flip_options_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "x.pt")
    assert main([*TINY, "--track-flips", "4", "--out", out]) == 2
    assert "must lie in (0, 3]" in capsys.readouterr().err
    assert main([*TINY, "--track-flips", "0.5", "--out", out]) == 2
    assert "--flip-checks iteration" in capsys.readouterr().err
    assert main([*TINY, "--holdout", "-1", "--out", out]) == 2
    assert "--holdout: must be an integer >= 0, not '-1'" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "--widths", "2,x"], "--widths takes comma-separated channel counts"),
    (["train", "--widths", "0,5,5"], "--widths: every layer needs at least one channel"),
    (["train", "--epochs", "0"], "--epochs: must be a positive integer, not '0'"),
    (["train", "--batch-size", "-4"], "--batch-size: must be a positive integer, not '-4'"),
    (["train", "--lr", "0"], "--lr: must be a finite number in (0, 10], not '0'"),
    (["train", "--width-multiplier", "-1"], "--width-multiplier: must be a finite number in (0, 16]"),
    (["build", "examples/tfc-fmnist.pt", "--margin", "7"], "--margin: must be a finite number in (0, 1], not '7'"),
    (["build", "examples/tfc-fmnist.pt", "--target-fps", "-3"],
     "--target-fps: must be a positive frame rate or 'max', not '-3'"),
    (["build", "examples/cnv-fmnist.pt", "--target-fps", "2000000"], "the fastest folding of this network takes"),
    (["sim", "build/anything", "--images", "-5"], "--images: must be a positive integer, not '-5'"),
])
def test_bad_numbers_are_one_clear_error(argv: list[str], message: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from tests.conftest import ROOT

    argv = [str(ROOT / a) if a.startswith("examples/") else a for a in argv]
    out = tmp_path / "out.pt"
    if argv[0] == "train":
        argv = [*argv, "--dataset", "synthetic", "--out", str(out)]
    else:
        argv = [*argv, "--out", str(tmp_path / "b")] if argv[0] == "build" else argv
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and "Traceback" not in err and len(err.splitlines()) <= 2
    assert not out.exists() and not (tmp_path / "b").exists()


def test_eval_defaults_to_the_dataset_of_the_checkpoint(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(trained), "--json"]) == 0  # trained on synthetic data: no --dataset needed
    assert json.loads(capsys.readouterr().out)["images"] == 500
