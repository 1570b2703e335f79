"""``bnn2fpga prune --method bitslice``: the search logic, and the command on synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bnn2fpga import data
from bnn2fpga.checkpoint import load
from bnn2fpga.cli import main
from bnn2fpga.nn.models import hidden_widths, make_architecture, weight_bits
from bnn2fpga.nn.train import TrainConfig
from bnn2fpga.prune.bitslice import Candidate, Search, msb_planes, pareto, shrink

TINY = ["train", "--model", "tfc", "--dataset", "synthetic", "--epochs", "3", "--batch-size", "25",
        "--widths", "32,16,8", "--quiet"]
# On the test set (as the paper did) unless a test says otherwise: the default holdout retrains the base once more.
PRUNE = ["--method", "bitslice", "--dataset", "synthetic", "--bitslice-epochs", "2", "--sensitivity-draws", "1",
         "--quiet", "--select-on-test"]
DEFAULT_SPLIT = [a for a in PRUNE if a != "--select-on-test"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bitslice") / "tiny.pt"
    assert main([*TINY, "--out", str(out)]) == 0
    return out


def test_shrink_and_msb_planes() -> None:
    arch = make_architecture("sfc")
    small = shrink(arch, [6, 7], 0.375)
    assert small["input"]["planes"] == [6, 7] and hidden_widths(small) == [96, 96, 96]
    assert arch["input"]["planes"] == list(range(8))  # not mutated
    assert weight_bits(small) == 784 * 2 * 96 + 96 * 96 * 2 + 96 * 10
    assert msb_planes([1, 3, 5, 7], 2) == [5, 7]
    with pytest.raises(ValueError, match="can keep 1..4 of the planes"):
        msb_planes([1, 3, 5, 7], 5)


def test_pareto_marks() -> None:
    rows = pareto([{"weight_bits": 10, "accuracy": 0.9}, {"weight_bits": 5, "accuracy": 0.9},
                   {"weight_bits": 5, "accuracy": 0.8}, {"weight_bits": 2, "accuracy": 0.5}])
    assert [r["pareto"] for r in rows] == [False, True, False, True]


class FakeSearch(Search):
    """Search with a table of accuracies instead of training: checks which candidates get trained."""

    table: dict[tuple[int, float], float]

    def candidate(self, planes, multiplier):  # type: ignore[override]
        for c in self.trained:
            if c.planes == list(planes) and c.multiplier == multiplier:
                return c
        c = Candidate(list(planes), multiplier, shrink(self.base.arch, planes, multiplier),
                      accuracy=self.table[(len(planes), multiplier)])
        self.trained.append(c)
        return c


def _fake(table: dict[tuple[int, float], float], budget: float) -> FakeSearch:
    torch.manual_seed(0)
    from bnn2fpga.nn.models import BNN
    split = data.synthetic(10, 10).test
    s = FakeSearch(BNN(make_architecture("sfc")), split, split, None, TrainConfig(), budget)
    s.table = table
    return s


def test_budgeted_search_finds_the_smallest_fit() -> None:
    ms = [1.0, 0.75, 0.5, 0.375, 0.25]
    acc = {(k, m): min(0.9, 0.7 + 0.05 * k + 0.1 * m) for k in range(1, 9) for m in ms}
    s = _fake(acc, budget=0.89)
    s.budgeted(ms)
    best = s.best()
    assert best is not None
    fits = [(k, m) for (k, m), a in acc.items() if a >= 0.89]
    smallest = min(fits, key=lambda km: weight_bits(shrink(s.base.arch, msb_planes(range(8), km[0]), km[1])))
    assert (len(best.planes), best.multiplier) == smallest
    # It climbed k with the widest network, then never trained a candidate that could not be smaller.
    assert [(len(c.planes), c.multiplier) for c in s.trained][:2] == [(1, 1.0), (2, 1.0)]  # 2 planes fit
    assert len(s.trained) < len(acc) / 3


def test_budgeted_search_without_a_fit() -> None:
    s = _fake({(k, m): 0.1 for k in range(1, 9) for m in (1.0, 0.5)}, budget=0.5)
    s.budgeted([1.0, 0.5])
    assert s.best() is None and len(s.trained) == 8  # every k at the widest multiplier, nothing narrower


def test_cli_keep_bits(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, js, cands = tmp_path / "p.pt", tmp_path / "pareto.json", tmp_path / "cands"
    assert main(["prune", str(tiny), *PRUNE, "--keep-bits", "1,2", "--multipliers", "1,0.5", "--max-drop", "50",
                 "--out", str(out), "--pareto-json", str(js), "--save-candidates", str(cands)]) == 0
    assert "bit-slice pruning" in capsys.readouterr().out
    ck = load(out)
    rec = ck.pruning[-1]
    assert rec["method"] == "bitslice" and rec["planes_before"] == list(range(8))
    assert ck.architecture["input"]["planes"] == rec["planes_after"] == [7]  # the smallest one that fits
    assert rec["widths_before"] == [32, 16, 8] and rec["widths_after"] == [16, 8, 4]
    assert rec["weight_bits_after"] == weight_bits(ck.architecture) < rec["weight_bits_before"]
    assert [r["bit"] for r in rec["sensitivity"]["single"]] == list(range(8))
    rows = json.loads(js.read_text())["rows"]
    assert len(rows) == 5 and rows[0]["base"] and sum(r["chosen"] for r in rows) == 1
    assert sorted(p.name for p in cands.iterdir()) == ["k1-m0.5.pt", "k1-m1.pt", "k2-m0.5.pt", "k2-m1.pt"]
    # The pruned checkpoint is a normal one: the bit-exact reference agrees with PyTorch on it.
    assert main(["eval", str(out), "--dataset", "synthetic", "--limit", "100", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["agree"]


def test_cli_budget_search(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "b.pt"
    assert main(["prune", str(tiny), *PRUNE, "--multipliers", "1,0.25", "--out", str(out)]) == 0
    ck = load(out)
    base_acc = load(tiny).metrics["test_accuracy"]
    assert ck.metrics["test_accuracy"] >= base_acc - 0.01
    assert len(ck.architecture["input"]["planes"]) < 8


def test_cli_inherit(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "i.pt"
    assert main(["prune", str(tiny), *PRUNE, "--keep-bits", "2", "--multipliers", "1", "--max-drop", "100",
                 "--bitslice-init", "inherit", "--out", str(out)]) == 0
    assert load(out).pruning[-1]["init"] == "inherit"


def test_cli_errors(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "x.pt")
    assert main(["prune", str(tiny), *PRUNE, "--keep-bits", "9", "--out", out]) == 2
    assert "--keep-bits takes plane counts 1..8" in capsys.readouterr().err
    assert main(["prune", str(tiny), *PRUNE, "--multipliers", "1,0", "--out", out]) == 2
    assert "--multipliers takes multipliers in (0, 1]" in capsys.readouterr().err
    assert main(["prune", str(tiny), *PRUNE, "--keep-bits", "1", "--multipliers", "0.05", "--max-drop", "0",
                 "--out", out]) == 2
    assert "no candidate reached" in capsys.readouterr().err
    assert not Path(out).exists()
    assert main(["prune", str(tiny), *PRUNE, "--out", str(tiny)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_cli_holdout_retrains_the_reference(tiny: Path, tmp_path: Path) -> None:
    """With --holdout the base (which saw those images) is not the reference: a retrained copy is."""
    out, js = tmp_path / "h.pt", tmp_path / "h.json"
    assert main(["prune", str(tiny), *DEFAULT_SPLIT, "--keep-bits", "1", "--multipliers", "1", "--max-drop", "100",
                 "--holdout", "500", "--out", str(out), "--pareto-json", str(js)]) == 0
    table = json.loads(js.read_text())
    base = table["rows"][0]
    assert base["base"] and table["selection"] == "holdout of 500"
    assert base["test_accuracy"] is not None and base["test_accuracy"] != load(tiny).metrics["test_accuracy"]
    ck = load(out)
    assert ck.pruning[-1]["selection"] == "holdout:500"
    assert ck.metrics["test_accuracy"] is not None and ck.metrics["selection_accuracy"] is not None


def test_cli_decides_on_a_holdout_by_default(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No --holdout: the last fifth of the 2,000 synthetic training images (5,000 on a full data set) decide;
    the test set only with --select-on-test, which the record names."""
    out, test = tmp_path / "d.pt", tmp_path / "t.pt"
    assert main(["prune", str(tiny), *DEFAULT_SPLIT, "--keep-bits", "1", "--multipliers", "1", "--max-drop", "100",
                 "--out", str(out)]) == 0
    assert "base" in capsys.readouterr().out
    assert load(out).pruning[-1]["selection"] == "holdout:400"
    assert main(["prune", str(tiny), *PRUNE, "--keep-bits", "1", "--multipliers", "1", "--max-drop", "100",
                 "--out", str(test)]) == 0
    assert load(test).pruning[-1]["selection"] == "test"
    assert main(["prune", str(tiny), *PRUNE, "--holdout", "100", "--out", str(tmp_path / "x.pt")]) == 2
    assert "--holdout and --select-on-test choose different splits" in capsys.readouterr().err
    assert main(["prune", str(tiny), *DEFAULT_SPLIT, "--holdout", "2000", "--out", str(tmp_path / "x.pt")]) == 2
    assert "--holdout must lie in 1..1999 (the training set has 2000 images), not 2000" in capsys.readouterr().err


def test_bitslice_trains_on_the_images_the_parent_was_limited_to(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import bnn2fpga.prune.bitslice as bitslice

    parent, out = tmp_path / "limited.pt", tmp_path / "p.pt"
    assert main([*TINY, "--limit", "150", "--out", str(parent)]) == 0
    seen: list[int] = []
    real_train = bitslice.train

    def spy(model, split, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        seen.append(len(split))
        return real_train(model, split, *args, **kwargs)
    monkeypatch.setattr(bitslice, "train", spy)
    assert main(["prune", str(parent), *PRUNE, "--keep-bits", "1", "--multipliers", "1", "--max-drop", "100",
                 "--out", str(out)]) == 0
    assert seen and set(seen) == {150}  # every candidate on the parent's 150 images, not the whole training set
    assert load(out).training["limit"] == 150  # and the record says so, for the next step
