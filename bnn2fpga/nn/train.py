"""Training loop for binary networks: Adam on latent weights, clipped to [-1, 1], deterministic per seed."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class Distributed:
    """This process's place in a `torchrun` job (PyTorch's RANK / WORLD_SIZE / LOCAL_RANK variables)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The process that reports progress and writes files."""
        return self.rank == 0


def distributed() -> Distributed:
    """Where this process stands: one process of ``torchrun --nproc_per_node N``, or alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    return Distributed(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def _join(place: Distributed, device: torch.device) -> torch.device:
    """Join the process group (gloo on CPUs, NCCL on GPUs); a GPU process uses the GPU of its local rank."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return torch.device("cuda", place.local_rank) if device.type == "cuda" else device


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


def training_state(epoch: int, model: BNN, optimiser: torch.optim.Optimizer,
                   schedule: torch.optim.lr_scheduler.LRScheduler, generator: torch.Generator,
                   history: list[dict[str, float]]) -> dict[str, Any]:
    """Plain tensors and numbers (loadable with ``weights_only=True``), on the CPU."""
    def cpu(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value.detach().cpu().clone()
        if isinstance(value, dict):
            return {k: cpu(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(cpu(v) for v in value)
        return value
    return {"epoch": epoch, "model": cpu(model.state_dict()), "optimiser": cpu(optimiser.state_dict()),
            "schedule": cpu(schedule.state_dict()), "generator": generator.get_state(),
            "history": [dict(row) for row in history]}


def train(model: BNN, train_split: Split, config: TrainConfig, *, test_split: Split | None = None,
          on_epoch: Sequence[EpochCallback] = (), on_iteration: Sequence[IterationCallback] = (),
          show_progress: bool = True, description: str = "train",
          device: torch.device | str | None = None, resume: dict[str, Any] | None = None,
          on_state: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """Train in place. Callbacks see the model after each optimiser step / epoch (the flip tracker plugs in here).

    Runs on ``device``, by default :func:`default_device`, except with callbacks: they keep CPU tensors, so
    those runs stay on the CPU unless a device is passed. The model is on the CPU when this returns.

    ``on_state`` receives, after every epoch, everything needed to go on (:func:`training_state`: epoch,
    model, optimiser, schedule, shuffling generator, history); ``resume`` is such a state: training
    continues after its epoch and, on the same device, ends with the weights of an uninterrupted run.

    Under ``torchrun --nproc_per_node N`` (PyTorch DDP) every process takes its share of each batch
    (the same global batch and schedule as one process) and gradients are averaged across them, so
    the latent weights stay identical everywhere; batch-norm statistics are each process's own (as
    with plain DDP). Only the first process shows progress and gets ``on_state``.
    """
    if device is None:
        device = "cpu" if on_epoch or on_iteration else default_device()
    device = torch.device(device)
    place = distributed()
    if place.world > 1:
        device = _join(place, device)
        show_progress = show_progress and place.main
    seed_everything(config.seed, device)
    model.to(device)
    net: torch.nn.Module = model
    if place.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    generator = torch.Generator().manual_seed(config.seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = (len(train_split) + config.batch_size - 1) // config.batch_size
    total = steps_per_epoch * config.epochs
    # Cosine decay to lr_final: binary nets settle only once the latent weights stop crossing zero.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(total, 1), eta_min=config.lr_final)
    images = torch.from_numpy(train_split.images).to(device)
    labels = torch.from_numpy(train_split.labels).to(device)
    result = TrainResult()
    first_epoch = 0
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimiser.load_state_dict(resume["optimiser"])
        schedule.load_state_dict(resume["schedule"])
        generator.set_state(resume["generator"])
        result.history = [dict(row) for row in resume["history"]]
        first_epoch = int(resume["epoch"])
    with progress_bar(show_progress) as bar:
        task = bar.add_task(description, total=total, info="", completed=first_epoch * steps_per_epoch)
        for epoch in range(first_epoch, config.epochs):
            model.train()
            order = torch.randperm(len(train_split), generator=generator).to(device)  # the CPU's order everywhere
            seen = correct = 0
            loss_sum = 0.0
            for it in range(steps_per_epoch):
                idx = order[it * config.batch_size:(it + 1) * config.batch_size]
                if place.world > 1:
                    if len(idx) < place.world:  # a last batch too small to share: every process skips it
                        continue
                    idx = idx[place.rank::place.world]
                logits = net(images[idx])
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
            if on_state is not None and place.main:
                on_state(training_state(epoch + 1, model, optimiser, schedule, generator, result.history))
    model.to("cpu")
    model.eval()
    if test_split is not None:
        result.test_accuracy = result.history[-1]["test_accuracy"] if result.history else accuracy(model, test_split)
    return result


TRAIN_STATE_FORMAT = "bnn2fpga-train-state/1"


def save_train_state(path: Path, run: dict[str, Any], state: dict[str, Any]) -> None:
    """Write ``state`` (``training_state``) with the run's arguments; aside first, then moved: never half a file."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": TRAIN_STATE_FORMAT, **run, "state": state}, tmp)
    os.replace(tmp, path)


def load_train_state(path: Path, run: dict[str, Any]) -> dict[str, Any]:
    """The saved state of an interrupted run, if it was made with these very arguments (``run``)."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a truncated or foreign file: say so, never a traceback
        raise UserError(f"{path}: not a readable training state ({type(e).__name__}); delete it or pass --force "
                        "to start over") from None
    if not isinstance(saved, dict) or saved.get("format") != TRAIN_STATE_FORMAT or "state" not in saved:
        raise UserError(f"{path} is not a bnn2fpga training state; delete it or pass --force to start over")
    for key, value in run.items():
        if saved.get(key) != value:
            raise UserError(f"{path} was written by a run with another {key} ({saved.get(key)!r}, now "
                            f"{value!r}); resume with the same arguments, or pass --force to start over")
    return dict(saved["state"])
