"""`bnn2fpga prune`: prune a trained checkpoint (flip frequency or input bit slices)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from ...errors import UserError
from ..common import SEED_MAX, check_output, console, err_console, floats, integer, ints, real

if TYPE_CHECKING:
    from rich.table import Table

    from ...prune.flip import Round

NAME = "prune"


def add_arguments(sub: Any) -> argparse.ArgumentParser:
    """This command's parser, its arguments and its handler, on the subcommand table ``sub``."""
    from ...data import DATASETS
    from ...prune import METHODS

    p = sub.add_parser(NAME, help="prune a trained checkpoint (flip frequency or input bit slices)",
                       description="Prune a checkpoint with one of the two seed methods and retrain. "
                                   "--method flip: weight-flipping frequency (Li & Ren, ISQED 2020); "
                                   "--method bitslice: bit-level sensitivity and input plane pruning "
                                   "(CBNN, Neurocomputing 2020). See docs/ for the reproductions.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("checkpoint", help="trained checkpoint to prune")
    p.add_argument("--method", choices=sorted(METHODS), required=True)
    p.add_argument("--out", required=True, help="pruned checkpoint to write")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--dataset", choices=DATASETS, default=None,
                   help="default: the one the checkpoint was trained on")
    p.add_argument("--data", metavar="DIR", help="dataset folder")
    p.add_argument("--seed", type=integer(0, SEED_MAX), default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _selection_arguments(p.add_argument_group("which images decide (both methods)"))
    _bitslice_arguments(p.add_argument_group("--method bitslice"))
    _flip_arguments(p.add_argument_group("--method flip"))
    p.set_defaults(func=run)
    return p


#: The holdout ``prune --method bitslice`` decides on unless told otherwise (capped to a fifth of the
#: training set, for small data sets).
DEFAULT_HOLDOUT = 5000


def run(args: argparse.Namespace) -> None:
    if args.select_on_test and args.holdout is not None:
        raise UserError("--holdout and --select-on-test choose different splits to decide on; give one")
    if args.method == "flip":
        _prune_flip(args)
    else:
        _prune_bitslice(args)


def _flip_holdout(args: argparse.Namespace, training: dict[str, Any]) -> int:
    """The images flip pruning decides on: --holdout, else the input's own held-out images; 0: the test set."""
    if args.select_on_test:
        return 0
    if args.holdout is not None:
        return int(args.holdout)
    unseen = int(training.get("holdout", 0) or 0)
    if unseen:
        return unseen
    raise UserError(f"{escape(str(args.checkpoint))} was trained on every training image, so no held-out images "
                    "are left to decide on (prune decides on a holdout, never the test set, unless told). Train "
                    "the input with `bnn2fpga train --holdout 5000 ...` and prune that, or pass --select-on-test "
                    "to decide on the test set as the papers did (the pruned checkpoint's record then says "
                    "\"selection: test\")")


def _bitslice_holdout(args: argparse.Namespace, train_images: int) -> int:
    """The images bit-slice pruning decides on: --holdout, else DEFAULT_HOLDOUT; 0: the test set."""
    if args.select_on_test:
        return 0
    holdout = int(args.holdout) if args.holdout is not None else min(DEFAULT_HOLDOUT, train_images // 5)
    from ...data import check_holdout

    check_holdout(holdout, train_images)
    return holdout


def _prune_flip(args: argparse.Namespace) -> None:
    from ...prune.flip import FlipConfig, load_inputs, run

    check_output(args.out, args.force)
    ckpt, ds = load_inputs(args.checkpoint, args.dataset, args.data)
    holdout = _flip_holdout(args, ckpt.training)
    try:
        flip = FlipConfig(tau=args.tau, interval=args.interval, per_iteration=args.per_iteration,
                          binop_target=args.binop_target, mode=args.mode, rounds=args.rounds,
                          retrain_epochs=args.retrain_epochs, finetune_lr=args.finetune_lr,
                          track_epochs=args.track_epochs, track_lr=args.track_lr,
                          accuracy_budget=args.accuracy_budget / 100, exempt_last=args.exempt_last,
                          min_keep=args.min_keep,
                          holdout=holdout, seed=args.seed)
    except ValueError as e:
        raise UserError(f"--method flip: {e}") from None
    result = run(ckpt, ds, flip, parent=str(args.checkpoint), show_progress=not args.quiet,
                 log=lambda m: console.print(escape(m)))
    console.print(_flip_round_table(result.outcome.rounds, result.base, result.layer_names))
    console.print(f"stopped: {result.outcome.stop_reason}")
    result.checkpoint.save(args.out, overwrite=args.force)
    record = result.record
    console.print(f"binops {record['binops_before']:,} -> {record['binops_after']:,} "
                  f"({1 - record['binops_after'] / record['binops_before']:.1%} fewer), weight bits "
                  f"{record['weight_bits_before']:,} -> {record['weight_bits_after']:,}; "
                  f"{'holdout' if holdout else 'test'} accuracy {result.base.accuracy:.4f} -> "
                  f"{record['accuracy_after']:.4f}"
                  + (f" (test {record['test_accuracy_before']:.4f} -> {record['test_accuracy_after']:.4f})"
                     if holdout else "") + f"; saved {escape(str(args.out))}")


def _flip_round_table(rounds: Sequence[Round], base: Round, layer_names: Sequence[str]) -> Table:
    """One column per round (layers down the side, so it stays narrow): width and p_l per layer, then totals."""
    from rich.table import Table

    columns = [base, *rounds]
    table = Table("layer", *("input" if r is base else f"round {r.index}" for r in columns), title="flip pruning")
    for i, name in enumerate(layer_names):
        cells = []
        for r in columns:
            # p_l of each network's own flips: the input's decided round 1, round k's decides round k+1.
            p = r.p if r is base else r.p_after
            cells.append(f"{r.widths[i]}  p={p[i]:.3f}" if i < len(p) else str(r.widths[i]))
        table.add_row(name, *cells)
    table.add_row("binops", *(f"{r.binops:,}" + ("" if r is base else f" ({r.binops / base.binops:.0%})")
                              for r in columns))
    table.add_row("weight bits", *(f"{r.weight_bits:,}" for r in columns))
    held_out = base.test_accuracy is not None  # then ``accuracy`` is on the holdout and decided
    table.add_row("holdout acc" if held_out else "test acc",
                  *("-" if r.accuracy is None else f"{r.accuracy:.4f}" for r in columns))
    if held_out:
        table.add_row("test acc", *("-" if r.test_accuracy is None else f"{r.test_accuracy:.4f}" for r in columns))
    table.caption = "width and p_l (fraction of weights flipping more than tau times) per hidden layer"
    return table


def _prune_bitslice(args: argparse.Namespace) -> None:
    from rich.table import Table

    from ...nn.models import hidden_widths
    from ...prune.bitslice import BitsliceOptions, run
    from ...prune.sensitivity import load_matching

    out = Path(args.out)
    check_output(out, args.force)
    if args.pareto_json:
        check_output(args.pareto_json, args.force, option="--pareto-json")
    multipliers = floats(args.multipliers, "--multipliers")
    base_ckpt, ds = load_matching(args.checkpoint, args.dataset, args.data)
    planes = base_ckpt.architecture["input"]["planes"]
    ks = ints(args.keep_bits, "--keep-bits", len(planes)) if args.keep_bits else None
    holdout = _bitslice_holdout(args, len(ds.train))
    options = BitsliceOptions(keep_bits=tuple(ks) if ks is not None else None, max_drop=args.max_drop,
                              plane_drop=args.plane_drop, multipliers=tuple(multipliers),
                              epochs=args.bitslice_epochs, init=args.bitslice_init, holdout=holdout,
                              sensitivity_draws=args.sensitivity_draws, seed=args.seed)
    log = None if args.quiet else (lambda m: err_console.print(f"[dim]{m}[/]", highlight=False))
    result = run(base_ckpt, ds, options, parent=str(args.checkpoint), log=log)

    base_acc, budget, rows, best = result.base_accuracy, result.budget, result.rows, result.best
    table = Table("planes", "widths", "weight bits", "size", "binops", "acc. (%)", "", title=(
        f"bit-slice pruning of {args.checkpoint}: base {100 * base_acc:.2f}% on the {result.selection}, "
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
                                                      "selection": result.selection, "budget": budget,
                                                      "max_drop_pp": args.max_drop, "rows": rows}, indent=2) + "\n")
    if args.save_candidates:
        result.save_candidates(args.save_candidates)
    if best is None:
        raise UserError(f"no candidate reached {100 * budget:.2f}% (base {100 * base_acc:.2f}% - {args.max_drop} "
                        "pp); raise --max-drop, add wider --multipliers, keep more planes or train longer "
                        "(--bitslice-epochs)")
    result.checkpoint(best).save(out, overwrite=args.force)
    console.print(f"kept planes {best.planes} with widths {hidden_widths(best.arch)}: "
                  f"{result.base_weight_bits / best.weight_bits:.2f}x fewer weight bits, "
                  f"{result.base_binops / best.binops:.2f}x fewer binops, "
                  f"accuracy {100 * best.accuracy:.2f}% (base {100 * base_acc:.2f}%); saved {out}")


def _flip_arguments(group: argparse._ArgumentGroup) -> None:
    from ...prune.flip import MODES, FlipConfig

    d = FlipConfig()
    group.add_argument("--tau", type=integer(0), default=d.tau,
                       help="a weight is insensitive when it flips more than TAU times in the interval")
    group.add_argument("--interval", type=real(0), default=d.interval, metavar="EPOCHS",
                       help="count flips over the final EPOCHS epochs of each training run "
                            "(fractions count with --per-iteration)")
    group.add_argument("--per-iteration", action="store_true",
                       help="compare weight signs after every optimiser step, not every epoch")
    group.add_argument("--binop-target", type=real(0, 1), metavar="FRACTION",
                       help="keep this fraction of the input's binary operations (e.g. 0.7), by scaling every "
                            "p_l with one global factor; default: widths round(C*(1-p)) as published")
    group.add_argument("--mode", choices=MODES, default=d.mode,
                       help="shrink-retrain: narrower net trained from scratch (published); remove-finetune: "
                            "remove the channels with most insensitive weights and fine-tune (ours)")
    group.add_argument("--rounds", type=integer(), default=d.rounds, help="maximum pruning rounds")
    group.add_argument("--retrain-epochs", type=integer(), metavar="N",
                       help="epochs per round (default: the checkpoint's recipe for shrink-retrain, "
                            "2 for remove-finetune)")
    group.add_argument("--finetune-lr", type=real(0, 10), default=d.finetune_lr, metavar="LR",
                       help="initial learning rate of remove-finetune rounds (cosine-decayed)")
    group.add_argument("--track-epochs", type=integer(), default=d.track_epochs, metavar="N",
                       help="epochs of the low-rate flip-counting pass, when the input has no recorded flips")
    group.add_argument("--track-lr", type=real(0, 10), default=d.track_lr, metavar="LR",
                       help="learning rate of that pass")
    group.add_argument("--accuracy-budget", type=real(0, 100, lo_open=False), default=d.accuracy_budget * 100,
                       metavar="PP",
                       help="stop when accuracy (on the images that decide) drops more than PP percentage points "
                            "below the input's")
    group.add_argument("--exempt-last", action="store_true", help="never prune the last hidden layer")
    group.add_argument("--min-keep", type=real(0, 1, lo_open=False, hi_open=True), default=0.0, metavar="FRACTION",
                       help="(ours) every hidden layer keeps at least this fraction of its width; with "
                            "--binop-target, one global factor on p_l can otherwise cut a layer to one channel "
                            "(seen on nin)")


def _selection_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--holdout", type=integer(1), default=None, metavar="N",
                       help="decide on the last N training images; retraining uses the rest. "
                            f"bitslice: default {DEFAULT_HOLDOUT} (a fifth of a smaller training set), and a copy "
                            "of the base retrained without them is the budget's reference; flip: default the "
                            "images the input was trained without (`train --holdout N`), which it must have")
    group.add_argument("--select-on-test", action="store_true",
                       help="decide on the test set, as the papers did; the test accuracy then "
                            "chose the result, and the pruned checkpoint's record says \"selection: test\"")


def _bitslice_arguments(group: argparse._ArgumentGroup) -> None:
    from ...prune.bitslice import DEFAULT_MULTIPLIERS

    group.add_argument("--keep-bits", metavar="K[,K...]",
                       help="keep the K most significant planes per colour channel; a list trains every K "
                            "(default: search under --max-drop)")
    group.add_argument("--max-drop", type=real(0, 100, lo_open=False), default=1.0, metavar="PP",
                       help="accuracy budget in percentage points below the base")
    group.add_argument("--plane-drop", type=real(0, 100, lo_open=False), metavar="PP",
                       help="choose planes by noise sensitivity alone (the paper's criterion, no retraining): "
                            "drop LSB planes while cumulative randomisation costs <= PP")
    group.add_argument("--multipliers", default=",".join(f"{m:g}" for m in DEFAULT_MULTIPLIERS), metavar="LIST",
                       help="hidden-width multipliers to search")
    group.add_argument("--bitslice-epochs", type=integer(), metavar="N",
                       help="retraining epochs per candidate (default: the base's)")
    group.add_argument("--bitslice-init", choices=("scratch", "inherit"), default="scratch",
                       help="candidates train from a fresh initialisation, or (multiplier 1 only) start from "
                            "the base with the removed planes folded into the first thresholds")
    group.add_argument("--sensitivity-draws", type=integer(), default=5, metavar="N",
                       help="random draws of the sensitivity analysis stored with the result")
    group.add_argument("--save-candidates", metavar="DIR", help="also save every trained candidate here")
    group.add_argument("--pareto-json", metavar="FILE", help="write the Pareto table as JSON")
