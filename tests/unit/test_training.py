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
