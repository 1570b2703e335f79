"""Training loop for binary networks: Adam on latent weights, clipped to [-1, 1], deterministic per seed."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..data import Split
from ..errors import UserError
from ..progress import progress_bar
from .models import BNN

EpochCallback = Callable[[BNN, int], None]
IterationCallback = Callable[[BNN, int, int], None]


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 5
    batch_size: int = 100
    lr: float = 0.03
    lr_final: float = 1e-4
    weight_decay: float = 0.0
    seed: int = 0

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass
class TrainResult:
    history: list[dict[str, float]] = field(default_factory=list)
    test_accuracy: float | None = None


def seed_everything(seed: int, device: torch.device | str = "cpu") -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    if torch.device(device).type == "cuda":
        # cuBLAS repeats itself only with a fixed workspace; a few CUDA kernels (NLLLoss's backward) have no
        # deterministic version, so they warn instead of failing. GPU runs repeat on the same GPU and software.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.use_deterministic_algorithms(True)


def default_device(requested: str | None = None) -> torch.device:
    """Where :func:`train` runs: ``requested`` (``train --device``), else ``$BNN2FPGA_DEVICE``: ``cpu``
    (the default), ``cuda``, or ``auto`` (CUDA when PyTorch sees a GPU). The CPU and a GPU give different
    weights (float sums run in other orders), each repeatable, so the CPU stays the default and a GPU
    is asked for."""
    source = "--device" if requested else "BNN2FPGA_DEVICE"
    name = (requested or os.environ.get("BNN2FPGA_DEVICE", "cpu")).strip().lower() or "cpu"
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "cuda"):
        raise UserError(f"{source} must be cpu, cuda or auto, not {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{source} cuda, but PyTorch sees no CUDA GPU here; use cpu or auto")
    return torch.device(name)


@torch.no_grad()
def predict(model: BNN, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = [model(torch.from_numpy(images[i:i + batch_size]).to(device)).argmax(1).cpu().numpy()
           for i in range(0, len(images), batch_size)]
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def accuracy(model: BNN, split: Split) -> float:
    return float((predict(model, split.images) == split.labels).mean())


def train(model: BNN, train_split: Split, config: TrainConfig, *, test_split: Split | None = None,
          on_epoch: Sequence[EpochCallback] = (), on_iteration: Sequence[IterationCallback] = (),
          show_progress: bool = True, description: str = "train",
          device: torch.device | str | None = None) -> TrainResult:
    """Train in place. Callbacks see the model after each optimiser step / epoch (the flip tracker plugs in here).

    Runs on ``device``, by default :func:`default_device`, except with callbacks: they keep CPU tensors, so
    those runs stay on the CPU unless a device is passed. The model is on the CPU when this returns.
    """
    if device is None:
        device = "cpu" if on_epoch or on_iteration else default_device()
    device = torch.device(device)
    seed_everything(config.seed, device)
    model.to(device)
    generator = torch.Generator().manual_seed(config.seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = (len(train_split) + config.batch_size - 1) // config.batch_size
    total = steps_per_epoch * config.epochs
    # Cosine decay to lr_final: binary nets settle only once the latent weights stop crossing zero.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(total, 1), eta_min=config.lr_final)
    images = torch.from_numpy(train_split.images).to(device)
    labels = torch.from_numpy(train_split.labels).to(device)
    result = TrainResult()
    with progress_bar(show_progress) as bar:
        task = bar.add_task(description, total=total, info="")
        for epoch in range(config.epochs):
            model.train()
            order = torch.randperm(len(train_split), generator=generator).to(device)  # the CPU's order everywhere
            seen = correct = 0
            loss_sum = 0.0
            for it in range(steps_per_epoch):
                idx = order[it * config.batch_size:(it + 1) * config.batch_size]
                logits = model(images[idx])
                loss = F.cross_entropy(logits, labels[idx])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
                model.clip_weights()
                seen += len(idx)
                correct += int((logits.argmax(1) == labels[idx]).sum())
                loss_sum += loss.item() * len(idx)
                for cb in on_iteration:
                    cb(model, epoch, it)
                info = f"epoch {epoch + 1}/{config.epochs} loss {loss_sum / seen:.3f} acc {correct / seen:.3f}"
                bar.update(task, advance=1, info=info)
            row = {"epoch": epoch + 1, "loss": loss_sum / seen, "train_accuracy": correct / seen}
            if test_split is not None:
                row["test_accuracy"] = accuracy(model, test_split)
                bar.update(task, info=f"epoch {epoch + 1}/{config.epochs} test acc {row['test_accuracy']:.4f}")
            result.history.append(row)
            for cb_epoch in on_epoch:
                cb_epoch(model, epoch)
    model.to("cpu")
    model.eval()
    if test_split is not None:
        result.test_accuracy = result.history[-1]["test_accuracy"] if result.history else accuracy(model, test_split)
    return result
