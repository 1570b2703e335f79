"""Flip pruning: widths from p_l, channel choice, and ``bnn2fpga prune --method flip`` on synthetic data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from bnn2fpga.checkpoint import load
from bnn2fpga.cli import main
from bnn2fpga.nn.models import binops, hidden_widths, make_architecture
from bnn2fpga.prune.flip import select_removal, shrink_widths, widths_for_target, with_widths

TINY = ["train", "--model", "tfc", "--dataset", "synthetic", "--epochs", "2", "--batch-size", "50",
        "--widths", "24,16,16", "--planes", "6,7", "--quiet"]


def test_shrink_widths_follows_p() -> None:
    assert shrink_widths([256, 256, 100], [0.25, 0.0, 0.333]) == [192, 256, 67]
    assert shrink_widths([10, 10], [1.0, 0.5], scale=3.0) == [1, 1]  # never below one channel


def test_widths_for_target_meets_the_budget() -> None:
    arch = make_architecture("sfc")
    p = [0.3, 0.1, 0.2]
    for fraction in (0.9, 0.7, 0.5):
        widths, scale = widths_for_target(arch, p, binops(arch) * fraction)
        cost = binops(with_widths(arch, widths))
        assert cost <= binops(arch) * fraction
        # one channel more in the first layer (which dominates) would break the budget
        assert binops(with_widths(arch, [widths[0] + 2, *widths[1:]])) > binops(arch) * fraction
        assert widths == shrink_widths(hidden_widths(arch), p, scale)


def test_min_keep_floors_every_layer() -> None:
    assert shrink_widths([10, 40], [0.95, 0.95], min_keep=0.25) == [3, 10]
    arch = make_architecture("nin", width_multiplier=0.125)
    p = [0.1, 0.6, 0.1, 0.7, 0.2, 0.9]  # the 1x1 layers flip most, as on nin
    bare, _ = widths_for_target(arch, p, binops(arch) * 0.5)
    floored, _ = widths_for_target(arch, p, binops(arch) * 0.5, min_keep=0.25)
    assert min(bare) == 1  # one global factor cuts the layer with the largest p_l to one channel
    assert all(w >= math.ceil(0.25 * c) for w, c in zip(floored, hidden_widths(arch), strict=True))
    assert binops(with_widths(arch, floored)) <= binops(arch) * 0.5


def test_select_removal_takes_the_highest_scores() -> None:
    scores = [np.array([5.0, 1.0, 7.0, 1.0]), np.array([0.0, 0.0, 0.0])]
    assert select_removal(scores, [2, 3]) == {0: [0, 2]}
    # ties: the higher index goes first, the lower stays
    assert select_removal([np.array([1.0, 1.0, 1.0])], [1]) == {0: [1, 2]}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("flip") / "base.pt"
    assert main([*TINY, "--out", str(out)]) == 0
    return out


def prune(base: Path, out: Path, *extra: str, default_split: bool = False) -> int:
    """``prune --method flip``; on the test set (the tiny bases hold no images out) unless --holdout or
    ``default_split``."""
    split = [] if default_split or "--holdout" in extra else ["--select-on-test"]
    return main(["prune", str(base), "--method", "flip", "--dataset", "synthetic", "--out", str(out), "--quiet",
                 "--retrain-epochs", "1", *split, *extra])


@pytest.mark.parametrize("mode", ["shrink-retrain", "remove-finetune"])
def test_cli_prunes_to_a_binop_target(base: Path, tmp_path: Path, mode: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pruned.pt"
    assert prune(base, out, "--mode", mode, "--binop-target", "0.6", "--per-iteration",
                 "--accuracy-budget", "100") == 0
    text = capsys.readouterr().out
    assert "flip pruning" in text and "round" in text and "p_l" in text
    ckpt = load(out)
    rec = ckpt.pruning[-1]
    assert rec["method"] == "flip" and rec["widths_before"] == [24, 16, 16]
    assert rec["binops_after"] <= 0.6 * rec["binops_before"] == 0.6 * binops(load(base).architecture)
    assert rec["widths_after"] == hidden_widths(ckpt.architecture)
    assert rec["config"]["mode"] == mode and rec["flip_mode"] == "iteration"
    assert [tuple(c.shape) for c in rec["flip_counts"]] == \
        [tuple(m.weight.shape) for _, m in ckpt.model().binary_layers()]
    assert len(rec["rounds"]) == 1 and rec["rounds"][0]["accuracy"] == ckpt.metrics["test_accuracy"]
    assert rec["selection"] == "test"  # --select-on-test, named in the record
    # the pruned checkpoint goes through the bit-exact reference like any other
    assert main(["eval", str(out), "--dataset", "synthetic", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["agree"]


def test_cli_reuses_recorded_flips_and_runs_rounds(base: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    first, second = tmp_path / "a.pt", tmp_path / "b.pt"
    assert prune(base, first, "--mode", "remove-finetune", "--binop-target", "0.8", "--per-iteration") == 0
    capsys.readouterr()
    assert prune(first, second, "--mode", "remove-finetune", "--binop-target", "0.64", "--rounds", "2",
                 "--per-iteration", "--accuracy-budget", "100", "--exempt-last") == 0
    assert "counting weight flips" not in capsys.readouterr().out  # the recorded counts were used
    rec = load(second).pruning[-1]
    assert rec["flip_source"].startswith("checkpoint") and len(load(second).pruning) == 2
    assert rec["widths_after"][-1] == rec["widths_before"][-1]  # --exempt-last
    assert [r["index"] for r in rec["rounds"]] in ([1], [1, 2])


def test_cli_uses_the_flips_of_training_and_decides_on_the_holdout(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    base, out = tmp_path / "tracked.pt", tmp_path / "pruned.pt"
    assert main([*TINY, "--track-flips", "1", "--flip-checks", "iteration", "--holdout", "400", "--limit", "1000",
                 "--out", str(base)]) == 0
    trained = load(base)
    assert trained.training["holdout"] == 400 and trained.training["flips"]["flip_checks"] == 1000 // 50
    capsys.readouterr()
    assert prune(base, out, "--binop-target", "0.7", "--holdout", "400", "--accuracy-budget", "100",
                 "--per-iteration") == 0
    text = capsys.readouterr().out
    assert "weight flips from the training (last 1.0 epoch(s), 20 iteration checks)" in text
    assert "counting weight flips" not in text and "holdout acc" in text
    pruned = load(out)
    rec = pruned.pruning[-1]
    assert rec["flip_source"].startswith("training") and rec["selection"] == "holdout:400"
    assert rec["flip_checks"] == 1000 // 50  # retrained on the input's 1,000 images (its recipe), not all 1,600
    # the decision used the holdout; the test accuracy is only reported
    assert pruned.metrics["selection_accuracy"] == rec["accuracy_after"]
    assert pruned.metrics["test_accuracy"] == rec["test_accuracy_after"] == rec["rounds"][-1]["test_accuracy"]
    assert binops(pruned.architecture) <= 0.7 * binops(trained.architecture)
    assert prune(base, tmp_path / "more.pt", "--holdout", "500") == 2  # the base trained on 100 of these
    assert "train it with `bnn2fpga train --holdout 500`" in capsys.readouterr().err
    # By default prune decides on the images the input held out.
    default = tmp_path / "default.pt"
    assert prune(base, default, "--binop-target", "0.7", "--accuracy-budget", "100", "--per-iteration",
                 default_split=True) == 0
    assert load(default).pruning[-1]["selection"] == "holdout:400"


def test_cli_decides_on_a_holdout_unless_told(base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The input trained on every image: no default holdout exists, and prune says what to do instead of
    deciding on the test set."""
    out = tmp_path / "x.pt"
    assert prune(base, out, default_split=True) == 2
    err = capsys.readouterr().err
    assert "trained on every training image" in err and "bnn2fpga train --holdout 5000" in err
    assert "--select-on-test" in err and "Traceback" not in err and not out.exists()
    assert prune(base, out, "--holdout", "100", "--select-on-test", default_split=True) == 2
    assert "--holdout and --select-on-test choose different splits" in capsys.readouterr().err


def test_cli_is_deterministic(base: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    for out in (a, b):
        assert prune(base, out, "--mode", "remove-finetune", "--binop-target", "0.7") == 0
    sa, sb = load(a).state_dict, load(b).state_dict
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_cli_nothing_to_prune_keeps_the_widths(base: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "same.pt"
    assert prune(base, out, "--tau", "1000") == 0
    assert "nothing to prune" in capsys.readouterr().out
    assert load(out).pruning[-1]["widths_after"] == [24, 16, 16]


@pytest.mark.parametrize(("extra", "message"), [
    (["--binop-target", "1.5"], "--binop-target: must be a finite number in (0, 1], not '1.5'"),
    (["--tau", "-1"], "--tau: must be an integer >= 0, not '-1'"),
    (["--rounds", "0"], "--rounds: must be a positive integer, not '0'"),
    (["--interval", "0"], "--interval: must be a positive number, not '0'"),
])
def test_cli_bad_options(base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str],
                         message: str) -> None:
    assert prune(base, tmp_path / "x.pt", *extra) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_refuses_overwrite_and_wrong_dataset(base: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert prune(base, base) == 2
    assert "already exists" in capsys.readouterr().err
    fake = tmp_path / "cifar"
    fake.mkdir()
    assert main(["prune", str(base), "--method", "flip", "--dataset", "cifar10", "--data", str(fake),
                 "--out", str(tmp_path / "y.pt")]) == 2
    assert "CIFAR-10 not found" in capsys.readouterr().err
