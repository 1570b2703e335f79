"""Flip-guided channel removal against random and latent-magnitude removal, at equal binops.

For each binop target the per-layer widths come from the flip p_l (one global
factor, as ``--binop-target``), so the three criteria prune exactly the same number
of channels in every layer and differ only in *which* channels go:

- ``flip``: the channels holding the most insensitive weights;
- ``random``: uniformly random channels;
- ``magnitude``: the channels with the smallest mean |latent weight|.

Each pruned network is evaluated right after removal (the removed channels masked to
their majority bit, folded exactly into the next layer) and after the same
fine-tuning. Writes JSON for docs/flip-pruning.md.

    python benchmarks/flip_compare.py /tmp/ex/sfc.pt --targets 0.8,0.6,0.4 --out docs/flip-compare-sfc.json
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from bnn2fpga import data as datasets
from bnn2fpga.checkpoint import load
from bnn2fpga.nn.models import binops, hidden_widths, weight_bits
from bnn2fpga.nn.train import accuracy, train
from bnn2fpga.prune.channels import choose_fill, remove_channels
from bnn2fpga.prune.flip import (
    CRITERIA,
    FlipConfig,
    channel_scores,
    layer_p,
    recipe,
    select_removal,
    track_flips,
    widths_for_target,
)
from bnn2fpga.prune.flips import FlipStats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--targets", default="0.8,0.6,0.4", help="fractions of binops to keep")
    ap.add_argument("--criteria", default=",".join(CRITERIA))
    ap.add_argument("--finetune-epochs", type=int, default=1)
    ap.add_argument("--finetune-lr", type=float, default=1e-3)
    ap.add_argument("--tau", type=int, default=0)
    ap.add_argument("--per-iteration", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    ckpt = load(args.checkpoint)
    ds = datasets.load(args.dataset)
    model = ckpt.model()
    base_acc = accuracy(model, ds.test)
    flip = FlipConfig(tau=args.tau, per_iteration=args.per_iteration, seed=args.seed)
    base = recipe(ckpt.training, args.seed)
    cache = Path(args.out).with_suffix(".flips.pt")
    if cache.exists():
        stats = FlipStats.from_record(torch.load(cache, weights_only=True))
        assert stats is not None
    else:
        stats, _ = track_flips(model, ds.train, base, flip, show_progress=False)
        torch.save(stats.to_record(), cache)
    p = layer_p(stats, flip, len(hidden_widths(model.arch)))
    print(f"base {base_acc:.4f}, {binops(model.arch):,} binops; p_l = {[round(q, 4) for q in p]}", flush=True)
    rows = []
    for target in (float(t) for t in args.targets.split(",")):
        widths, scale = widths_for_target(model.arch, p, binops(model.arch) * target)
        for criterion in args.criteria.split(","):
            scores = channel_scores(model, criterion, stats=stats, tau=flip.tau,
                                    rng=np.random.default_rng(args.seed))
            removal = select_removal(scores, widths)
            pruned = remove_channels(model, removal, choose_fill(model, removal, ds.train.images[:2000]))
            acc_removed = accuracy(pruned, ds.test)
            config = replace(base, epochs=args.finetune_epochs, lr=args.finetune_lr, seed=args.seed)
            train(pruned, ds.train, config, show_progress=False)
            acc = accuracy(pruned, ds.test)
            row = {"target": target, "criterion": criterion, "widths": widths, "scale": scale,
                   "binops": binops(pruned.arch), "binops_fraction": binops(pruned.arch) / binops(model.arch),
                   "weight_bits": weight_bits(pruned.arch), "accuracy_removed": acc_removed, "accuracy": acc}
            rows.append(row)
            print(f"target {target:.2f} {criterion:9} widths {widths} binops {row['binops_fraction']:.1%}: "
                  f"after removal {acc_removed:.4f}, after {args.finetune_epochs} epoch(s) fine-tune {acc:.4f}",
                  flush=True)
            Path(args.out).write_text(json.dumps(
                {"checkpoint": args.checkpoint, "base_accuracy": base_acc, "base_binops": binops(model.arch),
                 "base_widths": hidden_widths(model.arch), "p": p, "tau": flip.tau, "counting": flip.counting,
                 "finetune_epochs": args.finetune_epochs, "finetune_lr": args.finetune_lr, "rows": rows,
                 "seconds": time.time() - t0}, indent=1))


if __name__ == "__main__":
    main()
