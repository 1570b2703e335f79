"""CBNN input bit-slice pruning (SEEDS.md method 2) and ``bnn2fpga prune --method bitslice``.

1. Sensitivity analysis of the trained base (:mod:`.sensitivity`): the order in which
   planes go (least significant first, as the paper's cumulative removal) and the
   record that goes into the checkpoint.
2. Data pruning: keep the ``k`` most significant planes, ``k`` given (``--keep-bits``) or
   searched under an accuracy budget (``--max-drop``).
3. Network shrinking: scale every hidden width by a multiplier (``--multipliers``),
   retrain each ``(k, multiplier)`` candidate with the base's recipe, and keep the
   smallest network (fewest binary weights, then fewest binops) within the budget.

Budget search **(ours)**: the paper picks planes by their noise sensitivity alone. A
binary first layer weighs every plane equally (each weight is ±1), so a network
trained on all 8 planes suffers from noise in *any* plane, LSB included, even though
the LSBs carry little information; after retraining without them the loss is small.
So with ``--max-drop`` the number of planes is found by retraining: the fewest planes
(LSB-first removal) whose widest candidate meets the budget; then narrower multipliers
and, while they can still beat the best size, more planes with narrower widths.
``--plane-drop`` restores the paper's noise-only criterion.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data import Split
from ..nn.models import BNN, PRUNABLE, Architecture, binops, hidden_widths, weight_bits
from ..nn.train import TrainConfig, accuracy, seed_everything, train

DEFAULT_MULTIPLIERS = (1.0, 0.75, 0.5, 0.375, 0.25)

Log = Callable[[str], None]


def shrink(arch: Architecture, planes: Sequence[int], multiplier: float) -> Architecture:
    """``arch`` with input planes ``planes`` and every hidden width scaled by ``multiplier`` (at least 1)."""
    if multiplier <= 0:
        raise ValueError(f"width multiplier must be positive, not {multiplier!r}")
    out = copy.deepcopy(arch)
    out["input"]["planes"] = sorted(int(b) for b in planes)
    for layer in out["layers"]:
        if layer["kind"] in PRUNABLE:
            layer["out"] = max(1, round(layer["out"] * multiplier))
    return out


def msb_planes(planes: Sequence[int], k: int) -> list[int]:
    """The ``k`` most significant of ``planes`` (removal goes from the LSB up)."""
    planes = sorted(planes)
    if not 1 <= k <= len(planes):
        raise ValueError(f"can keep 1..{len(planes)} of the planes {planes}, not {k}")
    return planes[len(planes) - k:]


@dataclass
class Candidate:
    planes: list[int]
    multiplier: float
    arch: Architecture
    accuracy: float | None = None  # on the selection split
    test_accuracy: float | None = None
    model: BNN | None = None
    base: bool = False

    @property
    def weight_bits(self) -> int:
        return weight_bits(self.arch)

    @property
    def binops(self) -> int:
        return binops(self.arch)

    def row(self, base_bits: int, base_binops: int, budget: float | None) -> dict[str, Any]:
        return {"planes": self.planes, "k": len(self.planes), "multiplier": self.multiplier,
                "widths": hidden_widths(self.arch), "weight_bits": self.weight_bits, "binops": self.binops,
                "size_reduction": base_bits / self.weight_bits, "binop_reduction": base_binops / self.binops,
                "accuracy": self.accuracy, "test_accuracy": self.test_accuracy, "base": self.base,
                "within_budget": None if budget is None or self.accuracy is None else self.accuracy >= budget}


def pareto(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mark each row ``pareto``: no other row is as small and as accurate with one of the two strictly better."""
    for r in rows:
        r["pareto"] = r["accuracy"] is not None and not any(
            o is not r and o["accuracy"] is not None and o["weight_bits"] <= r["weight_bits"]
            and o["accuracy"] >= r["accuracy"]
            and (o["weight_bits"] < r["weight_bits"] or o["accuracy"] > r["accuracy"]) for o in rows)
    return rows


@dataclass
class Search:
    """One bit-slice pruning search: trains candidates and remembers them all."""

    base: BNN
    train_split: Split
    select_split: Split
    test_split: Split | None
    config: TrainConfig
    budget: float | None  # minimum selection accuracy, None: no budget
    inherit: bool = False
    log: Log | None = None

    def __post_init__(self) -> None:
        self.trained: list[Candidate] = []

    def candidate(self, planes: Sequence[int], multiplier: float) -> Candidate:
        for c in self.trained:
            if c.planes == list(planes) and c.multiplier == multiplier:
                return c
        arch = shrink(self.base.arch, planes, multiplier)
        cand = Candidate(list(planes), multiplier, arch)
        seed_everything(self.config.seed)  # the same initial weights for the same shape, run to run
        if self.inherit and multiplier == 1.0:
            from .planes import remove_planes
            model = remove_planes(self.base, planes)
        else:
            model = BNN(arch)
        label = f"planes {','.join(map(str, planes))} x{multiplier:g}"
        if self.log:
            self.log(f"training {label}: widths {hidden_widths(arch)}, {cand.weight_bits:,} weight bits")
        train(model, self.train_split, self.config, show_progress=False, description=label)
        cand.model = model
        cand.accuracy = accuracy(model, self.select_split)
        cand.test_accuracy = accuracy(model, self.test_split) if self.test_split is not None else None
        if self.log:
            verdict = "" if self.budget is None else (" within budget" if self.ok(cand) else " over budget")
            self.log(f"  {label}: accuracy {100 * cand.accuracy:.2f}%{verdict}")
        self.trained.append(cand)
        return cand

    def ok(self, cand: Candidate) -> bool:
        return self.budget is None or (cand.accuracy is not None and cand.accuracy >= self.budget)

    def best(self) -> Candidate | None:
        fits = [c for c in self.trained if self.ok(c)]
        return min(fits, key=lambda c: (c.weight_bits, c.binops, -(c.accuracy or 0.0))) if fits else None

    def grid(self, ks: Sequence[int], multipliers: Sequence[float]) -> None:
        """Every (k, multiplier): the full Pareto table."""
        planes = self.base.arch["input"]["planes"]
        for k in ks:
            for m in multipliers:
                self.candidate(msb_planes(planes, k), m)

    def budgeted(self, multipliers: Sequence[float], k_start: int = 1) -> None:
        """Fewest planes whose widest candidate fits, then narrower and wider-input candidates that could be smaller."""
        planes = self.base.arch["input"]["planes"]
        ms = sorted(set(multipliers), reverse=True)
        k_fit = None
        for k in range(k_start, len(planes) + 1):
            if self.ok(self.candidate(msb_planes(planes, k), ms[0])):
                k_fit = k
                break
        if k_fit is None:
            return
        for k in range(k_fit, len(planes) + 1):
            best = self.best()
            assert best is not None
            if weight_bits(shrink(self.base.arch, msb_planes(planes, k), ms[-1])) >= best.weight_bits:
                break  # even the narrowest network with this many planes is no smaller
            for m in ms:
                if weight_bits(shrink(self.base.arch, msb_planes(planes, k), m)) >= best.weight_bits:
                    continue
                if not self.ok(self.candidate(msb_planes(planes, k), m)):
                    break  # narrower still will not recover the accuracy
                best = self.best()
                assert best is not None


# ------------------------------------------------------------------ CLI

def _floats(text: str, option: str) -> list[float]:
    from ..cli import UserError
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{option} takes comma-separated numbers, not {text!r}") from None
    if not values or any(not 0 < v <= 1 for v in values):
        raise UserError(f"{option} takes multipliers in (0, 1], e.g. 1,0.75,0.5; got {text!r}")
    return values


def _ints(text: str, option: str, hi: int) -> list[int]:
    from ..cli import UserError
    try:
        values = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise UserError(f"{option} takes comma-separated plane counts, not {text!r}") from None
    if not values or any(not 1 <= v <= hi for v in values):
        raise UserError(f"{option} takes plane counts 1..{hi} (the base keeps {hi} planes); got {text!r}")
    return values


def add_arguments(group: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    group.add_argument("--keep-bits", metavar="K[,K...]",
                       help="keep the K most significant planes per colour channel; a list trains every K "
                            "(default: search under --max-drop)")
    group.add_argument("--max-drop", type=float, default=1.0, metavar="PP",
                       help="accuracy budget in percentage points below the base")
    group.add_argument("--plane-drop", type=float, metavar="PP",
                       help="choose planes by noise sensitivity alone (the paper's criterion, no retraining): "
                            "drop LSB planes while cumulative randomisation costs <= PP")
    group.add_argument("--multipliers", default=",".join(f"{m:g}" for m in DEFAULT_MULTIPLIERS), metavar="LIST",
                       help="hidden-width multipliers to search")
    group.add_argument("--bitslice-epochs", type=int, metavar="N",
                       help="retraining epochs per candidate (default: the base's)")
    group.add_argument("--bitslice-init", choices=("scratch", "inherit"), default="scratch",
                       help="candidates train from a fresh initialisation, or (multiplier 1 only) start from "
                            "the base with the removed planes folded into the first thresholds")
    group.add_argument("--holdout", type=int, default=0, metavar="N",
                       help="select on the last N training images instead of the test set the paper used; "
                            "candidates train on the rest, and so does a retrained copy of the base, the "
                            "reference of the budget (the base itself has seen the holdout)")
    group.add_argument("--sensitivity-draws", type=int, default=5, metavar="N",
                       help="random draws of the sensitivity analysis stored with the result")
    group.add_argument("--save-candidates", metavar="DIR", help="also save every trained candidate here")
    group.add_argument("--pareto-json", metavar="FILE", help="write the Pareto table as JSON")


def run(args: argparse.Namespace) -> None:
    import json

    from rich.table import Table

    from ..checkpoint import CheckpointError
    from ..cli import UserError, console, err_console
    from .sensitivity import analyse, compact, load_matching, planes_within

    out = Path(args.out)
    if out.exists() and not args.force:
        raise CheckpointError(f"{out} already exists; choose another --out or pass --force to replace it")
    if args.max_drop < 0:
        raise UserError(f"--max-drop must be >= 0 percentage points, not {args.max_drop}")
    if args.bitslice_epochs is not None and args.bitslice_epochs < 1:
        raise UserError(f"--bitslice-epochs must be a positive integer, not {args.bitslice_epochs}")
    if args.sensitivity_draws < 1:
        raise UserError(f"--sensitivity-draws must be a positive integer, not {args.sensitivity_draws}")
    multipliers = _floats(args.multipliers, "--multipliers")
    base_ckpt, ds = load_matching(args.checkpoint, args.dataset, args.data)
    base = base_ckpt.model()
    planes = list(base.arch["input"]["planes"])
    ks = _ints(args.keep_bits, "--keep-bits", len(planes)) if args.keep_bits else None
    if not 0 <= args.holdout < len(ds.train):
        raise UserError(f"--holdout must lie in 0..{len(ds.train) - 1}, not {args.holdout}")
    if args.holdout:
        n = len(ds.train) - args.holdout
        train_split = Split(ds.train.images[:n], ds.train.labels[:n])
        select_split = Split(ds.train.images[n:], ds.train.labels[n:])
    else:
        train_split, select_split = ds.train, ds.test
    recipe = base_ckpt.training
    config = TrainConfig(epochs=args.bitslice_epochs or int(recipe.get("epochs", 5)),
                         batch_size=int(recipe.get("batch_size", 100)), lr=float(recipe.get("lr", 0.01)),
                         lr_final=float(recipe.get("lr_final", 1e-4)), seed=args.seed)
    log = None if args.quiet else (lambda m: err_console.print(f"[dim]{m}[/]", highlight=False))

    if log:
        log(f"sensitivity analysis ({args.sensitivity_draws} draws, {len(select_split)} images)")
    sens = analyse(base, select_split, draws=args.sensitivity_draws, seed=args.seed)
    search = Search(base, train_split, select_split, ds.test if args.holdout else None, config, None,
                    inherit=False, log=log)
    if args.holdout:
        # The base was trained on the holdout images too, so its accuracy there is inflated. The
        # reference is the base's architecture retrained with the same recipe on the reduced training set.
        ref = search.candidate(planes, 1.0)
        search.trained.remove(ref)
        base_acc, base_test = ref.accuracy, ref.test_accuracy
    else:
        base_acc = base_test = sens["baseline"]
    assert base_acc is not None
    budget = base_acc - args.max_drop / 100.0
    search.budget = budget
    search.inherit = args.bitslice_init == "inherit"
    if ks is not None:
        search.grid(ks, multipliers)
    elif args.plane_drop is not None:
        search.grid([len(planes_within(sens, args.plane_drop))], multipliers)
    else:
        search.budgeted(multipliers)

    base_cand = Candidate(planes, 1.0, base.arch, accuracy=base_acc, base=True, test_accuracy=base_test)
    bb, bo = base_cand.weight_bits, base_cand.binops
    rows = pareto([base_cand.row(bb, bo, budget)] + [c.row(bb, bo, budget) for c in search.trained])
    best = search.best()
    for r, c in zip(rows[1:], search.trained, strict=True):
        r["chosen"] = c is best
    rows[0]["chosen"] = False

    split_name = f"holdout of {args.holdout}" if args.holdout else "test set"
    table = Table("planes", "widths", "weight bits", "size", "binops", "acc. (%)", "", title=(
        f"bit-slice pruning of {args.checkpoint}: base {100 * base_acc:.2f}% on the {split_name}, "
        f"budget {100 * budget:.2f}%"))
    for r in sorted(rows, key=lambda r: (-r["weight_bits"], r["multiplier"])):
        mark = "chosen" if r["chosen"] else "base" if r["base"] else ("pareto" if r["pareto"] else "")
        if r["within_budget"] is False:
            mark += " over budget" if mark else "over budget"
        table.add_row(",".join(map(str, r["planes"])), ",".join(map(str, r["widths"])), f"{r['weight_bits']:,}",
                      f"{r['size_reduction']:.2f}x", f"{r['binops']:,}", f"{100 * r['accuracy']:.2f}", mark)
    console.print(table)
    if args.pareto_json:
        Path(args.pareto_json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.pareto_json).write_text(json.dumps({"checkpoint": str(args.checkpoint), "dataset": ds.name,
                                                      "selection": split_name, "budget": budget,
                                                      "max_drop_pp": args.max_drop, "rows": rows}, indent=2) + "\n")
    if args.save_candidates:
        for c in search.trained:
            name = f"k{len(c.planes)}-m{c.multiplier:g}.pt"
            _checkpoint(c, base_ckpt, ds.name, config, sens, rows, args, compact).save(
                Path(args.save_candidates) / name, overwrite=True)
    if best is None:
        raise UserError(f"no candidate reached {100 * budget:.2f}% (base {100 * base_acc:.2f}% - {args.max_drop} "
                        "pp); raise --max-drop, add wider --multipliers, keep more planes or train longer "
                        "(--bitslice-epochs)")
    _checkpoint(best, base_ckpt, ds.name, config, sens, rows, args, compact).save(out, overwrite=args.force)
    console.print(f"kept planes {best.planes} with widths {hidden_widths(best.arch)}: "
                  f"{bb / best.weight_bits:.2f}x fewer weight bits, {bo / best.binops:.2f}x fewer binops, "
                  f"accuracy {100 * best.accuracy:.2f}% (base {100 * base_acc:.2f}%); saved {out}")


def _checkpoint(cand: Candidate, base_ckpt: Any, dataset: str, config: TrainConfig, sens: dict[str, Any],
                rows: list[dict[str, Any]], args: argparse.Namespace, compact: Callable[..., dict[str, Any]]) -> Any:
    from ..checkpoint import Checkpoint

    assert cand.model is not None
    base_arch = base_ckpt.architecture
    record = {
        "method": "bitslice",
        "widths_before": hidden_widths(base_arch), "widths_after": hidden_widths(cand.arch),
        "planes_before": list(base_arch["input"]["planes"]), "planes_after": list(cand.planes),
        "multiplier": cand.multiplier, "max_drop_pp": float(args.max_drop),
        "selection": f"holdout:{args.holdout}" if args.holdout else "test",
        "init": args.bitslice_init, "parent": str(args.checkpoint),
        "weight_bits_before": weight_bits(base_arch), "weight_bits_after": cand.weight_bits,
        "binops_before": binops(base_arch), "binops_after": cand.binops,
        "sensitivity": compact(sens), "candidates": rows,
    }
    test_acc = cand.test_accuracy if cand.test_accuracy is not None else cand.accuracy
    return Checkpoint.from_model(
        cand.model, dataset=dataset, pruning=[*base_ckpt.pruning, record],
        metrics={"test_accuracy": test_acc, "selection_accuracy": cand.accuracy},
        training={**config.to_dict(), "model": base_ckpt.training.get("model", base_arch.get("name", "bnn"))})
