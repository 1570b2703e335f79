"""Does the flip indicator work? docs/flip-pruning.md, evidence, on a trained checkpoint.

Counts flips with the tracking pass of ``bnn2fpga prune --method flip`` (per epoch and
per iteration at once), then on the tracked model re-draws (uniform random latent
weight, i.e. a random sign) half of the insensitive weights of every hidden layer, or
the same number of stable weights, and measures the test-accuracy change over several
draws. Writes JSON (and the per-layer flip histograms) for docs/flip-pruning.md.

    python benchmarks/flip_evidence.py /tmp/ex/sfc.pt --out docs/flip-evidence-sfc.json
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from bnn2fpga import data as datasets
from bnn2fpga.checkpoint import load
from bnn2fpga.nn.train import accuracy, train
from bnn2fpga.prune.flip import FlipConfig, layer_names, recipe
from bnn2fpga.prune.flips import FlipTracker


def redraw(model: torch.nn.Module, layer_masks: list[torch.Tensor], rng: np.random.Generator) -> torch.nn.Module:
    out = copy.deepcopy(model)
    with torch.no_grad():
        for (_, m), mask in zip(out.binary_layers(), layer_masks, strict=False):
            idx = torch.from_numpy(np.flatnonzero(mask.reshape(-1).numpy()))
            fresh = torch.from_numpy(rng.uniform(-1, 1, len(idx)).astype(np.float32))
            m.weight.view(-1)[idx] = fresh
    out.eval()
    return out


def pick(pool: torch.Tensor, n: int, rng: np.random.Generator) -> torch.Tensor:
    flat = np.flatnonzero(pool.reshape(-1).numpy())
    chosen = rng.choice(flat, size=min(n, len(flat)), replace=False)
    mask = np.zeros(pool.numel(), dtype=bool)
    mask[chosen] = True
    return torch.from_numpy(mask.reshape(pool.shape))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--track-epochs", type=int, default=1)
    ap.add_argument("--track-lr", type=float, default=1e-3)
    ap.add_argument("--taus", default="0,1,2,4,8")
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    ckpt = load(args.checkpoint)
    ds = datasets.load(args.dataset)
    model = ckpt.model()
    base_acc = accuracy(model, ds.test)
    flip = FlipConfig(track_epochs=args.track_epochs, track_lr=args.track_lr)
    config = replace(recipe(ckpt.training, args.seed), epochs=flip.track_epochs, lr=flip.track_lr)
    steps = (len(ds.train) + config.batch_size - 1) // config.batch_size
    tracked = copy.deepcopy(model)
    per_epoch = FlipTracker(tracked, epochs=config.epochs, steps_per_epoch=steps, mode="epoch")
    per_iter = FlipTracker(tracked, epochs=config.epochs, steps_per_epoch=steps, mode="iteration")
    train(tracked, ds.train, config, on_epoch=[per_epoch.on_epoch], on_iteration=[per_iter.on_iteration],
          show_progress=False)
    tracked_acc = accuracy(tracked, ds.test)
    names = layer_names(model.arch)
    hidden = len(names)
    result: dict[str, object] = {
        "checkpoint": args.checkpoint, "base_accuracy": base_acc, "tracked_accuracy": tracked_acc,
        "track_epochs": flip.track_epochs, "track_lr": flip.track_lr, "layers": names + ["output"],
        "weights": [int(c.numel()) for c in per_iter.counts],
        "histogram_iteration": [np.bincount(c.reshape(-1).numpy()).tolist() for c in per_iter.counts],
        "histogram_epoch": [np.bincount(c.reshape(-1).numpy()).tolist() for c in per_epoch.counts],
        "checks": {"epoch": per_epoch.checks, "iteration": per_iter.checks},
        "p": {}, "redraw": [],
    }
    rng = np.random.default_rng(args.seed)
    for mode, stats in (("epoch", per_epoch.stats()), ("iteration", per_iter.stats())):
        taus = [0] if mode == "epoch" else [int(t) for t in args.taus.split(",")]
        for tau in taus:
            result["p"][f"{mode}/tau={tau}"] = stats.fractions(tau)
            insensitive = stats.insensitive(tau)[:hidden]
            stable = [c == 0 for c in stats.counts[:hidden]]
            n = [int(m.sum()) // 2 for m in insensitive]
            if sum(n) == 0:
                continue
            for kind, pools in (("insensitive", insensitive), ("stable", stable)):
                accs = []
                for _ in range(args.draws):
                    masks = [pick(pool, k, rng) for pool, k in zip(pools, n, strict=True)]
                    accs.append(accuracy(redraw(tracked, masks, rng), ds.test))
                row = {"mode": mode, "tau": tau, "kind": kind, "redrawn": n, "accuracy_mean": float(np.mean(accs)),
                       "accuracy_std": float(np.std(accs)), "change": float(np.mean(accs)) - tracked_acc,
                       "draws": accs}
                result["redraw"].append(row)
                print(f"{mode:9} tau={tau} {kind:11} redraw {sum(n):>8,} weights: acc {np.mean(accs):.4f} "
                      f"± {np.std(accs):.4f} (change {row['change']:+.4f})", flush=True)
    result["seconds"] = time.time() - t0
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"base {base_acc:.4f}, tracked {tracked_acc:.4f}; p: " +
          json.dumps({k: [round(q, 4) for q in v] for k, v in result["p"].items()}))


if __name__ == "__main__":
    main()
