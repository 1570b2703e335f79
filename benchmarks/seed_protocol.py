"""Both seed pruning methods against controls at equal binops, over several seeds, decided on a holdout.

For one model (``--model``, scaled by ``--width``), every seed runs these arms, each trained from
scratch with the same recipe (``--epochs``, cosine decay from 0.03 to 1e-4) on the first
``--train-images`` training images; every decision is taken on the last ``--holdout`` training
images (never trained on) and the test set is only reported:

- ``base``: the unpruned network; its weight flips are counted over the final ``--track``
  epoch(s) of this very training (``train --track-flips``), checked after every optimiser step.
- flip, published rule: widths ``round(C_l (1 - p_l))`` at tau = 0 (``flip-tau0``), and its
  control ``uniform-tau0``: every hidden width scaled by one factor to the same binops.
- flip at a binop target (``--target``, a fraction of the base): ``flip-target`` (the p_l ratios,
  one global factor), ``uniform-target`` and ``random-target`` (random p_l, same target).
- remove and fine-tune at the flip-target widths: which channels go, by most insensitive
  weights (``remove-flip``), at random (``remove-random``) or smallest mean |latent weight|
  (``remove-magnitude``); fine-tuned ``--finetune-epochs`` at lr 1e-3.
- bit-slice, for the model's planes encoding and for the integer first layer (``-int``):
  the paper's noise criterion on the holdout picks the planes (``--plane-drop`` points);
  ``bitslice`` keeps those most significant planes, ``random-planes`` as many random planes,
  ``uniform-bits`` all planes with every hidden width scaled to the same binops.

Results go to ``--out`` (JSON) after every arm, and a rerun skips what is there, so an
interrupted run resumes. ``--report`` prints the table (mean +- std over seeds) and draws a plot.

    python benchmarks/seed_protocol.py --model cnv --width 0.125 --seeds 0,1,2 --out docs/data/protocol-cnv.json
    python benchmarks/seed_protocol.py --report docs/data/protocol-cnv.json --plot docs/img/protocol-cnv.png
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bnn2fpga import data
from bnn2fpga.data import Split
from bnn2fpga.nn.models import BNN, binops, hidden_widths, make_architecture, weight_bits
from bnn2fpga.nn.train import TrainConfig, accuracy, seed_everything, train
from bnn2fpga.prune.bitslice import msb_planes
from bnn2fpga.prune.channels import choose_fill, remove_channels
from bnn2fpga.prune.flip import channel_scores, select_removal, shrink_widths, widths_for_target, with_widths
from bnn2fpga.prune.flips import FlipTracker
from bnn2fpga.prune.sensitivity import analyse, planes_within

ARMS = ("base", "flip-tau0", "uniform-tau0", "flip-target", "uniform-target", "random-target", "remove-flip",
        "remove-random", "remove-magnitude", "bitslice", "random-planes", "uniform-bits",
        "base-int", "bitslice-int", "random-planes-int", "uniform-bits-int")


def fill_to(arch: dict[str, Any], widths: list[int], target: float, cap: list[int] | None = None) -> list[int]:
    """Add channels back, one at a time to the layer cut hardest (relative to ``arch``), while the binops
    stay within ``target`` and each width within ``cap`` (default: the full width): narrow layers round
    in steps of 10 % or more, and a control with fewer binops than its method would not be a fair one."""
    full = hidden_widths(arch)
    cap = cap or full
    widths = list(widths)
    while True:
        for i in sorted(range(len(widths)), key=lambda i: (widths[i] / full[i], i)):
            trial = widths[:i] + [widths[i] + 1] + widths[i + 1:]
            if widths[i] < cap[i] and binops(with_widths(arch, trial)) <= target:
                widths = trial
                break
        else:
            return widths


def uniform_widths(arch: dict[str, Any], target: float) -> list[int]:
    """Every hidden width times one factor (the largest whose binops stay within ``target``), then
    :func:`fill_to` the target, each width rounded up at most (so the scaling stays uniform)."""
    widths = hidden_widths(arch)

    def scaled(m: float) -> list[int]:
        return [max(1, round(w * m)) for w in widths]

    lo, hi = 0.0, 1.0
    for _ in range(50):
        mid = (lo + hi) / 2
        if binops(with_widths(arch, scaled(mid))) > target:
            hi = mid
        else:
            lo = mid
    return fill_to(arch, scaled(lo), target, cap=[min(w, math.ceil(w * lo) + 1) for w in widths])


def with_planes(arch: dict[str, Any], planes: list[int]) -> dict[str, Any]:
    out = copy.deepcopy(arch)
    out["input"]["planes"] = sorted(planes)
    return out


class Protocol:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        ds = data.load("fashion-mnist")
        n = len(ds.train)
        self.fit = Split(ds.train.images[:args.train_images], ds.train.labels[:args.train_images])
        self.holdout = Split(ds.train.images[n - args.holdout:], ds.train.labels[n - args.holdout:])
        self.test = ds.test
        if args.train_images > n - args.holdout:
            raise SystemExit(f"--train-images {args.train_images} overlaps the holdout (the last {args.holdout})")
        self.out = Path(args.out)
        self.results: dict[str, Any] = json.loads(self.out.read_text()) if self.out.exists() else {}
        settings = {k: getattr(args, k) for k in ("model", "width", "epochs", "track", "train_images", "holdout",
                                                  "target", "finetune_epochs", "plane_drop")}
        if self.results.get("settings", settings) != settings:
            raise SystemExit(f"{self.out} holds a run with other settings: {self.results['settings']}")
        self.results["settings"] = settings
        self.results.setdefault("runs", {})
        self.work = Path(args.work)
        self.work.mkdir(parents=True, exist_ok=True)

    def config(self, seed: int, **kw: Any) -> TrainConfig:
        return replace(TrainConfig(epochs=self.args.epochs, seed=seed), **kw)

    def arch(self, encoding: str = "planes") -> dict[str, Any]:
        return make_architecture(self.args.model, width_multiplier=self.args.width, encoding=encoding)

    def save(self) -> None:
        tmp = self.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.results, indent=1))
        tmp.replace(self.out)

    def row(self, model: BNN, seconds: float, **extra: Any) -> dict[str, Any]:
        return {"widths": hidden_widths(model.arch), "planes": list(model.arch["input"]["planes"]),
                "binops": binops(model.arch), "weight_bits": weight_bits(model.arch),
                "holdout": accuracy(model, self.holdout), "test": accuracy(model, self.test),
                "seconds": round(seconds, 1), **extra}

    def scratch(self, arch: dict[str, Any], seed: int, name: str,
                tracker: Callable[[BNN], FlipTracker] | None = None) -> tuple[BNN, float, FlipTracker | None]:
        seed_everything(seed)
        model = BNN(arch)
        t = time.time()
        tr = tracker(model) if tracker else None
        train(model, self.fit, self.config(seed), show_progress=self.args.progress, description=name,
              device="cpu", on_iteration=[tr.on_iteration] if tr else ())
        return model, time.time() - t, tr

    def checkpoint(self, seed: int, name: str) -> Path:
        return self.work / f"{self.args.model}-w{self.args.width:g}-s{seed}-{name}.pt"

    def run_seed(self, seed: int) -> None:
        runs = self.results["runs"].setdefault(str(seed), {})

        def done(name: str) -> bool:
            return name in runs

        def record(name: str, row: dict[str, Any]) -> None:
            runs[name] = row
            self.save()
            print(f"seed {seed} {name:18s} widths {row['widths']} planes {row['planes']} binops {row['binops']:,} "
                  f"holdout {row['holdout']:.4f} test {row['test']:.4f} ({row['seconds']:.0f} s)", flush=True)

        base_arch = self.arch()
        steps = (len(self.fit) + 99) // 100
        base_path = self.checkpoint(seed, "base")
        if not done("base") or not base_path.exists():
            def make_tracker(model: BNN) -> FlipTracker:
                return FlipTracker(model, epochs=self.args.epochs, steps_per_epoch=steps, interval=self.args.track,
                                   mode="iteration")
            model, secs, tr = self.scratch(base_arch, seed, f"s{seed} base", make_tracker)
            assert tr is not None
            stats = tr.stats()
            torch.save({"state_dict": model.state_dict(), "flips": [c.clone() for c in stats.counts]}, base_path)
            record("base", self.row(model, secs, p=stats.fractions(0), checks=stats.checks))
        saved = torch.load(base_path, weights_only=True)
        base = BNN(base_arch)
        base.load_state_dict(saved["state_dict"])
        base.eval()
        flips = saved["flips"]
        hidden = len(hidden_widths(base_arch))
        p = [float((c > 0).float().mean()) for c in flips][:hidden]
        total = binops(base_arch)

        def trained(name: str, arch: dict[str, Any], reference: str = "base", **extra: Any) -> None:
            if done(name):
                return
            ref_arch = self.arch("integer" if reference == "base-int" else "planes")
            if hidden_widths(arch) == hidden_widths(ref_arch) and arch["input"] == ref_arch["input"]:
                record(name, {**runs[reference], "seconds": 0.0, "same_as_base": True, **extra})
                return
            model, secs, _ = self.scratch(arch, seed, f"s{seed} {name}")
            record(name, self.row(model, secs, **extra))

        # flip, the published rule and its uniform control at the binops it reached
        tau0 = with_widths(base_arch, shrink_widths(hidden_widths(base_arch), p))
        trained("flip-tau0", tau0)
        trained("uniform-tau0", with_widths(base_arch, uniform_widths(base_arch, binops(tau0))))
        # flip at a binop target and its two controls
        target = total * self.args.target
        flip_widths, _ = widths_for_target(base_arch, p, target)
        trained("flip-target", with_widths(base_arch, flip_widths))
        trained("uniform-target", with_widths(base_arch, uniform_widths(base_arch, binops(with_widths(
            base_arch, flip_widths)))))
        rng = np.random.default_rng(1000 + seed)
        random_p = [float(x) for x in rng.uniform(0.0, 1.0, hidden)]
        flip_binops = binops(with_widths(base_arch, flip_widths))
        random_widths = fill_to(base_arch, widths_for_target(base_arch, random_p, flip_binops)[0], flip_binops)
        trained("random-target", with_widths(base_arch, random_widths), p_random=random_p)
        # remove the chosen channels of the base and fine-tune, at the flip-target widths
        from bnn2fpga.prune.flips import FlipStats
        stats = FlipStats(tuple(n for n, _ in base.binary_layers()), tuple(c.to(torch.int32) for c in flips), 0,
                          "iteration")
        for criterion in ("flip", "random", "magnitude"):
            name = f"remove-{criterion}"
            if done(name):
                continue
            scores = channel_scores(base, criterion, stats=stats, rng=np.random.default_rng(seed))
            removal = select_removal(scores, flip_widths)
            pruned = remove_channels(base, removal, choose_fill(base, removal, self.fit.images[:2000]))
            removed_acc = accuracy(pruned, self.holdout)
            t = time.time()
            train(pruned, self.fit, self.config(seed, epochs=self.args.finetune_epochs, lr=1e-3),
                  show_progress=self.args.progress, description=f"s{seed} {name}", device="cpu")
            record(name, self.row(pruned, time.time() - t, holdout_before_finetune=removed_acc))
        # bit-slice, for both first-layer forms
        forms = (("", "planes"), ("-int", "integer"))[:1 if self.args.planes_only else 2]
        for suffix, encoding in forms:
            arch = self.arch(encoding)
            if encoding == "planes":
                model = base
            else:
                int_path = self.checkpoint(seed, "base-int")
                if not done("base-int") or not int_path.exists():
                    model, secs, _ = self.scratch(arch, seed, f"s{seed} base-int")
                    torch.save({"state_dict": model.state_dict()}, int_path)
                    record("base-int", self.row(model, secs))
                model = BNN(arch)
                model.load_state_dict(torch.load(int_path, weights_only=True)["state_dict"])
                model.eval()
            if done(f"bitslice{suffix}"):
                keep = runs[f"bitslice{suffix}"]["planes"]
            else:
                sens = analyse(model, self.holdout, draws=3, seed=seed)
                keep = planes_within(sens, self.args.plane_drop)
                keep = msb_planes(list(range(8)), len(keep))
            ref = "base" + suffix
            trained(f"bitslice{suffix}", with_planes(arch, keep), ref)
            others = [b for b in range(8)]
            rng = np.random.default_rng(2000 + seed)
            random_planes = sorted(int(b) for b in rng.choice(others, size=len(keep), replace=False))
            if random_planes == sorted(keep) and len(keep) < 8:  # a random draw equal to the MSBs tells nothing
                random_planes = sorted(int(b) for b in rng.choice(others[:-1], size=len(keep), replace=False))
            trained(f"random-planes{suffix}", with_planes(arch, random_planes), ref)
            trained(f"uniform-bits{suffix}", with_widths(arch, uniform_widths(arch, binops(with_planes(arch, keep)))),
                    ref)


def report(path: Path, plot: Path | None) -> None:
    results = json.loads(path.read_text())
    runs = results["runs"]
    s = results["settings"]
    print(f"{s['model']} x{s['width']:g}, {s['epochs']} epochs on {s['train_images']:,} images, holdout "
          f"{s['holdout']:,}, seeds {', '.join(runs)}")
    print(f"| arm | seeds | binops (of base) | widths (seed {next(iter(runs))}) | planes | holdout acc. | test acc. |")
    print("|---|---:|---:|---|---|---:|---:|")
    summary = {}
    for arm in ARMS:
        rows = [r[arm] for r in runs.values() if arm in r]
        if not rows:
            continue
        base_key = "base-int" if arm.endswith("-int") else "base"
        ratio = statistics.mean(r[arm]["binops"] / r[base_key]["binops"] for r in runs.values() if arm in r)

        def ms(key: str, rows: list[dict[str, Any]] = rows) -> str:
            vals = [100 * r[key] for r in rows]
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            return f"{statistics.mean(vals):.2f} ± {sd:.2f}"
        summary[arm] = {"binops_ratio": ratio, "test": [r["test"] for r in rows],
                        "holdout": [r["holdout"] for r in rows]}
        print(f"| {arm} | {len(rows)} | {ratio:.1%} | {rows[0]['widths']} | {rows[0]['planes']} | {ms('holdout')} | "
              f"{ms('test')} |")
    if plot is not None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for i, (arm, d) in enumerate(summary.items()):
            xs = [d["binops_ratio"] * 100] * len(d["test"])
            ax.scatter(xs, [100 * t for t in d["test"]], s=18, label=arm, marker="os^vD<>p*hX"[i % 11],
                       color=plt.cm.tab20(i % 20))
        ax.set_xlabel("binops, % of the unpruned network")
        ax.set_ylabel("test accuracy, % (one point per seed)")
        ax.set_title(f"{s['model']} x{s['width']:g}: pruning methods vs controls at equal binops")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        fig.savefig(plot, dpi=120)
        print(f"wrote {plot}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="cnv")
    ap.add_argument("--width", type=float, default=0.125, help="width multiplier of the zoo model")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--track", type=float, default=1.0, help="final epochs in which flips count")
    ap.add_argument("--train-images", type=int, default=20000)
    ap.add_argument("--holdout", type=int, default=5000)
    ap.add_argument("--target", type=float, default=0.5, help="binop target of the flip-target arms")
    ap.add_argument("--finetune-epochs", type=int, default=1)
    ap.add_argument("--plane-drop", type=float, default=1.0, help="noise budget (points) of the plane choice")
    ap.add_argument("--planes-only", action="store_true",
                    help="bit-slice arms for the planes first layer only (skip the integer first layer's four)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", default="build/protocol", help="folder for the base checkpoints")
    ap.add_argument("--out", help="results JSON (resumed when it exists)")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--report", metavar="JSON", help="print the table of a results file")
    ap.add_argument("--plot", metavar="PNG")
    args = ap.parse_args()
    if args.report:
        report(Path(args.report), Path(args.plot) if args.plot else None)
        return
    if not args.out:
        ap.error("--out is required")
    torch.set_num_threads(args.threads)
    protocol = Protocol(args)
    for seed in (int(s) for s in args.seeds.split(",")):
        protocol.run_seed(seed)
    report(protocol.out, None)


if __name__ == "__main__":
    main()
