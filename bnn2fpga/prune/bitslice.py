"""CBNN input bit-slice pruning (docs/bitslice-pruning.md) and ``bnn2fpga prune --method bitslice``.

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

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..checkpoint import Checkpoint
from ..data import Dataset, Split
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


# ------------------------------------------------------------------ a whole run


@dataclass(frozen=True)
class BitsliceOptions:
    """The choices of one bit-slice pruning run (``bnn2fpga prune --method bitslice``), checked by the caller."""

    keep_bits: tuple[int, ...] | None = None  # train every (k, multiplier) for these plane counts; None: search
    max_drop: float = 1.0  # accuracy budget, percentage points below the base
    plane_drop: float | None = None  # choose k by noise sensitivity alone (the paper), within this many points
    multipliers: tuple[float, ...] = DEFAULT_MULTIPLIERS
    epochs: int | None = None  # retraining epochs per candidate; None: the base's
    init: str = "scratch"  # or "inherit": multiplier-1 candidates start from the base
    holdout: int = 0  # select on the last N training images instead of the test set
    sensitivity_draws: int = 5
    seed: int = 0


@dataclass
class BitsliceResult:
    """A finished bit-slice run: every trained candidate, the Pareto rows and the chosen one (if any)."""

    base_checkpoint: Checkpoint
    dataset: str
    parent: str  # where the base checkpoint came from
    options: BitsliceOptions
    config: TrainConfig
    sensitivity: dict[str, Any]
    search: Search
    rows: list[dict[str, Any]]  # the base first, then every trained candidate
    best: Candidate | None  # the smallest candidate within the budget
    base_accuracy: float  # on the selection split
    budget: float
    base_weight_bits: int
    base_binops: int
    limit: int | None = None  # the parent's --limit, which the candidates were trained under too

    @property
    def selection(self) -> str:
        return f"holdout of {self.options.holdout}" if self.options.holdout else "test set"

    @property
    def candidates(self) -> list[Candidate]:
        return self.search.trained

    def checkpoint(self, cand: Candidate) -> Checkpoint:
        """``cand`` as a checkpoint whose pruning record holds the sensitivity analysis and the Pareto rows."""
        from .sensitivity import compact

        assert cand.model is not None
        base_ckpt = self.base_checkpoint
        base_arch = base_ckpt.architecture
        record = {
            "method": "bitslice",
            "widths_before": hidden_widths(base_arch), "widths_after": hidden_widths(cand.arch),
            "planes_before": list(base_arch["input"]["planes"]), "planes_after": list(cand.planes),
            "multiplier": cand.multiplier, "max_drop_pp": float(self.options.max_drop),
            "selection": f"holdout:{self.options.holdout}" if self.options.holdout else "test",
            "init": self.options.init, "parent": self.parent,
            "weight_bits_before": weight_bits(base_arch), "weight_bits_after": cand.weight_bits,
            "binops_before": binops(base_arch), "binops_after": cand.binops,
            "sensitivity": compact(self.sensitivity), "candidates": self.rows,
        }
        test_acc = cand.test_accuracy if cand.test_accuracy is not None else cand.accuracy
        return Checkpoint.from_model(
            cand.model, dataset=self.dataset, pruning=[*base_ckpt.pruning, record],
            metrics={"test_accuracy": test_acc, "selection_accuracy": cand.accuracy},
            training={**self.config.to_dict(),
                      "model": base_ckpt.training.get("model", base_arch.get("name", "bnn")),
                      # candidates never trained on the holdout: a later `prune --holdout N` may decide on it
                      "holdout": int(self.options.holdout),
                      **({"limit": self.limit} if self.limit is not None else {})})

    def save_candidates(self, folder: Path | str) -> None:
        """Every trained candidate as ``k<planes>-m<multiplier>.pt`` in ``folder`` (replacing what is there)."""
        for c in self.candidates:
            self.checkpoint(c).save(Path(folder) / f"k{len(c.planes)}-m{c.multiplier:g}.pt", overwrite=True)


def run(base_ckpt: Checkpoint, ds: Dataset, options: BitsliceOptions, *, parent: str,
        log: Log | None = None) -> BitsliceResult:
    """Sensitivity analysis of ``base_ckpt`` (loaded from ``parent``), then the candidate search on ``ds``.

    ``log`` receives one line per step (the analysis, each candidate trained and its accuracy).
    """
    from .sensitivity import analyse, planes_within

    base = base_ckpt.model()
    planes = list(base.arch["input"]["planes"])
    if options.holdout:
        n = len(ds.train) - options.holdout
        train_split = Split(ds.train.images[:n], ds.train.labels[:n])
        select_split = Split(ds.train.images[n:], ds.train.labels[n:])
    else:
        train_split, select_split = ds.train, ds.test
    recipe = base_ckpt.training
    recorded = recipe.get("limit")
    limit = recorded if isinstance(recorded, int) and not isinstance(recorded, bool) and recorded > 0 else None
    train_split = train_split.head(limit)  # the input's recipe: candidates train on the same images it did
    config = TrainConfig(epochs=options.epochs or int(recipe.get("epochs", 5)),
                         batch_size=int(recipe.get("batch_size", 100)), lr=float(recipe.get("lr", 0.01)),
                         lr_final=float(recipe.get("lr_final", 1e-4)), seed=options.seed)

    if log:
        log(f"sensitivity analysis ({options.sensitivity_draws} draws, {len(select_split)} images)")
    sens = analyse(base, select_split, draws=options.sensitivity_draws, seed=options.seed)
    search = Search(base, train_split, select_split, ds.test if options.holdout else None, config, None,
                    inherit=False, log=log)
    if options.holdout:
        # The base was trained on the holdout images too, so its accuracy there is inflated. The
        # reference is the base's architecture retrained with the same recipe on the reduced training set.
        ref = search.candidate(planes, 1.0)
        search.trained.remove(ref)
        base_acc, base_test = ref.accuracy, ref.test_accuracy
    else:
        base_acc = base_test = sens["baseline"]
    assert base_acc is not None
    budget = base_acc - options.max_drop / 100.0
    search.budget = budget
    search.inherit = options.init == "inherit"
    if options.keep_bits is not None:
        search.grid(options.keep_bits, options.multipliers)
    elif options.plane_drop is not None:
        search.grid([len(planes_within(sens, options.plane_drop))], options.multipliers)
    else:
        search.budgeted(options.multipliers)

    base_cand = Candidate(planes, 1.0, base.arch, accuracy=base_acc, base=True, test_accuracy=base_test)
    bb, bo = base_cand.weight_bits, base_cand.binops
    rows = pareto([base_cand.row(bb, bo, budget)] + [c.row(bb, bo, budget) for c in search.trained])
    best = search.best()
    for r, c in zip(rows[1:], search.trained, strict=True):
        r["chosen"] = c is best
    rows[0]["chosen"] = False
    return BitsliceResult(base_ckpt, ds.name, parent, options, config, sens, search, rows, best, base_acc, budget,
                          bb, bo, limit)
