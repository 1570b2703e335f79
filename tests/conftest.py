from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bnn2fpga.checkpoint import Checkpoint
from bnn2fpga.nn.models import BNN, make_architecture

# The unit tests train and run small models: one thread is faster than two spinning
# OpenMP workers on a shared 2-core machine, and keeps float reductions identical run to run.
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def randomize_batchnorm(model: BNN, seed: int = 0) -> BNN:
    """Give every batch-norm awkward statistics: negative scales, wide means, exact ties."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_((torch.rand(n, generator=g) - 0.5) * 40)
                m.running_var.copy_(torch.rand(n, generator=g) * 50 + 0.1)
                m.weight.copy_((torch.rand(n, generator=g) - 0.5) * 4)  # about half negative
                m.bias.copy_((torch.rand(n, generator=g) - 0.5) * 2)
                # Ties: a channel whose batch-norm is exactly 0 at an integer dot (bias 0, mean on an even integer).
                m.running_mean[0] = 2.0
                m.bias[0] = 0.0
                if n > 2:
                    m.weight[1] = 0.0  # constant channel: BN(x) = bias for every x
    model.eval()
    return model


def random_checkpoint(name: str = "sfc", seed: int = 0, dataset: str = "synthetic", **arch_kwargs) -> Checkpoint:
    torch.manual_seed(seed)
    model = randomize_batchnorm(BNN(make_architecture(name, **arch_kwargs)), seed)
    return Checkpoint.from_model(model, dataset=dataset, metrics={"test_accuracy": None})


def q17_codes() -> list[int]:
    """BNN-PYNQ's CNV input: 2 * pixel / 255 - 1 rounded to Q1.7 (-128..127), as an unsigned code (+128)."""
    return [min(127, max(-128, round((2 * p / 255 - 1) * 128))) + 128 for p in range(256)]


def random_pixels(n: int, c: int = 1, h: int = 28, w: int = 28, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, c, h, w), dtype=np.uint8)


@pytest.fixture
def sfc_example() -> Path:
    path = EXAMPLES / "sfc-fmnist.pt"
    assert path.exists(), f"shipped example {path} missing"
    return path


@pytest.fixture(autouse=True, scope="session")
def _own_synthesis_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests never read results a user's earlier builds left in ~/.cache: one fresh cache per run."""
    import os

    os.environ["BNN2FPGA_CACHE"] = str(tmp_path_factory.mktemp("bnn2fpga-cache"))

