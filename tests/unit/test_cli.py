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


def test_train_resume_equals_a_straight_run(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from bnn2fpga import data
    from bnn2fpga.nn.models import BNN, make_architecture
    from bnn2fpga.nn.train import TrainConfig, save_train_state, seed_everything, train

    # The state the CLI saves after epoch 1 of TINY's run, as if the session had ended there.
    arch = make_architecture("tfc", planes=[5, 6, 7], widths=[32, 16, 8])
    config = TrainConfig(epochs=3, batch_size=25, lr=0.03, seed=0)
    ds = data.load("synthetic")
    seed_everything(0)
    states: list[dict] = []
    train(BNN(arch), ds.train, config, show_progress=False, on_state=states.append)
    out = tmp_path / "resumed.pt"
    partial = out.with_name(out.name + ".partial")
    run = {"architecture": arch, "config": config.to_dict(), "dataset": ds.name, "limit": None, "device": "cpu"}
    save_train_state(partial, run, states[0])

    assert main([*TINY, "--out", str(out)]) == 2  # an interrupted run is never silently restarted
    assert "pass --resume to continue it" in capsys.readouterr().err
    assert main([*TINY, "--out", str(out), "--resume"]) == 0
    assert "resuming after epoch 1 of 3" in capsys.readouterr().out
    a = torch.load(trained, weights_only=True)["state_dict"]
    b = torch.load(out, weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a) and not partial.exists()
