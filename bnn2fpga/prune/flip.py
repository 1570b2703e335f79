"""Pruning guided by weight-flipping frequency (Li & Ren, ISQED 2020; docs/flip-pruning.md).

One round:

1. count sign flips of every binary weight over the final interval of a training
   run (:mod:`bnn2fpga.prune.flips`); weights flipping more than ``tau`` times are
   *insensitive*, ``p_l`` is their fraction in hidden layer l;
2. new width ``round(C_l * (1 - s * p_l))``, ``s = 1`` as published, or the global
   factor ``s`` that meets a binop target **(ours)**;
3. ``shrink-retrain`` (as published): build the narrower network and train it from
   scratch with the input checkpoint's recipe; ``remove-finetune`` **(ours)**:
   remove the channels holding the most insensitive weights (exactly, see
   :mod:`bnn2fpga.prune.channels`) and fine-tune the survivors;
4. the (re)training counts flips again, which drive the next round. Rounds stop
   when the largest ``p_l`` stops falling or the accuracy budget is spent.

The input checkpoint's flips come from its pruning history when a flip run
recorded them; otherwise a short tracking pass fine-tunes a copy at a low
learning rate (the regime of the published "after the last learning-rate
drop" interval) and counts there.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import data as datasets
from ..checkpoint import Checkpoint, load
from ..data import Dataset, Split
from ..errors import UserError
from ..nn.models import BNN, Architecture, binops, hidden_widths, require_chain, weight_bits
from ..nn.train import TrainConfig, accuracy, seed_everything, train
from .channels import choose_fill, remove_channels
from .flips import FlipStats, FlipTracker

MODES = ("shrink-retrain", "remove-finetune")
CRITERIA = ("flip", "random", "magnitude")

Log = Callable[[str], None]


@dataclass(frozen=True)
class FlipConfig:
    """Every choice of the method, with its default; serialised into the pruning record."""

    tau: int = 0  # a weight is insensitive when it flips more than tau times (published: 0)
    interval: float = 1.0  # final epochs of each training run in which flips count
    per_iteration: bool = False  # compare signs after every optimiser step instead of every epoch
    binop_target: float | None = None  # fraction of the input's binops to keep after all rounds
    mode: str = "shrink-retrain"
    rounds: int = 1
    retrain_epochs: int | None = None  # None: the recipe's epochs (shrink-retrain) or 2 (remove-finetune)
    finetune_lr: float = 1e-3  # start of the cosine schedule when fine-tuning (remove-finetune)
    track_epochs: int = 1  # tracking pass on an input without recorded flips
    track_lr: float = 1e-3
    accuracy_budget: float = 0.01  # stop when test accuracy falls more than this below the input's
    exempt_last: bool = False  # keep the last hidden layer's width
    min_keep: float = 0.0  # (ours) every layer keeps at least this fraction of its width (0: one channel)
    holdout: int = 0  # judge the accuracy budget on the last N training images (never trained on) instead of test
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if not 0 <= self.min_keep < 1:
            raise ValueError(f"min_keep must be a fraction in [0, 1), not {self.min_keep}")
        if self.tau < 0:
            raise ValueError(f"tau must be a non-negative integer, not {self.tau}")
        if not self.interval > 0:
            raise ValueError(f"interval must be a positive number of epochs, not {self.interval}")
        if self.binop_target is not None and not 0 < self.binop_target <= 1:
            raise ValueError(f"binop target must be a fraction in (0, 1], not {self.binop_target}")
        if self.rounds < 1:
            raise ValueError(f"rounds must be at least 1, not {self.rounds}")
        if self.retrain_epochs is not None and self.retrain_epochs < 1:
            raise ValueError(f"retrain epochs must be at least 1, not {self.retrain_epochs}")
        if self.accuracy_budget < 0:
            raise ValueError(f"accuracy budget must be non-negative, not {self.accuracy_budget}")
        if self.track_epochs < 1:
            raise ValueError(f"track epochs must be at least 1, not {self.track_epochs}")
        if self.holdout < 0:
            raise ValueError(f"holdout must be a non-negative number of images, not {self.holdout}")

    @property
    def counting(self) -> str:
        return "iteration" if self.per_iteration else "epoch"


# ------------------------------------------------------------------ widths


def shrink_widths(widths: Sequence[int], p: Sequence[float], scale: float = 1.0, min_keep: float = 0.0) -> list[int]:
    """``round(C_l * (1 - scale * p_l))``, at least ``ceil(min_keep * C_l)`` and 1 channel per layer."""
    return [max(1, math.ceil(min_keep * c), min(c, round(c * (1.0 - min(1.0, scale * q)))))
            for c, q in zip(widths, p, strict=True)]


def with_widths(arch: Architecture, widths: Sequence[int]) -> Architecture:
    out = copy.deepcopy(arch)
    hidden = [spec for spec in out["layers"] if spec["kind"] in ("conv", "dense")]
    for spec, w in zip(hidden, widths, strict=True):
        spec["out"] = int(w)
    return out


def widths_for_target(arch: Architecture, p: Sequence[float], target_binops: float,
                      min_keep: float = 0.0) -> tuple[list[int], float]:
    """The widths (and global factor s) whose binops come closest to ``target_binops`` from above if possible.

    Binops fall monotonically with s, so a bisection finds the smallest s meeting the
    target; if even s large enough to cut every layer with p_l > 0 to its floor (one channel,
    or ``min_keep`` of its width) misses it, that extreme is returned.
    """
    widths = hidden_widths(arch)
    if not any(q > 0 for q in p):
        return list(widths), 0.0
    hi = 1.0 / min(q for q in p if q > 0)  # beyond this every such layer is at 1 channel

    def cost(s: float) -> int:
        return binops(with_widths(arch, shrink_widths(widths, p, s, min_keep)))

    if cost(hi) > target_binops:
        return shrink_widths(widths, p, hi, min_keep), hi
    lo = 0.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if cost(mid) > target_binops:
            lo = mid
        else:
            hi = mid
    return shrink_widths(widths, p, hi, min_keep), hi


# ------------------------------------------------------------------ channel choice


def channel_scores(model: BNN, criterion: str, *, stats: FlipStats | None = None, tau: int = 0,
                   rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Per hidden layer a score per output channel; the highest-scoring channels are removed first.

    ``flip``: the number of insensitive weights in the channel (ours, docs/flip-pruning.md, step 5);
    ``random``: a random permutation (baseline); ``magnitude``: minus the mean |latent
    weight| of the channel, so the smallest go first (baseline).
    """
    layers = model.binary_layers()[:-1]  # the output layer keeps its classes
    if criterion == "flip":
        if stats is None:
            raise ValueError("the flip criterion needs flip statistics")
        return [c.numpy().astype(np.float64) for c in stats.per_channel(tau)[:len(layers)]]
    if criterion == "random":
        rng = rng or np.random.default_rng(0)
        return [rng.permutation(m.weight.shape[0]).astype(np.float64) for _, m in layers]
    if criterion == "magnitude":
        return [-m.weight.detach().abs().reshape(m.weight.shape[0], -1).mean(1).double().numpy() for _, m in layers]
    raise ValueError(f"criterion must be one of {', '.join(CRITERIA)}, not {criterion!r}")


def select_removal(scores: Sequence[np.ndarray], widths_after: Sequence[int]) -> dict[int, list[int]]:
    """Per layer, the ``C_l - width_l`` channels with the highest score (ties: the lower index stays)."""
    removed = {}
    for layer, (s, keep) in enumerate(zip(scores, widths_after, strict=True)):
        drop = len(s) - keep
        if drop > 0:
            order = sorted(range(len(s)), key=lambda c: (-s[c], -c))  # score descending, then higher index
            removed[layer] = sorted(order[:drop])
    return removed


# ------------------------------------------------------------------ training with tracking


def recipe(training: dict[str, Any], seed: int) -> TrainConfig:
    """The input checkpoint's training recipe (defaults where it recorded none)."""
    base = TrainConfig()
    fields = {k: training[k] for k in ("epochs", "batch_size", "lr", "lr_final", "weight_decay")
              if isinstance(training.get(k), int | float)}
    return replace(base, **fields, seed=seed)


def train_tracked(model: BNN, split: Split, config: TrainConfig, flip: FlipConfig, *,
                  test_split: Split | None = None, show_progress: bool = True,
                  description: str = "train") -> tuple[FlipStats, float | None]:
    """Train ``model`` in place with a flip tracker on the final interval; the stats and test accuracy."""
    steps = (len(split) + config.batch_size - 1) // config.batch_size
    tracker = FlipTracker(model, epochs=config.epochs, steps_per_epoch=steps, interval=flip.interval,
                          mode=flip.counting)
    train(model, split, config, on_epoch=[tracker.on_epoch], on_iteration=[tracker.on_iteration],
          show_progress=show_progress, description=description)
    acc = accuracy(model, test_split) if test_split is not None else None
    return tracker.stats(), acc


def track_flips(model: BNN, split: Split, base: TrainConfig, flip: FlipConfig, *,
                show_progress: bool = True) -> tuple[FlipStats, BNN]:
    """The tracking pass: fine-tune a copy at ``track_lr`` for ``track_epochs``, counting flips throughout."""
    tracked = copy.deepcopy(model)
    config = replace(base, epochs=flip.track_epochs, lr=flip.track_lr, seed=flip.seed)
    pass_config = replace(flip, interval=min(flip.interval, float(flip.track_epochs)))
    stats, _ = train_tracked(tracked, split, config, pass_config, show_progress=show_progress,
                             description="count flips")
    return stats, tracked


def stats_matching(pruning: Sequence[dict[str, Any]], model: BNN) -> FlipStats | None:
    """Flip counts recorded by an earlier flip run whose shapes fit ``model``'s weights."""
    for record in reversed(pruning):
        stats = FlipStats.from_record(record)
        if stats is None:
            continue
        return stats if _fits(stats, model) else None
    return None


def _fits(stats: FlipStats, model: BNN) -> bool:
    return [tuple(c.shape) for c in stats.counts] == [tuple(m.weight.shape) for _, m in model.binary_layers()]


def recorded_flips(ckpt: Checkpoint, model: BNN) -> tuple[FlipStats, str] | None:
    """The flips a checkpoint carries and where they come from: the last flip-pruning run, else the
    final epochs of its own training (``train --track-flips``); None when it has none for these weights."""
    if ckpt.pruning:
        stats = stats_matching(ckpt.pruning, model)
        return None if stats is None else (stats, "checkpoint (the last flip-pruning run's retraining)")
    record = ckpt.training.get("flips")
    if isinstance(record, dict):
        stats = FlipStats.from_record(record)
        if stats is not None and _fits(stats, model):
            return stats, (f"training (last {record.get('interval', '?')} epoch(s), {stats.checks} "
                           f"{stats.mode} checks)")
    return None


def selection_splits(ckpt: Checkpoint, ds: Dataset, holdout: int) -> tuple[Split, Split, Split | None]:
    """(train, select, report): retraining data, the split that decides, and the test split when it only
    reports. A holdout must be images the input checkpoint never trained on (``train --holdout``)."""
    if not holdout:
        return ds.train, ds.test, None
    unseen = int(ckpt.training.get("holdout", 0) or 0)
    if holdout > unseen:
        raise UserError(f"--holdout {holdout}: the input was trained on {'all' if not unseen else 'some'} of the "
                        f"last {holdout} training images, so its accuracy there means nothing; train it with "
                        f"`bnn2fpga train --holdout {holdout}` (it has {unseen} held out)")
    if holdout >= len(ds.train):
        raise UserError(f"--holdout {holdout} leaves no training images ({len(ds.train)} in {ds.name})")
    n = len(ds.train) - holdout
    return (Split(ds.train.images[:n], ds.train.labels[:n]), Split(ds.train.images[n:], ds.train.labels[n:]),
            ds.test)


# ------------------------------------------------------------------ rounds


@dataclass
class Round:
    index: int
    widths: list[int]
    p: list[float]  # the p_l that decided these widths (of the previous network)
    binops: int
    weight_bits: int
    accuracy: float | None
    scale: float = 1.0
    p_after: list[float] = field(default_factory=list)  # p_l of this network's own training
    test_accuracy: float | None = None  # reported only, when ``accuracy`` is on a holdout

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Outcome:
    model: BNN
    rounds: list[Round]
    stats: FlipStats  # flips of the returned model's own (re)training
    stop_reason: str


def prune_once(model: BNN, stats: FlipStats, flip: FlipConfig, split: Split, base: TrainConfig, *,
               target_binops: float | None, criterion: str = "flip", test_split: Split | None = None,
               show_progress: bool = True, description: str = "retrain",
               widths: Sequence[int] | None = None) -> tuple[BNN, FlipStats, float | None, list[float], float]:
    """One round: widths from p_l, then shrink-retrain or remove-finetune. New model, its flips, its accuracy."""
    arch = model.arch
    p = layer_p(stats, flip, len(hidden_widths(arch)))
    scale = 1.0
    if widths is None:
        if target_binops is not None:
            widths, scale = widths_for_target(arch, p, target_binops, flip.min_keep)
        else:
            widths = shrink_widths(hidden_widths(arch), p, min_keep=flip.min_keep)
    widths = list(widths)
    if flip.mode == "shrink-retrain":
        seed_everything(flip.seed)  # the new network's initial weights come from the seed
        pruned = BNN(with_widths(arch, widths))
        epochs = flip.retrain_epochs or base.epochs
        config = replace(base, epochs=epochs, seed=flip.seed)
    else:
        scores = channel_scores(model, criterion, stats=stats, tau=flip.tau, rng=np.random.default_rng(flip.seed))
        removal = select_removal(scores, widths)
        sample = split.images[:2000]
        pruned = remove_channels(model, removal, choose_fill(model, removal, sample))
        config = replace(base, epochs=flip.retrain_epochs or 2, lr=flip.finetune_lr, seed=flip.seed)
    new_stats, acc = train_tracked(pruned, split, config, flip, test_split=test_split,
                                   show_progress=show_progress, description=description)
    return pruned, new_stats, acc, p, scale


def layer_p(stats: FlipStats, flip: FlipConfig, hidden: int) -> list[float]:
    """``p_l`` of each hidden layer (the output layer is never pruned), 0 for an exempt last layer."""
    p = stats.fractions(flip.tau)[:hidden]
    if flip.exempt_last and p:
        p[-1] = 0.0
    return p


def prune(model: BNN, stats: FlipStats, flip: FlipConfig, split: Split, base: TrainConfig, *,
          test_split: Split | None, base_accuracy: float | None, show_progress: bool = True,
          on_round: Callable[[Round], None] | None = None, report_split: Split | None = None) -> Outcome:
    """All rounds of flip pruning from ``model`` (with its flip ``stats``).

    ``test_split`` decides (the accuracy budget); ``report_split``, when given, is only measured."""
    start_binops = binops(model.arch)
    rounds: list[Round] = []
    current, current_stats = model, stats
    reason = f"{flip.rounds} round{'s' if flip.rounds > 1 else ''} done"
    for r in range(1, flip.rounds + 1):
        target = None if flip.binop_target is None else start_binops * flip.binop_target ** (r / flip.rounds)
        p_now = layer_p(current_stats, flip, len(hidden_widths(current.arch)))
        if target is None and shrink_widths(hidden_widths(current.arch), p_now) == hidden_widths(current.arch):
            reason = (f"round {r}: every p_l rounds to the same width (p_l = {[round(q, 4) for q in p_now]}); "
                      "nothing to prune — lower --tau, lengthen --interval or pass --binop-target")
            break
        candidate, cand_stats, acc, p, scale = prune_once(
            current, current_stats, flip, split, base, target_binops=target, test_split=test_split,
            show_progress=show_progress, description=f"round {r}/{flip.rounds} {flip.mode}")
        row = Round(r, hidden_widths(candidate.arch), p, binops(candidate.arch), weight_bits(candidate.arch), acc,
                    scale, layer_p(cand_stats, flip, len(hidden_widths(candidate.arch))),
                    accuracy(candidate, report_split) if report_split is not None else None)
        over_budget = acc is not None and base_accuracy is not None and acc < base_accuracy - flip.accuracy_budget
        if over_budget and rounds:
            reason = f"round {r} fell below the accuracy budget ({acc:.4f}); kept round {r - 1}"
            if on_round is not None:
                on_round(row)
            break
        rounds.append(row)
        if on_round is not None:
            on_round(row)
        previous_widths = hidden_widths(current.arch)
        current, current_stats = candidate, cand_stats
        if over_budget:
            reason = f"round 1 already exceeds the accuracy budget ({acc:.4f}); kept it anyway"
            break
        if r < flip.rounds and max(row.p_after, default=0.0) >= max(p, default=0.0):
            reason = f"largest p_l stopped falling after round {r}"
            break
        if row.widths == previous_widths and flip.binop_target is None:
            reason = f"widths stopped changing after round {r}"
            break
    return Outcome(current, rounds, current_stats, reason)


def pruning_record(flip: FlipConfig, before: Architecture, outcome: Outcome, *, source: str,
                   input_stats: FlipStats, base_accuracy: float | None) -> dict[str, Any]:
    """The checkpoint's pruning record: plain values and tensors (loaded with ``weights_only=True``)."""
    after = outcome.model.arch
    record: dict[str, Any] = {
        "method": "flip",
        "widths_before": hidden_widths(before), "widths_after": hidden_widths(after),
        "binops_before": binops(before), "binops_after": binops(after),
        "weight_bits_before": weight_bits(before), "weight_bits_after": weight_bits(after),
        "accuracy_before": base_accuracy,
        "accuracy_after": outcome.rounds[-1].accuracy if outcome.rounds else base_accuracy,
        "config": {k: v for k, v in asdict(flip).items()},
        "flip_source": source,
        "input_p": input_stats.fractions(flip.tau),
        "rounds": [r.to_dict() for r in outcome.rounds],
        "stop_reason": outcome.stop_reason,
        "flip_histograms": [np.bincount(c.reshape(-1).numpy()).tolist() for c in outcome.stats.counts],
    }
    record.update(outcome.stats.to_record(saturate=True))
    return record


# ------------------------------------------------------------------ a whole run


def layer_names(arch: Architecture) -> list[str]:
    """conv0, conv1, dense0, ...: the names the IR and the hardware report use."""
    counts: dict[str, int] = {}
    names = []
    for spec in arch["layers"]:
        if spec["kind"] in ("conv", "dense"):
            names.append(f"{spec['kind']}{counts.get(spec['kind'], 0)}")
            counts[spec["kind"]] = counts.get(spec["kind"], 0) + 1
    return names


def load_inputs(checkpoint: Path | str, dataset: str | None,
                data_dir: Path | str | None) -> tuple[Checkpoint, Dataset]:
    """The checkpoint to prune and its dataset (default: the one it was trained on), refusing a dataset of
    another image shape or class count."""
    ckpt = load(checkpoint)
    require_chain(ckpt.architecture, "flip pruning")
    ds = datasets.load(datasets.dataset_of(dataset, ckpt.dataset), data_dir)
    datasets.require_fit(ckpt.architecture, ds, str(checkpoint), ckpt.dataset)
    return ckpt, ds


@dataclass
class FlipResult:
    """A finished flip-pruning run: the pruned checkpoint (not saved yet) and what decided it."""

    checkpoint: Checkpoint
    outcome: Outcome
    base: Round  # the input network as round 0: widths, p_l of its flips, binops, test accuracy
    layer_names: list[str]  # of the input's hidden layers
    record: dict[str, Any]  # the pruning record appended to the checkpoint's history


def run(ckpt: Checkpoint, ds: Dataset, flip: FlipConfig, *, parent: str, show_progress: bool = True,
        log: Log | None = None) -> FlipResult:
    """Flip-prune ``ckpt`` (loaded from ``parent``) on ``ds``; ``log`` receives one line per step and round."""
    if binops(ckpt.architecture) < 50_000_000:
        # Small models: two spinning OpenMP workers on a shared 2-core box are far slower than one.
        torch.set_num_threads(1)
    model = ckpt.model()
    base = recipe(ckpt.training, flip.seed)
    fit, select, report = selection_splits(ckpt, ds, flip.holdout)
    limit = ckpt.training.get("limit")
    fit = fit.head(int(limit) if isinstance(limit, int) else None)  # the input's recipe: the same images
    base_acc = accuracy(model, select)
    found = recorded_flips(ckpt, model)
    if found is None:
        source = f"tracking pass ({flip.track_epochs} epoch(s) at lr {flip.track_lr})"
        if log:
            log(f"counting weight flips: {source}, per {flip.counting}")
        stats, _ = track_flips(model, fit, base, flip, show_progress=show_progress)
    else:
        stats, source = found
        if log:
            log(f"weight flips from the {source}")
    names = layer_names(model.arch)
    widths0 = hidden_widths(model.arch)
    base_row = Round(0, widths0, layer_p(stats, flip, len(widths0)), binops(model.arch), weight_bits(model.arch),
                     base_acc, test_accuracy=accuracy(model, report) if report is not None else None)
    where = f"holdout ({flip.holdout} images)" if flip.holdout else "test"

    def accuracies(row: Round) -> str:
        acc = "-" if row.accuracy is None else f"{row.accuracy:.4f}"
        return f"{where} accuracy {acc}" + ("" if row.test_accuracy is None else f", test {row.test_accuracy:.4f}")

    if log:
        log(f"input: widths {widths0}, {base_row.binops:,} binops, {accuracies(base_row)}; "
            f"p_l (tau={flip.tau}) = {[round(q, 3) for q in base_row.p]}")

    def on_round(row: Round) -> None:
        if log:
            log(f"round {row.index}: widths {row.widths}, {row.binops:,} binops "
                f"({row.binops / base_row.binops:.0%}), {accuracies(row)}")

    outcome = prune(model, stats, flip, fit, base, test_split=select, base_accuracy=base_acc,
                    show_progress=show_progress, on_round=on_round, report_split=report)
    record = pruning_record(flip, model.arch, outcome, source=source, input_stats=stats, base_accuracy=base_acc)
    record["selection"] = "test"
    if report is not None:
        record["selection"] = f"holdout:{flip.holdout}"
        record["test_accuracy_before"] = base_row.test_accuracy
        record["test_accuracy_after"] = outcome.rounds[-1].test_accuracy if outcome.rounds else base_row.test_accuracy
    training = {**base.to_dict(), "model": ckpt.training.get("model", ckpt.architecture.get("name")),
                "pruned_from": parent, **({"limit": limit} if isinstance(limit, int) else {})}
    metrics = ({"test_accuracy": record["test_accuracy_after"], "selection_accuracy": record["accuracy_after"]}
               if report is not None else {"test_accuracy": record["accuracy_after"]})
    if flip.holdout:
        training["holdout"] = flip.holdout
    result = Checkpoint.from_model(outcome.model, dataset=ckpt.dataset, pruning=[*ckpt.pruning, record],
                                   metrics=metrics, training=training)
    return FlipResult(result, outcome, base_row, names[:len(widths0)], record)
