"""One trial: train a candidate from scratch with the input's recipe, on the training set less the
holdout, and measure it. A plain function of plain data, so that a process pool or a Ray worker
(on another machine) can run it; it returns the checkpoint as bytes, and the caller stores it.

Trials are cached by content: the key is a digest of everything that decides the result (the
architecture, data set, recipe, seed, holdout, image limit), so a run that was killed, or a later
run that meets the same candidate, reuses what was trained."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["Trial", "run_trial", "TrialStore", "run_local", "run_ray"]


@dataclass(frozen=True)
class Trial:
    candidate: str  # the candidate's key
    arch: dict[str, Any]
    dataset: str
    data: str | None  # dataset folder
    recipe: dict[str, Any]  # TrainConfig fields
    seed: int
    holdout: int
    limit: int | None  # training images, as the input was limited
    device: str | None = None  # None: the worker's default (a GPU where it has one)

    @property
    def key(self) -> str:
        from .space import content_key

        fields = asdict(self)
        fields.pop("data")  # where the files are does not change them
        fields.pop("device")
        return content_key(fields)


def run_trial(spec: dict[str, Any]) -> dict[str, Any]:
    """Train and measure one :class:`Trial` (given as a dict); ``{"result": ..., "checkpoint": bytes}``."""
    import torch

    from ..checkpoint import Checkpoint
    from ..data import Split
    from ..data import load as load_dataset
    from ..nn.models import BNN, binops, hidden_widths, weight_bits
    from ..nn.train import TrainConfig, accuracy, seed_everything, train

    trial = Trial(**spec)
    if os.environ.get("BNN2FPGA_TRIAL_THREADS"):
        torch.set_num_threads(int(os.environ["BNN2FPGA_TRIAL_THREADS"]))
    ds = load_dataset(trial.dataset, trial.data)
    n = len(ds.train) - trial.holdout
    fit = Split(ds.train.images[:n], ds.train.labels[:n]).head(trial.limit)
    held = Split(ds.train.images[n:], ds.train.labels[n:])
    config = TrainConfig(**{**trial.recipe, "seed": trial.seed})
    seed_everything(trial.seed)
    model = BNN(trial.arch)
    train(model, fit, config, show_progress=False, device=trial.device)
    model.eval()
    result = {"key": trial.key, "candidate": trial.candidate, "seed": trial.seed,
              "holdout_accuracy": accuracy(model, held), "test_accuracy": accuracy(model, ds.test),
              "binops": binops(trial.arch), "weight_bits": weight_bits(trial.arch),
              "widths": hidden_widths(trial.arch), "planes": list(trial.arch["input"]["planes"]),
              "train_images": len(fit), "holdout": trial.holdout, "recipe": config.to_dict()}
    ckpt = Checkpoint.from_model(model, dataset=trial.dataset,
                                 metrics={"test_accuracy": result["test_accuracy"],
                                          "selection_accuracy": result["holdout_accuracy"]},
                                 training={**config.to_dict(), "holdout": trial.holdout,
                                           **({"limit": trial.limit} if trial.limit else {}),
                                           "explore": {"candidate": trial.candidate}})
    buffer = io.BytesIO()
    torch.save(ckpt.to_dict(), buffer)
    return {"result": result, "checkpoint": buffer.getvalue()}


class TrialStore:
    """``<folder>/<key>/result.json`` and ``checkpoint.pt`` per finished trial; written result last, so a
    trial killed half-way is simply not there."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def result(self, key: str) -> dict[str, Any] | None:
        path = self.folder / key / "result.json"
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None  # half-written by a killed run: train it again

    def checkpoint(self, key: str) -> Path:
        return self.folder / key / "checkpoint.pt"

    def put(self, outcome: dict[str, Any]) -> dict[str, Any]:
        result = outcome["result"]
        where = self.folder / result["key"]
        where.mkdir(parents=True, exist_ok=True)
        tmp = where / ".checkpoint.pt.tmp"
        tmp.write_bytes(outcome["checkpoint"])
        tmp.replace(where / "checkpoint.pt")
        tmp = where / ".result.json.tmp"
        tmp.write_text(json.dumps(result, indent=1) + "\n")
        tmp.replace(where / "result.json")
        return result


def run_local(trials: Sequence[Trial], workers: int) -> Iterator[dict[str, Any]]:
    """Outcomes as trials finish: in this process (one worker) or a pool of processes, one thread each."""
    if workers <= 1 or len(trials) <= 1:
        for t in trials:
            yield run_trial(asdict(t))
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    os.environ["BNN2FPGA_TRIAL_THREADS"] = "1"  # inherited by the workers: no oversubscription
    try:
        # spawn: PyTorch's thread pools do not survive a fork
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(run_trial, asdict(t)) for t in trials]
            for f in as_completed(futures):
                yield f.result()
    finally:
        os.environ.pop("BNN2FPGA_TRIAL_THREADS", None)


def _reachable(address: str) -> None:
    """Ray keeps retrying an address where nothing listens for minutes; answer at once instead."""
    import socket

    from ..errors import UserError

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and the like: Ray's own resolution
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise UserError(f"--ray {address}: nothing answers there ({e.strerror or e}); start a cluster with "
                        "`ray start --head --port PORT` and give its HOST:PORT") from None


def run_ray(trials: Sequence[Trial], address: str, gpus_per_trial: float = 0.0,
            log: Callable[[str], None] | None = None) -> Iterator[dict[str, Any]]:
    """Outcomes as trials finish, each trial a Ray task on the cluster at ``address`` (one CPU each, and
    ``gpus_per_trial`` GPUs: Ray places those on GPU workers)."""
    from ..errors import UserError

    try:
        import ray
    except ImportError:
        raise UserError("--ray needs Ray on this machine and the cluster's: pip install 'bnn2fpga[ray]'") from None
    _reachable(address)
    try:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False,
                 runtime_env={"env_vars": {"BNN2FPGA_TRIAL_THREADS": "1"}})
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise UserError(f"--ray {address}: no Ray cluster answers there ({e}); start one with "
                        "`ray start --head` and give the address it prints") from None
    if log:
        resources = ray.cluster_resources()
        log(f"Ray cluster at {address}: {resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs")
    task = ray.remote(num_cpus=1, num_gpus=gpus_per_trial)(run_trial)
    pending = [task.remote(asdict(t)) for t in trials]
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        for ref in pending:
            ray.cancel(ref)
        # Disconnect: a driver still attached when the cluster goes away is ended by Ray itself
        # (abruptly, a minute later), and this process has more to do than explore.
        ray.shutdown()
