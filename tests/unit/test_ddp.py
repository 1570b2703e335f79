"""`bnn2fpga train` under `torchrun --nproc_per_node 2` (DDP, gloo on the CPU): one checkpoint, written once;
the processes' latent weights stay identical (gradients are averaged, every step everywhere)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from bnn2fpga.checkpoint import load

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def test_train_under_torchrun_writes_one_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    done = subprocess.run([*TORCHRUN, "-m", "bnn2fpga.cli", "train", "--model", "tfc", "--dataset", "synthetic",
                           "--epochs", "2", "--quiet", "--out", str(out)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("saved") == 1  # the first process reports; the other is silent
    ckpt = load(out)
    assert ckpt.training["processes"] == 2 and ckpt.metrics["test_accuracy"] > 0.5  # learnt (chance 0.1)
    assert not (tmp_path / "m.pt.partial").exists()


def test_processes_keep_identical_weights(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(f"""
        import os, torch
        from bnn2fpga import data
        from bnn2fpga.nn.models import BNN, make_architecture
        from bnn2fpga.nn.train import TrainConfig, seed_everything, train
        ds = data.load("synthetic")
        seed_everything(0)
        model = BNN(make_architecture("tfc", width_multiplier=0.5))
        train(model, ds.train.head(300), TrainConfig(epochs=1, batch_size=64, seed=0), show_progress=False,
              device="cpu")
        weights = {{k: v for k, v in model.state_dict().items() if k.endswith("weight")}}
        torch.save(weights, os.path.join({str(tmp_path)!r}, "rank" + os.environ["RANK"] + ".pt"))
    """))
    done = subprocess.run([*TORCHRUN, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
