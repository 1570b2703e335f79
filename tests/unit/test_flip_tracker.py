"""Flip counting on hand-made weight sequences: the pure counter and the training-loop tracker."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bnn2fpga.checkpoint import Checkpoint, load
from bnn2fpga.nn.models import BNN, make_architecture
from bnn2fpga.prune.flips import FlipStats, FlipTracker, count_flips


def tiny() -> BNN:
    # 4x4 grey input, one plane: 16 -> 3 -> 2 -> 2 -> 2 classes; weights small enough to write by hand.
    return BNN(make_architecture("tfc", height=4, width=4, planes=[7], widths=[3, 2, 2], classes=2))


def set_weights(model: BNN, values: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for (_, m), v in zip(model.binary_layers(), values, strict=True):
            m.weight.copy_(v.reshape(m.weight.shape))


def test_count_flips_on_sign_sequences() -> None:
    seq = [torch.tensor([1.0, 1.0, -1.0, 1.0]), torch.tensor([1.0, -1.0, -1.0, -1.0]),
           torch.tensor([-1.0, 1.0, -1.0, -1.0]), torch.tensor([-1.0, -1.0, -1.0, 1.0])]
    assert count_flips(seq).tolist() == [1, 3, 0, 2]


def test_count_flips_treats_zero_as_plus_one() -> None:
    # binarize(0) = +1: 0 -> 0.5 is no flip, 0 -> -0.5 is one, back to 0 another.
    assert count_flips([torch.tensor([0.0, 0.0]), torch.tensor([0.5, -0.5]), torch.tensor([0.0, 0.0])]).tolist() \
        == [0, 2]


def test_count_flips_needs_consistent_snapshots() -> None:
    with pytest.raises(ValueError, match="count_flips needs at least one snapshot"):
        count_flips([])
    with pytest.raises(ValueError, match=r"snapshot shape \(3,\) differs from \(2,\)"):
        count_flips([torch.ones(2), torch.ones(3)])


def sequence(model: BNN, steps: int, seed: int = 0) -> list[list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [[torch.rand(m.weight.shape, generator=g) * 2 - 1 for _, m in model.binary_layers()]
            for _ in range(steps)]


def test_epoch_tracker_counts_only_the_final_interval() -> None:
    model = tiny()
    seq = sequence(model, 4)
    tracker = FlipTracker(model, epochs=4, steps_per_epoch=3, interval=2, mode="epoch")
    for epoch, weights in enumerate(seq):
        set_weights(model, weights)
        for it in range(3):
            tracker.on_iteration(model, epoch, it)  # ignored in epoch mode
        tracker.on_epoch(model, epoch)
    # Reference = state after epoch 1 (index 1); epochs 2 and 3 are compared.
    for layer, counts in enumerate(tracker.stats().counts):
        assert torch.equal(counts, count_flips([seq[e][layer] for e in (1, 2, 3)]))
    assert tracker.stats().checks == 2


def test_epoch_tracker_whole_run_starts_from_the_initial_weights() -> None:
    model = tiny()
    initial = [m.weight.detach().clone() for _, m in model.binary_layers()]
    seq = sequence(model, 3, seed=1)
    tracker = FlipTracker(model, epochs=3, steps_per_epoch=1, interval=None)
    for epoch, weights in enumerate(seq):
        set_weights(model, weights)
        tracker.on_epoch(model, epoch)
    stats = tracker.stats()
    assert stats.checks == 3
    for layer, counts in enumerate(stats.counts):
        assert torch.equal(counts, count_flips([initial[layer]] + [s[layer] for s in seq]))


def test_iteration_tracker_with_a_fractional_interval() -> None:
    model = tiny()
    seq = sequence(model, 8, seed=2)
    # 2 epochs x 4 steps; interval 0.5 epoch = the last 2 steps, compared with the state after step 5.
    tracker = FlipTracker(model, epochs=2, steps_per_epoch=4, interval=0.5, mode="iteration")
    for step, weights in enumerate(seq):
        set_weights(model, weights)
        tracker.on_iteration(model, step // 4, step % 4)
        if step % 4 == 3:
            tracker.on_epoch(model, step // 4)  # ignored in iteration mode
    assert tracker.stats().checks == 2
    for layer, counts in enumerate(tracker.stats().counts):
        assert torch.equal(counts, count_flips([seq[s][layer] for s in (5, 6, 7)]))


def test_stats_fractions_and_channels() -> None:
    counts = (torch.tensor([[0, 1, 2], [3, 0, 0]], dtype=torch.int32), torch.tensor([[0, 0], [0, 5]]))
    stats = FlipStats(("a", "b"), counts, checks=5, mode="iteration")
    assert stats.fractions(0) == pytest.approx([0.5, 0.25])
    assert stats.fractions(1) == pytest.approx([2 / 6, 0.25])
    assert [c.tolist() for c in stats.per_channel(0)] == [[2, 1], [0, 1]]


def test_stats_survive_a_checkpoint(tmp_path: Path) -> None:
    model = tiny()
    tracker = FlipTracker(model, epochs=1, steps_per_epoch=1)
    set_weights(model, sequence(model, 1)[0])
    tracker.on_epoch(model, 0)
    stats = tracker.stats()
    record = {"method": "flip", "widths_before": [3, 2, 2], "widths_after": [3, 2, 2], **stats.to_record()}
    Checkpoint.from_model(model, pruning=[record]).save(tmp_path / "t.pt")
    back = FlipStats.from_record(load(tmp_path / "t.pt").pruning[0])  # weights_only=True load
    assert back is not None and back.names == stats.names and back.checks == 1 and back.mode == "epoch"
    assert all(torch.equal(a, b) for a, b in zip(back.counts, stats.counts, strict=True))


def test_tracker_rejects_bad_settings() -> None:
    model = tiny()
    with pytest.raises(ValueError, match="flip counting mode must be one of epoch, iteration, not 'batch'"):
        FlipTracker(model, epochs=1, steps_per_epoch=1, mode="batch")
    with pytest.raises(ValueError, match="flip interval must be a positive number of epochs, not 0"):
        FlipTracker(model, epochs=1, steps_per_epoch=1, interval=0)
