"""Bit-plane sensitivity analysis and the ``bnn2fpga sensitivity`` command on synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bnn2fpga import data
from bnn2fpga.checkpoint import load
from bnn2fpga.cli import main
from bnn2fpga.prune.planes import remove_planes
from bnn2fpga.prune.sensitivity import analyse, compact, noisy_accuracies, planes_within

TINY = ["train", "--model", "tfc", "--dataset", "synthetic", "--epochs", "3", "--batch-size", "25",
        "--widths", "32,16,8", "--quiet"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sens") / "tiny.pt"
    assert main([*TINY, "--out", str(out)]) == 0
    return out


def test_analysis_structure_and_determinism(tiny: Path) -> None:
    model = load(tiny).model()
    split = data.synthetic().test.head(200)
    result = analyse(model, split, draws=3, seed=1)
    assert result["planes"] == list(range(8)) and result["images"] == 200 and result["draws"] == 3
    assert [r["bit"] for r in result["single"]] == list(range(8))
    assert [r["removed"] for r in result["cumulative"]] == [list(range(j)) for j in range(1, 9)]
    assert result["cumulative"][-1]["kept"] == []
    for row in result["single"] + result["cumulative"]:
        assert len(row["accuracies"]) == 3
        assert row["drop_pp"] == pytest.approx(100 * (result["baseline"] - row["mean"]))
    # Every plane random: no information left, about chance (10 classes).
    assert result["cumulative"][-1]["mean"] < 0.3
    # The synthetic classes live in bit 7 (a +140 band): randomising it hurts most.
    drops = [r["drop_pp"] for r in result["single"]]
    assert max(drops) == drops[7] > 20
    assert analyse(model, split, draws=3, seed=1) == result
    assert "accuracies" not in compact(result)["single"][0]


def test_a_removed_plane_has_no_sensitivity(tiny: Path) -> None:
    """Once a plane is gone from the input, randomising that bit changes nothing."""
    child = remove_planes(load(tiny).model(), [5, 6, 7])
    split = data.synthetic().test.head(100)
    base = noisy_accuracies(child, split, [], draws=1, seed=0)[0]
    assert noisy_accuracies(child, split, [0, 1, 2, 3, 4], draws=4, seed=0) == [base] * 4


def test_planes_within() -> None:
    result = {"planes": [4, 5, 6, 7], "cumulative": [
        {"removed": [4], "kept": [5, 6, 7], "drop_pp": 0.2},
        {"removed": [4, 5], "kept": [6, 7], "drop_pp": 0.9},
        {"removed": [4, 5, 6], "kept": [7], "drop_pp": 12.0},
        {"removed": [4, 5, 6, 7], "kept": [], "drop_pp": 80.0}]}
    assert planes_within(result, 1.0) == [6, 7]
    assert planes_within(result, 0.1) == [4, 5, 6, 7]
    assert planes_within(result, 100.0) == [7]  # at least one plane stays


def test_cli_writes_table_json_and_plot(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    js, png = tmp_path / "s.json", tmp_path / "s.png"
    assert main(["sensitivity", str(tiny), "--dataset", "synthetic", "--draws", "2", "--limit", "100",
                 "--json", str(js), "--plot", str(png), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "bit-plane sensitivity" in out and "baseline" in out
    result = json.loads(js.read_text())
    assert result["images"] == 100 and len(result["single"]) == 8 and result["dataset"] == "synthetic"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_json_to_stdout(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sensitivity", str(tiny), "--dataset", "synthetic", "--draws", "1", "--limit", "50",
                 "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["draws"] == 1


def test_cli_errors(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sensitivity", str(tiny), "--dataset", "synthetic", "--draws", "0"]) == 2
    assert "--draws: must be a positive integer, not '0'" in capsys.readouterr().err
    (tmp_path / "cifar-10-batches-py").mkdir()
    assert main(["sensitivity", str(tiny), "--dataset", "cifar10", "--data", str(tmp_path)]) == 2
    assert "CIFAR-10 not found" in capsys.readouterr().err
    assert main(["sensitivity", str(tmp_path / "none.pt"), "--dataset", "synthetic"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_constant_replacement_is_plane_removal(tiny: Path) -> None:
    """--replace 0 measures exactly the network with those planes removed (before retraining)."""
    parent = load(tiny).model()
    split = data.synthetic().test.head(200)
    result = analyse(parent, split, replace="0", draws=5)
    assert result["draws"] == 1 and all(len(r["accuracies"]) == 1 for r in result["cumulative"])
    for row in result["cumulative"][:-1]:
        child = remove_planes(parent, row["kept"], 0)
        assert noisy_accuracies(child, split, [], draws=1, seed=0)[0] == row["mean"]
    with pytest.raises(ValueError, match="replace must be 'random', '0' or '1', not 'x'"):
        noisy_accuracies(parent, split, [0], draws=1, seed=0, replace="x")
