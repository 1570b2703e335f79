"""The training recipe reaches the accuracy the project promises (slow: minutes of CPU)."""

from __future__ import annotations

import pytest
import torch

from bnn2fpga import data
from bnn2fpga.nn.models import BNN, make_architecture
from bnn2fpga.nn.train import TrainConfig, accuracy, seed_everything, train


@pytest.mark.slow
def test_sfc_reaches_84_percent_on_fashion_mnist_in_5_epochs() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the recipe of the shipped example (2-core machine)
    try:
        ds = data.load("fashion-mnist")
        seed_everything(0)
        model = BNN(make_architecture("sfc"))
        epochs_seen: list[int] = []
        result = train(model, ds.train, TrainConfig(epochs=5, seed=0), test_split=ds.test, show_progress=False,
                       on_epoch=[lambda m, e: epochs_seen.append(e)])
    finally:
        torch.set_num_threads(threads)
    assert epochs_seen == [0, 1, 2, 3, 4]
    assert result.test_accuracy is not None and result.test_accuracy >= 0.84, result.history
    assert accuracy(model, ds.test) == result.test_accuracy
    for _, layer in model.binary_layers():
        assert layer.weight.abs().max() <= 1.0  # latent weights clipped


class _Interrupted(Exception):
    pass


def test_resumed_training_equals_an_uninterrupted_run(tmp_path) -> None:
    from bnn2fpga.nn.train import load_train_state, save_train_state

    ds = data.synthetic(n_train=300, n_test=50)
    config = TrainConfig(epochs=3, batch_size=50, lr=0.01, seed=1)
    arch = make_architecture("tfc", widths=[13, 7, 9])

    def fresh() -> BNN:
        seed_everything(config.seed)
        return BNN(arch)

    straight = fresh()
    train(straight, ds.train, config, show_progress=False)

    run = {"architecture": arch, "config": config.to_dict()}
    partial = tmp_path / "x.pt.partial"

    def save_then_stop(state: dict) -> None:
        save_train_state(partial, run, state)
        if state["epoch"] == 1:
            raise _Interrupted  # the session ends after the first epoch

    first = fresh()
    with pytest.raises(_Interrupted):
        train(first, ds.train, config, show_progress=False, on_state=save_then_stop)
    state = load_train_state(partial, run)
    assert state["epoch"] == 1 and len(state["history"]) == 1
    resumed = fresh()
    result = train(resumed, ds.train, config, show_progress=False, resume=state)
    assert len(result.history) == 3
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(Exception, match="was written by a run with another config"):
        load_train_state(partial, {**run, "config": {**run["config"], "lr": 0.02}})
