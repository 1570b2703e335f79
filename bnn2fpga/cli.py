"""The ``bnn2fpga`` command: train, prune, build, sim, info, eval, doctor.

Every user-facing failure is raised as a :class:`UserError` (or one of the
domain errors listed in ``_USER_ERRORS``) and printed as one line, no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from rich.console import Console

from .errors import UserError

if TYPE_CHECKING:
    from rich.table import Table

    from .prune.flip import Round

__all__ = ["UserError", "build_parser", "console", "err_console", "main"]

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def _user_errors() -> tuple[type[BaseException], ...]:
    from .backend.build import BuildError
    from .boards import UnknownBoardError
    from .checkpoint import CheckpointError
    from .contract.manifest import ManifestError
    from .cosim import SimFailure
    from .data import DatasetError
    from .nn.models import ArchitectureError
    from .sim.runner import SimulationError
    from .tools import ToolNotFound
    return (UserError, CheckpointError, DatasetError, ArchitectureError, ToolNotFound, BuildError,
            UnknownBoardError, ManifestError, SimulationError, SimFailure)


# ------------------------------------------------------------------ commands

def cmd_train(args: argparse.Namespace) -> None:
    from . import data as datasets
    from .checkpoint import Checkpoint, CheckpointError
    from .nn.models import BNN, binops, make_architecture
    from .nn.train import (
        TrainConfig,
        default_device,
        distributed,
        load_train_state,
        save_train_state,
        seed_everything,
        train,
    )

    place = distributed()  # under torchrun: the first process reports and writes, the others only train
    if not place.main:
        console.quiet = True
    out = Path(args.out)
    if out.exists() and not args.force:
        raise CheckpointError(f"{out} already exists; choose another --out or pass --force to replace it")
    partial = out.with_name(out.name + ".partial")
    if partial.exists() and not (args.resume or args.force):
        raise UserError(f"{partial} holds an interrupted run of this training; pass --resume to continue it, "
                        "or --force to start over")
    ds = datasets.load(args.dataset, args.data)
    c, h, w = ds.shape
    planes = _parse_planes(args.planes)
    _require_positive(args, ("epochs", "batch_size", "limit"), ("lr", "width_multiplier"))
    widths = _parse_widths(args.widths)
    arch = make_architecture(args.model, channels=c, height=h, width=w, classes=ds.classes, planes=planes,
                             widths=widths, width_multiplier=args.width_multiplier, encoding=args.input_encoding)
    seed_everything(args.seed)  # before the model exists: its initial weights come from the seed too
    model = BNN(arch)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    device = default_device(args.device)
    if not 0 <= args.holdout < len(ds.train):
        raise UserError(f"--holdout must lie in 0..{len(ds.train) - 1}, not {args.holdout}")
    train_split = ds.train.head(len(ds.train) - args.holdout).head(args.limit)
    held = f", the last {args.holdout} held out" if args.holdout else ""
    console.print(f"training [bold]{args.model}[/] on {ds.name} ({len(train_split)} train{held} / {len(ds.test)} "
                  f"test), {binops(arch):,} binops per inference")
    tracker = _flip_tracker(args, model, config, train_split)
    run = {"architecture": arch, "config": config.to_dict(), "dataset": ds.name, "limit": args.limit,
           "device": device.type, "track_flips": args.track_flips, "flip_checks": args.flip_checks,
           "holdout": args.holdout}
    resume = load_train_state(partial, run) if args.resume and partial.exists() else None
    if resume is not None:
        console.print(f"resuming after epoch {resume['epoch']} of {config.epochs} from {partial}")
        if tracker is not None:
            tracker.load_state(resume["flips"])

    def save_state(state: dict[str, Any]) -> None:
        save_train_state(partial, run, state if tracker is None else {**state, "flips": tracker.state()})

    result = train(model, train_split, config, test_split=ds.test, show_progress=not args.quiet, device=device,
                   resume=resume, on_state=save_state, on_epoch=[tracker.on_epoch] if tracker else (),
                   on_iteration=[tracker.on_iteration] if tracker else ())
    training: dict[str, Any] = {**config.to_dict(), "history": result.history, "model": args.model}
    if place.world > 1:
        training["processes"] = place.world  # torchrun: each optimiser step's batch was shared by this many
    if args.holdout:
        training["holdout"] = args.holdout
    if args.limit is not None:
        training["limit"] = args.limit  # part of the recipe: pruning retrains on the same images
    if tracker is not None:
        stats = tracker.stats()
        training["flips"] = {"interval": args.track_flips, **stats.to_record(saturate=True)}
        p = ", ".join(f"{q:.2%}" for q in stats.fractions(0))
        console.print(f"weight flips over the last {args.track_flips:g} epoch(s), {stats.checks} {stats.mode} "
                      f"checks: p_l (tau=0) = {p}; `bnn2fpga prune --method flip` uses them")
    if place.main:
        ckpt = Checkpoint.from_model(model, dataset=ds.name, metrics={"test_accuracy": result.test_accuracy},
                                     training=training)
        ckpt.save(out, overwrite=args.force)
        partial.unlink(missing_ok=True)
        console.print(f"test accuracy {result.test_accuracy:.4f}; saved {out}")
    if place.world > 1:
        import torch.distributed as dist

        dist.barrier()  # the others wait until the checkpoint is written, then all leave together
        dist.destroy_process_group()


def _flip_tracker(args: argparse.Namespace, model: Any, config: Any, split: Any) -> Any:
    """The tracker behind ``train --track-flips`` (None without it), checked against the run's length."""
    from .prune.flips import FlipTracker

    if args.track_flips is None:
        return None
    if not 0 < args.track_flips <= config.epochs:
        raise UserError(f"--track-flips counts flips over the last N of the {config.epochs} epochs; "
                        f"N must lie in (0, {config.epochs}], not {args.track_flips:g}")
    if args.flip_checks == "epoch" and args.track_flips != int(args.track_flips):
        raise UserError(f"--track-flips {args.track_flips:g}: per-epoch checks count whole epochs; pass an "
                        "integer or --flip-checks iteration")
    steps = (len(split) + config.batch_size - 1) // config.batch_size
    return FlipTracker(model, epochs=config.epochs, steps_per_epoch=steps, interval=args.track_flips,
                       mode=args.flip_checks)




def _require_positive(args: argparse.Namespace, integers: Sequence[str], numbers: Sequence[str] = ()) -> None:
    """Counts must be positive integers and rates positive numbers: one clear error, never a silent clamp."""
    for name in (*integers, *numbers):
        value = getattr(args, name)
        if value is not None and not value > 0:
            kind = "a positive integer" if name in integers else "a positive number"
            raise UserError(f"--{name.replace('_', '-')} must be {kind}, not {value:g}")


def _parse_widths(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        widths = [int(x) for x in text.split(",")]
    except ValueError:
        raise UserError(f"--widths takes comma-separated channel counts (e.g. 256,179,256), not {text!r}") from None
    if any(w < 1 for w in widths):
        raise UserError(f"--widths: every layer needs at least one channel, not {text!r} (to remove a layer, "
                        "pick a smaller model)")
    return widths


def _parse_planes(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        planes = sorted({int(p) for p in text.split(",") if p.strip()})
    except ValueError:
        raise UserError(f"--planes takes comma-separated bit positions 0..7 (e.g. 7,6,5), not {text!r}") from None
    if not planes or not all(0 <= p <= 7 for p in planes):
        raise UserError(f"--planes takes bit positions 0..7 (e.g. 7,6,5), not {text!r}")
    return planes



def cmd_import(args: argparse.Namespace) -> None:
    from . import data as datasets
    from .nn.models import binops

    _refuse_existing(args.out, args.force)
    source = Path(args.model)
    fmt = args.format or ("bnn-pynq" if source.is_dir() else "onnx")
    if fmt == "bnn-pynq":
        from .interop.bnn_pynq import TOPOLOGIES, read_folder

        if args.topology is None:
            raise UserError(f"{source}: a BNN-PYNQ folder needs --topology ({' or '.join(TOPOLOGIES)}): the "
                            "files hold bits, not the network's shape")
        _require_positive(args, ("classes",))
        ckpt = read_folder(source, TOPOLOGIES[args.topology], classes=args.classes, config=args.config)
        if args.dataset is not None:
            ckpt.dataset = args.dataset
        ds = datasets.load(ckpt.dataset, args.data)
    else:
        from .interop.qonnx_import import import_qonnx

        if not source.is_file():
            raise UserError(f"{source}: no such file" + (" (a folder: add --format bnn-pynq)" if source.is_dir()
                                                        else ""))
        if not args.pixel_divisor > 0:
            raise UserError(f"--pixel-divisor must be a positive number, not {args.pixel_divisor:g}")
        ds = datasets.load(args.dataset or "fashion-mnist", args.data)
        ckpt = import_qonnx(source, shape=ds.shape, dataset=ds.name, divisor=args.pixel_divisor)
    datasets.require_fit(ckpt.architecture, ds, str(source))
    inp = ckpt.architecture["input"]
    ckpt.save(args.out, overwrite=args.force)
    planes = inp["planes"]
    kept = "all 8 planes" if planes == list(range(8)) else f"planes {planes}"
    first = (f"integer first layer over {kept}" if inp.get("encoding") == "integer"
             else "1-bit input (plane 7)" if planes == [7] else f"bit planes as binary channels ({kept})")
    console.print(f"imported {source} ({ckpt.training['imported_from']['producer']}): "
                  f"{len(ckpt.architecture['layers'])} layers, {first}, {binops(ckpt.architecture):,} binops; "
                  f"saved {args.out}; next: bnn2fpga eval {args.out}")


def cmd_export(args: argparse.Namespace) -> None:
    from .checkpoint import load

    ckpt = load(args.checkpoint)
    out = Path(args.out)
    if out.exists():
        if not args.force:
            raise UserError(f"{out} already exists; choose another --out or pass --force to replace it")
    if args.format == "bnn-pynq":
        import shutil
        import tempfile

        from .interop.bnn_pynq import TOPOLOGIES, write_folder

        if args.topology is None:
            raise UserError(f"--format bnn-pynq needs --topology ({' or '.join(TOPOLOGIES)}): the overlay to load")
        # Written beside --out first, so a refusal half-way leaves nothing behind and --force replaces whole.
        with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
            staged = Path(tmp) / "params"
            files = write_folder(ckpt, staged, TOPOLOGIES[args.topology], config=args.config)
            if out.exists():
                shutil.rmtree(out) if out.is_dir() else out.unlink()
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(staged), str(out))
        console.print(f"wrote {len(files)} parameter files for BNN-PYNQ's {args.topology} to {out}/ "
                      f"(load them with the overlay's parameter loader; bnn2fpga import {out} --format bnn-pynq "
                      f"--topology {args.topology} reads them back)")
        return
    from .interop.qonnx_export import export_qonnx

    export_qonnx(ckpt, out, overwrite=args.force)
    console.print(f"wrote {out}: a QONNX graph of {args.checkpoint} (input: the uint8 image / 255, NCHW); "
                  f"bnn2fpga import {out} --out X.pt reads it back")


def cmd_info(args: argparse.Namespace) -> None:
    from .checkpoint import load
    from .summary import summarize

    ckpt = load(args.checkpoint)
    info = summarize(ckpt)
    if args.json:
        print(json.dumps(info, indent=2))
        return
    from rich.table import Table

    inp = info["input"]
    first = ("the first layer reads the kept bits of each pixel as an unsigned integer (its binops count each "
             "+-1 x integer multiply-accumulate as one binary operation per kept plane)"
             if inp.get("encoding") == "integer"
             else "the first layer reads each kept plane as a binary channel")
    console.print(f"[bold]{args.checkpoint}[/]: {info['model']} on {info['dataset']}, input {inp['shape']} "
                  f"(C,H,W) uint8, planes kept {inp['planes']}; {first}")
    table = Table("layer", "kind", "in HxWxC", "out HxWxC", "fan-in", "binops", "weight bits")
    for row in info["layers"]:
        table.add_row(row["name"], row["kind"] + (" (integer input)" if row.get("integer_input") else ""),
                      "x".join(map(str, row["in"])), "x".join(map(str, row["out"])),
                      str(row["fan_in"] or "-"), f"{row['binops']:,}", f"{row['weight_bits']:,}")
    console.print(table)
    console.print(f"binary operations per inference: [bold]{info['binops']:,}[/]; "
                  f"weight bits: [bold]{info['weight_bits']:,}[/] ({info['weight_bits'] / 8192:.1f} KiB)")
    acc = info["metrics"].get("test_accuracy")
    console.print(f"recorded test accuracy: {acc:.4f}" if acc is not None else "recorded test accuracy: none")
    if info["pruning"]:
        for i, rec in enumerate(info["pruning"]):
            planes = f", planes {rec['planes_after']}" if "planes_after" in rec else ""
            console.print(f"pruning step {i + 1}: {rec['method']}: widths {rec.get('widths_before')} -> "
                          f"{rec.get('widths_after')}{planes}")
    else:
        console.print("pruning history: none (unpruned)")


def cmd_eval(args: argparse.Namespace) -> None:
    from . import data as datasets
    from .checkpoint import load
    from .evaluate import compare_with_reference

    _require_positive(args, ("limit",))
    ckpt = load(args.checkpoint)
    ds = datasets.load(datasets.dataset_of(args.dataset, ckpt.dataset), args.data)
    datasets.require_fit(ckpt.architecture, ds, args.checkpoint, ckpt.dataset)
    split = ds.test.head(args.limit)
    report = compare_with_reference(ckpt, split, show_progress=not args.json)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    console.print(f"{report['images']} test images of {ds.name}")
    console.print(f"  PyTorch (eval mode) accuracy: [bold]{report['torch_accuracy']:.4f}[/]")
    console.print(f"  reference (bit-exact) accuracy: [bold]{report['reference_accuracy']:.4f}[/]")
    verdict = "[green]agree on every image[/]" if report["agree"] else \
        f"[red]DISAGREE on {report['prediction_mismatches']} predictions, {report['score_mismatches']} score rows[/]"
    console.print(f"  class scores and predictions: {verdict}")
    if not report["agree"]:
        raise UserError("the reference does not match PyTorch on this checkpoint; please report it as a bug")


def cmd_doctor(args: argparse.Namespace) -> None:
    from .doctor import run_checks

    ok = True
    for check in run_checks():
        mark = "[green]ok[/]  " if check.ok else ("[yellow]warn[/]" if check.optional else "[red]FAIL[/]")
        console.print(f"{mark} {check.name:<14} {check.detail}")
        if not check.ok and check.fix:
            console.print(f"       fix: {check.fix}")
        ok = ok and (check.ok or check.optional)
    if not ok:
        raise UserError("some required tools are missing; apply the fixes above")


def cmd_prune(args: argparse.Namespace) -> None:
    if args.method == "flip":
        _prune_flip(args)
    else:
        _prune_bitslice(args)


def _refuse_existing(out: Path | str, force: bool) -> None:
    from .checkpoint import CheckpointError

    if not force and Path(out).exists():
        raise CheckpointError(f"{out} already exists; choose another --out or pass --force to replace it")


def _prune_flip(args: argparse.Namespace) -> None:
    from .prune.flip import FlipConfig, load_inputs, run

    try:
        flip = FlipConfig(tau=args.tau, interval=args.interval, per_iteration=args.per_iteration,
                          binop_target=args.binop_target, mode=args.mode, rounds=args.rounds,
                          retrain_epochs=args.retrain_epochs, finetune_lr=args.finetune_lr,
                          track_epochs=args.track_epochs, track_lr=args.track_lr,
                          accuracy_budget=args.accuracy_budget / 100, exempt_last=args.exempt_last,
                          min_keep=args.min_keep,
                          holdout=args.holdout, seed=args.seed)
    except ValueError as e:
        raise UserError(f"--method flip: {e}") from None
    _refuse_existing(args.out, args.force)
    ckpt, ds = load_inputs(args.checkpoint, args.dataset, args.data)
    result = run(ckpt, ds, flip, parent=str(args.checkpoint), show_progress=not args.quiet, log=console.print)
    console.print(_flip_round_table(result.outcome.rounds, result.base, result.layer_names))
    console.print(f"stopped: {result.outcome.stop_reason}")
    result.checkpoint.save(args.out, overwrite=args.force)
    record = result.record
    console.print(f"binops {record['binops_before']:,} -> {record['binops_after']:,} "
                  f"({1 - record['binops_after'] / record['binops_before']:.1%} fewer), weight bits "
                  f"{record['weight_bits_before']:,} -> {record['weight_bits_after']:,}; "
                  f"{'holdout' if args.holdout else 'test'} accuracy {result.base.accuracy:.4f} -> "
                  f"{record['accuracy_after']:.4f}"
                  + (f" (test {record['test_accuracy_before']:.4f} -> {record['test_accuracy_after']:.4f})"
                     if args.holdout else "") + f"; saved {args.out}")


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


def _floats(text: str, option: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{option} takes comma-separated numbers, not {text!r}") from None
    if not values or any(not 0 < v <= 1 for v in values):
        raise UserError(f"{option} takes multipliers in (0, 1], e.g. 1,0.75,0.5; got {text!r}")
    return values


def _ints(text: str, option: str, hi: int) -> list[int]:
    try:
        values = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise UserError(f"{option} takes comma-separated plane counts, not {text!r}") from None
    if not values or any(not 1 <= v <= hi for v in values):
        raise UserError(f"{option} takes plane counts 1..{hi} (the base keeps {hi} planes); got {text!r}")
    return values


def _prune_bitslice(args: argparse.Namespace) -> None:
    from rich.table import Table

    from .nn.models import hidden_widths
    from .prune.bitslice import BitsliceOptions, run
    from .prune.sensitivity import load_matching

    out = Path(args.out)
    _refuse_existing(out, args.force)
    if args.max_drop < 0:
        raise UserError(f"--max-drop must be >= 0 percentage points, not {args.max_drop}")
    if args.bitslice_epochs is not None and args.bitslice_epochs < 1:
        raise UserError(f"--bitslice-epochs must be a positive integer, not {args.bitslice_epochs}")
    if args.sensitivity_draws < 1:
        raise UserError(f"--sensitivity-draws must be a positive integer, not {args.sensitivity_draws}")
    multipliers = _floats(args.multipliers, "--multipliers")
    base_ckpt, ds = load_matching(args.checkpoint, args.dataset, args.data)
    planes = base_ckpt.architecture["input"]["planes"]
    ks = _ints(args.keep_bits, "--keep-bits", len(planes)) if args.keep_bits else None
    if not 0 <= args.holdout < len(ds.train):
        raise UserError(f"--holdout must lie in 0..{len(ds.train) - 1}, not {args.holdout}")
    options = BitsliceOptions(keep_bits=tuple(ks) if ks is not None else None, max_drop=args.max_drop,
                              plane_drop=args.plane_drop, multipliers=tuple(multipliers),
                              epochs=args.bitslice_epochs, init=args.bitslice_init, holdout=args.holdout,
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


def cmd_sensitivity(args: argparse.Namespace) -> None:
    from rich.table import Table

    from .prune.sensitivity import analyse, load_matching, plot, table_rows

    if args.draws < 1:
        raise UserError(f"--draws must be a positive integer, not {args.draws}")
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be a positive integer, not {args.limit}")
    ckpt, ds = load_matching(args.checkpoint, args.dataset, args.data)
    split = ds.test.head(args.limit)
    to_stdout = args.json == "-"
    log = None if args.quiet or to_stdout else (lambda m: err_console.print(f"[dim]randomising {m}[/]"))
    result = analyse(ckpt.model(), split, draws=args.draws, seed=args.seed, replace=args.replace, progress=log)
    result["checkpoint"] = str(args.checkpoint)
    result["dataset"] = ds.name
    if to_stdout:
        print(json.dumps(result, indent=2))
    else:
        table = Table("bit", "acc. (%)", "drop (pp)", "LSB..bit", "kept", "acc. (%)", "drop (pp)",
                      title=f"bit-plane sensitivity of {args.checkpoint} on {len(split)} {ds.name} test images, "
                            + (f"{args.draws} random draws" if args.replace == "random" else
                               f"planes fixed to bit {args.replace}")
                            + f" (baseline {100 * result['baseline']:.2f}%)")
        for row in table_rows(result):
            table.add_row(*row)
        console.print(table)
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
            console.print(f"wrote {args.json}")
    if args.plot:
        plot(result, args.plot, title=f"{Path(args.checkpoint).name} on {ds.name}")
        (err_console if to_stdout else console).print(f"wrote {args.plot}")


def cmd_build(args: argparse.Namespace) -> None:
    from .backend.build import BuildOptions, build

    if not 0 < args.margin <= 1:
        raise UserError(f"--margin is the usable fraction of the board's LUTs and FFs, in (0, 1] (e.g. 0.85), "
                        f"not {args.margin:g}")
    if args.target_fps is not None and args.target_fps != "max":
        try:
            args.target_fps = float(args.target_fps)
        except ValueError:
            raise UserError(f"--target-fps takes a frame rate or 'max', not {args.target_fps!r}") from None
        _require_positive(args, (), ("target_fps",))
    options = BuildOptions(board=args.board, out=Path(args.out) if args.out else None,
                           folding=Path(args.folding) if args.folding else None, target_fps=args.target_fps,
                           margin=args.margin, synth=not args.no_synth, exact_roms=args.exact_roms, force=args.force,
                           backend=args.backend, ecp5_proxy=args.ecp5_proxy)
    state = build(args.checkpoint, options, show_progress=not args.quiet)
    m = state.manifest
    cyc = m["cycles"]
    console.print(f"[bold green]built[/] {m['top']} for {m['board']} ({m['part']}) in [bold]{state.out}[/]")
    console.print(f"  initiation interval {cyc['initiation_interval']} cycles -> {cyc['fps']:,.0f} frames/s at "
                  f"{m['clock_mhz']:g} MHz; latency {cyc['latency']} cycles; bottleneck: {cyc['bottleneck']}")
    console.print(f"  frame rate set by {m['rate']['bound']}: {m['rate']['why']}")
    if state.synth_seconds is not None:
        how = "from the synthesis cache" if state.synth_cached else "ran"
        console.print(f"  Yosys: {how} ({state.synth_seconds:.0f} s of synthesis; BNN2FPGA_CACHE=off to rerun)")
    est = m["resources"]["estimate"]
    line = f"  resources: estimate {est['lut']:,.0f} LUT, {est['ff']:,.0f} FF, {est['bram36']:g} BRAM36"
    if state.synth:
        y = state.synth
        line += f"; Yosys {y['lut']:,} LUT, {y['ff']:,} FF, {y['bram36']:g} BRAM36, {y['dsp']} DSP"
    console.print(line)
    bit, uart = m.get("bitstream"), m.get("uart")
    if bit and "file" in bit:
        used = ", ".join(f"{k} {u['used']:,}/{u['available']:,}" for k, u in bit["utilisation"].items()
                         if u["used"] and k in ("ICESTORM_LC", "ICESTORM_RAM", "TRELLIS_COMB", "TRELLIS_FF", "DP16KD"))
        console.print(f"  bitstream: {state.out / bit['file']} at {bit['clock_mhz']:g} MHz (nextpnr Fmax "
                      f"{bit['fmax_mhz']:.1f} MHz); {used}; load it with {bit['load']}")
    if uart:
        from .contract.wire import link_frames_per_second

        link_fps = link_frames_per_second(uart["baud"], uart["frame_bytes"])
        console.print(f"  serial link: {uart['baud'] / 1e6:g} Mbaud, at most {link_fps:,.0f} frames/s")
        console.print(f"  report: {state.out / 'report.md'}; next: bnn2fpga run {state.out} --sim --images 100 "
                      "(or --port /dev/ttyUSB0 on the board)")
        return
    console.print(f"  report: {state.out / 'report.md'}; next: bnn2fpga sim {state.out} --images 100")


def cmd_report(args: argparse.Namespace) -> None:
    from dataclasses import asdict

    from .backend.compare import markdown, read_build, write

    rows = [read_build(b) for b in args.builds]
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        print(markdown(rows), end="")  # a Markdown table: readable here, and pastes into notes as it is
    if args.out:
        files = write(rows, Path(args.out))
        (console if not args.json else err_console).print(f"wrote {', '.join(str(f) for f in files)}")


def cmd_sim(args: argparse.Namespace) -> None:
    from .cosim import SimOptions, check, run_sim

    _require_positive(args, ("images",))
    if not 0 <= args.stall < 1:
        raise UserError(f"--stall is a probability per cycle in [0, 1), not {args.stall:g}")
    options = SimOptions(build_dir=args.build_dir, images=args.images, bulk=args.bulk, checkpoint=args.checkpoint,
                         dataset=args.dataset, data=args.data, simulator=args.simulator, stall=args.stall,
                         seed=args.seed)
    summary = run_sim(options, log=None if args.json else console.print)
    if args.json:
        print(json.dumps(summary))  # one line: simulator chatter may precede it on stdout
    else:
        _print_sim(summary)
    check(summary)


def cmd_run(args: argparse.Namespace) -> None:
    from .run import RunOptions, check, print_summary, run_board

    _require_positive(args, ("images", "baud"), ("timeout",))
    if args.retries < 0:
        raise UserError(f"--retries is how often a frame is resent, 0 or more, not {args.retries}")
    if args.sim and args.baud is not None:
        raise UserError("--baud sets a real port's rate; the simulated board runs at its build's rate (drop --baud)")
    options = RunOptions(build_dir=args.build_dir, port=args.port, sim=args.sim, images=args.images, baud=args.baud,
                         timeout=args.timeout, retries=args.retries, checkpoint=args.checkpoint,
                         dataset=args.dataset, data=args.data)
    summary = run_board(options, show_progress=not (args.quiet or args.json),
                        log=None if args.json else console.print)
    if args.json:
        print(json.dumps(summary))
    else:
        print_summary(summary, console)
    check(summary)


def _print_sim(s: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"co-simulation of {s['build']} ({s['mode']}, {s['simulator']})", show_header=True)
    table.add_column("check")
    table.add_column("hardware", justify="right")
    table.add_column("expected", justify="right")
    table.add_column("", justify="left")

    def ok(flag: bool) -> str:
        return "[green]ok[/]" if flag else "[red]FAIL[/]"
    table.add_row("output words differing from reference", str(s["mismatched_words"]), "0",
                  ok(s["bit_exact"]))
    if s["mode"] == "csim":  # an HLS build's C simulation: bit-exact only, untimed
        table.add_row(f"accuracy on {s['images']} images", f"{s['hardware_accuracy']:.4f}",
                      f"{s['reference_accuracy']:.4f}", ok(s["hardware_accuracy"] == s["reference_accuracy"]))
        console.print(table)
        speed = f"{s['images_per_second']:,.0f} images/s" if s.get("images_per_second") else "-"
        console.print(f"C simulation (g++ -O2, untimed): {speed} (build {s['build_time_s']:.1f} s, run "
                      f"{s['wall_time_s']:.1f} s); cycles: the report's expectation, Vitis csynth/cosim measure them")
        console.print("[bold green]PASS[/]: bit-exact" if s["passed"] else "[bold red]FAIL[/]")
        return
    table.add_row("initiation interval (cycles)", str(s["measured_initiation_interval"]),
                  str(s["expected_initiation_interval"]),
                  ok(s["measured_initiation_interval"] == s["expected_initiation_interval"]))
    table.add_row("first-frame latency (cycles)", str(s["measured_latency"]), str(s["expected_latency"]),
                  ok(s["measured_latency"] == s["expected_latency"]))
    table.add_row(f"accuracy on {s['images']} images", f"{s['hardware_accuracy']:.4f}",
                  f"{s['reference_accuracy']:.4f}", ok(s["hardware_accuracy"] == s["reference_accuracy"]))
    console.print(table)
    console.print(f"{s['cycles']:,} cycles simulated at {s['cycles_per_second']:,.0f} cycles/s "
                  f"(build {s['build_time_s']:.1f} s, run {s['wall_time_s']:.1f} s)")
    verdict = "[bold green]PASS[/]: bit-exact and cycle-exact" if s["passed"] else "[bold red]FAIL[/]"
    console.print(verdict)


# ------------------------------------------------------------------ parser

def _flip_arguments(group: argparse._ArgumentGroup) -> None:
    from .prune.flip import MODES, FlipConfig

    d = FlipConfig()
    group.add_argument("--tau", type=int, default=d.tau,
                       help="a weight is insensitive when it flips more than TAU times in the interval")
    group.add_argument("--interval", type=float, default=d.interval, metavar="EPOCHS",
                       help="count flips over the final EPOCHS epochs of each training run "
                            "(fractions count with --per-iteration)")
    group.add_argument("--per-iteration", action="store_true",
                       help="compare weight signs after every optimiser step, not every epoch")
    group.add_argument("--binop-target", type=float, metavar="FRACTION",
                       help="keep this fraction of the input's binary operations (e.g. 0.7), by scaling every "
                            "p_l with one global factor; default: widths round(C*(1-p)) as published")
    group.add_argument("--mode", choices=MODES, default=d.mode,
                       help="shrink-retrain: narrower net trained from scratch (published); remove-finetune: "
                            "remove the channels with most insensitive weights and fine-tune (ours)")
    group.add_argument("--rounds", type=int, default=d.rounds, help="maximum pruning rounds")
    group.add_argument("--retrain-epochs", type=int, metavar="N",
                       help="epochs per round (default: the checkpoint's recipe for shrink-retrain, "
                            "2 for remove-finetune)")
    group.add_argument("--finetune-lr", type=float, default=d.finetune_lr, metavar="LR",
                       help="initial learning rate of remove-finetune rounds (cosine-decayed)")
    group.add_argument("--track-epochs", type=int, default=d.track_epochs, metavar="N",
                       help="epochs of the low-rate flip-counting pass, when the input has no recorded flips")
    group.add_argument("--track-lr", type=float, default=d.track_lr, metavar="LR", help="learning rate of that pass")
    group.add_argument("--accuracy-budget", type=float, default=d.accuracy_budget * 100, metavar="PP",
                       help="stop when test accuracy drops more than PP percentage points below the input's")
    group.add_argument("--exempt-last", action="store_true", help="never prune the last hidden layer")
    group.add_argument("--min-keep", type=float, default=0.0, metavar="FRACTION",
                       help="(ours) every hidden layer keeps at least this fraction of its width; with "
                            "--binop-target, one global factor on p_l can otherwise cut a layer to one channel "
                            "(seen on nin)")


def _bitslice_arguments(group: argparse._ArgumentGroup) -> None:
    from .prune.bitslice import DEFAULT_MULTIPLIERS

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
                       help="(both methods) decide on the last N training images instead of the test set the "
                            "papers used; retraining uses the rest. bitslice: a copy of the base retrained without "
                            "them is the budget's reference; flip: the input must have been trained without them "
                            "(`train --holdout N`)")
    group.add_argument("--sensitivity-draws", type=int, default=5, metavar="N",
                       help="random draws of the sensitivity analysis stored with the result")
    group.add_argument("--save-candidates", metavar="DIR", help="also save every trained candidate here")
    group.add_argument("--pareto-json", metavar="FILE", help="write the Pareto table as JSON")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one ``error:`` line like every other error (and names --help)."""

    def error(self, message: str) -> NoReturn:
        err_console.print(f"[bold red]error:[/] {self.prog}: {message} (see {self.prog} --help)", highlight=False)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    from .data import DATASETS
    from .nn.models import ZOO

    parser = _Parser(
        prog="bnn2fpga",
        description="Compile a pruned binary neural network into a verified FPGA accelerator.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="typical flow:\n"
               "  bnn2fpga train --model sfc --dataset fashion-mnist --epochs 5 --out base.pt\n"
               "  bnn2fpga info base.pt\n"
               "  bnn2fpga eval base.pt --dataset fashion-mnist\n"
               "  bnn2fpga build base.pt --board pynq-z2 --out build/\n"
               "  bnn2fpga sim build/ --images 100\n"
               "run `bnn2fpga COMMAND --help` for each command's options; `bnn2fpga doctor` checks the toolchain.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    p = sub.add_parser("train", help="train a binary network from the model zoo",
                       description="Train a zoo model on a dataset and save a checkpoint (format v1). "
                                   "Deterministic for a given --seed.")
    p.add_argument("--model", choices=sorted(ZOO), default="sfc", help="zoo model (default: sfc)")
    p.add_argument("--dataset", choices=DATASETS, default="fashion-mnist")
    p.add_argument("--data", metavar="DIR", help="dataset folder (default: /usr/share/datasets/fashion-mnist)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.03, help="initial Adam learning rate, cosine-decayed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--planes", metavar="LIST", help="input bit planes to keep, e.g. 7,6,5 (default: all 8)")
    p.add_argument("--widths", metavar="LIST", help="hidden layer widths, e.g. 256,179,256")
    p.add_argument("--width-multiplier", type=float, default=1.0, help="scale every hidden width")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run of the same command from OUT.partial (saved after every "
                        "epoch); the result equals an uninterrupted run on the same device")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default=None,
                   help="where to train: cpu (default, or $BNN2FPGA_DEVICE), cuda, or auto (a GPU when PyTorch "
                        "sees one); a GPU gives different (equally repeatable) weights than the CPU")
    p.add_argument("--input-encoding", choices=("planes", "integer"), default="planes",
                   help="how the first layer sees the pixels: 'planes' (each kept bit plane a binary channel, "
                        "C*P inputs per pixel) or 'integer' (the kept bits as one unsigned integer per channel, "
                        "binary weights, FINN CNV / BinaryNet style: P times fewer first-layer weights)")
    p.add_argument("--track-flips", type=float, metavar="N",
                   help="count every binary weight's sign flips over the last N epochs of this training (the "
                        "flip-pruning indicator, measured near convergence at the final low learning rate) and "
                        "store them in the checkpoint for `prune --method flip`")
    p.add_argument("--flip-checks", choices=("epoch", "iteration"), default="epoch",
                   help="with --track-flips: compare signs after every epoch (published) or every optimiser step")
    p.add_argument("--holdout", type=int, default=0, metavar="N",
                   help="keep the last N training images out of training, for decisions made later on unseen "
                        "data (`prune --holdout N`); recorded in the checkpoint")
    p.add_argument("--limit", type=int, help="train on the first N training images only (quick tries)")
    p.add_argument("--out", required=True, help="checkpoint to write")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("import", help="import a binary network: QONNX / FINN-ONNX (Brevitas) or a BNN-PYNQ folder",
                       description="Read a binary network made elsewhere and write the equivalent bnn2fpga "
                                   "checkpoint, whose every layer's threshold is the one the source computes.\n\n"
                                   "ONNX (Brevitas export, raw or after qonnx-cleanup): an input quantiser that is "
                                   "1-bit at the most significant bit or an affine 8-bit one, MatMul/Gemm/Conv with "
                                   "binary weights, BatchNormalization and per-channel Mul/Add, 1-bit activations "
                                   "(BipolarQuant, Sign, MultiThreshold), MaxPool, reshapes, TopK/ArgMax at the "
                                   "end.\n\n"
                                   "BNN-PYNQ parameter folders (L-p-weights.bin / L-p-thres.bin, as finnthesizer "
                                   "writes them) of the W1A1 lfc or cnv, with the PE/SIMD of their config.h.",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples:\n  bnn2fpga import tfc.onnx --out tfc.pt && bnn2fpga eval tfc.pt\n"
                              "  bnn2fpga import params/cifar10/cnvW1A1 --topology cnv --out cnv.pt --dataset cifar10")
    p.add_argument("model", help="the .onnx file, or a BNN-PYNQ parameter folder")
    p.add_argument("--out", required=True, help="checkpoint to write")
    p.add_argument("--format", choices=("onnx", "bnn-pynq"), help="default: bnn-pynq for a folder, else onnx")
    p.add_argument("--topology", choices=("lfc", "cnv"),
                   help="BNN-PYNQ only: the network the folder holds (lfc: 28x28 1-bit input; cnv: 32x32x3 8-bit)")
    p.add_argument("--config", metavar="CONFIG_H",
                   help="BNN-PYNQ only: the config.h the folder was made for (default: BNN-PYNQ's W1A1 folding)")
    p.add_argument("--classes", type=int,
                   help="BNN-PYNQ only: classes of the last layer (default: the lines of classes.txt, else 10)")
    p.add_argument("--dataset", choices=DATASETS,
                   help="the images the network takes (default: fashion-mnist; for BNN-PYNQ cnv fashion-mnist-32rgb)")
    p.add_argument("--data", metavar="DIR", help="dataset folder")
    p.add_argument("--pixel-divisor", type=float, default=255.0, metavar="D",
                   help="ONNX only: the model's input is the uint8 pixel divided by D (255: torchvision's ToTensor)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("export", help="write a checkpoint as QONNX (for FINN) or a BNN-PYNQ parameter folder",
                       description="Write a bnn2fpga checkpoint (pruned or not) in another tool's format, with the "
                                   "same predictions. qonnx: an ONNX graph qonnx and onnxruntime execute; its "
                                   "thresholds are the integer ones bnn2fpga's hardware uses. bnn-pynq: the "
                                   "parameter files of BNN-PYNQ's lfc or cnv overlay (only a network of exactly "
                                   "that shape loads into it).",
                       epilog="examples:\n  bnn2fpga export examples/tfc-fmnist.pt --out tfc.onnx\n"
                              "  bnn2fpga export lfc.pt --format bnn-pynq --topology lfc --out params/lfc",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--out", required=True, help="the .onnx file (qonnx) or folder (bnn-pynq) to write")
    p.add_argument("--format", choices=("qonnx", "bnn-pynq"), default="qonnx")
    p.add_argument("--topology", choices=("lfc", "cnv"), help="bnn-pynq only: the overlay")
    p.add_argument("--config", metavar="CONFIG_H", help="bnn-pynq only: another folding's config.h")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("info", help="describe a checkpoint: layers, widths, binops, accuracy, pruning history",
                       description="Describe a checkpoint without running it.")
    p.add_argument("checkpoint")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("eval", help="test accuracy through PyTorch and the bit-exact reference",
                       description="Evaluate a checkpoint on a dataset's test split twice, with PyTorch in eval "
                                   "mode and with the bit-packed integer reference, and check that both give the "
                                   "same class scores and predictions on every image.")
    p.add_argument("checkpoint")
    p.add_argument("--dataset", choices=DATASETS, default=None,
                   help="default: the one the checkpoint was trained on")
    p.add_argument("--data", metavar="DIR", help="dataset folder")
    p.add_argument("--limit", type=int, help="only the first N test images")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("doctor", help="check the toolchain (PyTorch, Amaranth/Yosys, Verilator, cocotb, dataset)",
                       description="Report each tool bnn2fpga needs, with a one-line fix for anything missing.")
    p.set_defaults(func=cmd_doctor)

    from .prune import METHODS

    p = sub.add_parser("prune", help="prune a trained checkpoint (flip frequency or input bit slices)",
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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _bitslice_arguments(p.add_argument_group("--method bitslice"))
    _flip_arguments(p.add_argument_group("--method flip"))
    p.set_defaults(func=cmd_prune)

    p = sub.add_parser("sensitivity", help="accuracy loss when each input bit plane is replaced by noise",
                       description="Bit-level sensitivity analysis (CBNN): for each bit position replace the "
                                   "plane by uniform random ±1 on the test set and measure the accuracy loss "
                                   "over several draws; also cumulative removal from the LSB up.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--dataset", choices=DATASETS, default=None,
                   help="default: the one the checkpoint was trained on")
    p.add_argument("--data", metavar="DIR", help="dataset folder")
    p.add_argument("--draws", type=int, default=5, help="random draws per measurement (mean ± std)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random planes")
    p.add_argument("--replace", choices=("random", "0", "1"), default="random",
                   help="what replaces a plane: uniform random ±1 (the paper), or the constant bit 0 or 1 "
                        "(what removing the plane without retraining gives)")
    p.add_argument("--limit", type=int, help="only the first N test images")
    p.add_argument("--json", metavar="FILE", help="write the full result as JSON ('-' for stdout)")
    p.add_argument("--plot", metavar="FILE", help="write a PNG plot of both analyses")
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=cmd_sensitivity)

    from .boards import BOARDS

    p = sub.add_parser("build", help="generate the accelerator: Verilog, .mem, manifest, report, TCL, driver",
                       description="Compile a binary network checkpoint (dense layers, KxK convolutions, max-pools; "
                                   "binary or integer first layer) into a streaming dataflow "
                                   "accelerator. Folding (PE x SIMD per layer, pixels per input beat) is chosen "
                                   "automatically: by default the cheapest folding that keeps up with what the "
                                   "board's host link can feed (faster would idle), with --target-fps N the "
                                   "cheapest reaching N, with --target-fps max the fastest whose estimate fits the "
                                   "board with --margin; or it is read from --folding. The report says which bound "
                                   "set the frame rate. Yosys synthesises the result for the board's part and a design "
                                   "that does not fit is refused with the numbers and a folding that would. For "
                                   "the open-toolchain boards (icebreaker, ulx3s-85f) the build goes on to a "
                                   "bitstream: the accelerator behind a UART bridge, placed and routed with nextpnr "
                                   "at the fastest clock that meets timing with a 10 % margin (docs/boards.md).",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       epilog="examples: bnn2fpga build examples/cnv-fmnist.pt --board pynq-z2 --out build/cnv; "
                              "bnn2fpga build examples/tfc-fmnist-ice40.pt --board icebreaker")
    p.add_argument("checkpoint")
    p.add_argument("--board", choices=sorted(BOARDS), default="pynq-z2")
    p.add_argument("--out", help="build folder (default: build/<checkpoint>-<board>)")
    p.add_argument("--folding", metavar="JSON", help="use this folding (e.g. a build's folding.json)")
    p.add_argument("--target-fps", metavar="FPS|max",
                   help="cheapest folding reaching this frame rate; 'max': the fastest folding that fits. Default: "
                        "the rate the board's host link can feed (pynq-z2: 800 MB/s of AXI DMA, 1.02 M frames/s "
                        "of 784 bytes)")
    p.add_argument("--margin", type=float, default=0.85, help="usable fraction of the board's LUTs and FFs")
    p.add_argument("--backend", choices=["rtl", "hls"], default="rtl",
                   help="rtl: Verilog and the Yosys check; hls: Vitis HLS C++ dataflow design with the same "
                        "folding, a testbench and run_hls.tcl (Xilinx boards; `bnn2fpga sim` runs its C simulation "
                        "with g++; docs/hls.md)")
    p.add_argument("--no-synth", action="store_true",
                   help="skip the Yosys resource check (open-toolchain boards: also place, route and bitstream)")
    p.add_argument("--exact-roms", action="store_true",
                   help="Yosys maps every PE's block-RAM weight ROM with its own contents. By default each layer's "
                        "block ROMs are synthesised once, with PE 0's weights, and counted once per PE: their "
                        "mapping depends on depth and width only, and it halves synthesis of large designs "
                        "(docs/hardware.md)")
    p.add_argument("--ecp5-proxy", action="store_true",
                   help="Xilinx boards: also place and route the accelerator core (stream ports registered) on an "
                        "ECP5-85F with nextpnr, 3 seeds, and report the median Fmax as the clock's 'ECP5 proxy' "
                        "evidence; minutes (docs/timing.md)")
    p.add_argument("--force", action="store_true", help="replace an existing build folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("report", help="builds side by side: cycles, frames/s, resources, simulated accuracy",
                       description="Compare build folders (a pruned and an unpruned network, two boards, two "
                                   "foldings): network, board, folding, initiation interval, latency, frames/s, "
                                   "what set the rate, LUT/FF/BRAM as estimated and as Yosys counted them, and the "
                                   "hardware accuracy the last `bnn2fpga sim` of each recorded (bulk preferred).",
                       epilog="example: bnn2fpga report build/sfc-fmnist build/sfc-fmnist-flip --out cmp/")
    p.add_argument("builds", nargs="+", metavar="BUILD", help="build folders written by bnn2fpga build")
    p.add_argument("--out", metavar="DIR", help="also write report.md, report.json and report.png (a plot) here")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("sim", help="co-simulate a build (cocotb + Verilator) bit-exact and cycle-exact",
                       description="Drive real test images through the generated accelerator's AXI-Stream "
                                   "ports with random tvalid/tready patterns (cocotb + cocotbext-axi on "
                                   "Verilator), compare every output word with the bit-exact reference, and "
                                   "measure the initiation interval and first-frame latency, which must equal "
                                   "the manifest's. --bulk runs a Verilator C++ harness instead, fast enough "
                                   "for the whole test set, and reports hardware accuracy.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       epilog="example: bnn2fpga sim build/sfc --images 100; bnn2fpga sim build/sfc --bulk")
    p.add_argument("build_dir")
    p.add_argument("--images", type=int, help="test images to simulate (default: 100; with --bulk: all)")
    p.add_argument("--bulk", action="store_true", help="Verilator C++ harness over the whole test set")
    p.add_argument("--checkpoint", help="checkpoint the build came from (default: found next to it by hash)")
    p.add_argument("--dataset", choices=DATASETS, default=None, help="default: the checkpoint's dataset")
    p.add_argument("--data", metavar="DIR", help="dataset folder")
    p.add_argument("--simulator", choices=["verilator", "icarus"], default="verilator")
    p.add_argument("--stall", type=float, default=0.3, help="probability of a tvalid/tready pause per cycle")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("run", help="stream test images to a UART board (or its Verilator model), check every reply",
                       description="Send test images one by one to a board built with a USB-serial bridge "
                                   "(--board ulx3s-85f or icebreaker) over its serial port, or with --sim to the "
                                   "Verilator model of the same board core behind a pseudo-terminal; check every "
                                   "reply's class popcounts against the bit-exact reference, report accuracy, "
                                   "frames/s and where the time went (the serial link or the rest). Broken replies "
                                   "and timeouts are resent (--retries); no frame is lost or counted twice.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       epilog="examples: bnn2fpga run build/tfc --port /dev/ttyUSB0 --images 1000; "
                              "bnn2fpga run build/tfc --sim --images 20")
    p.add_argument("build_dir")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--port", metavar="DEVICE", help="the board's serial port (e.g. /dev/ttyUSB0)")
    where.add_argument("--sim", action="store_true", help="the Verilator model of the board core behind a pty")
    p.add_argument("--images", type=int, default=100, help="test images to send")
    p.add_argument("--baud", type=int, help="serial rate (default: the build's)")
    p.add_argument("--timeout", type=float, metavar="S",
                   help="seconds to wait for each reply (default: 1 s plus the frame's wire time; --sim: 60 s)")
    p.add_argument("--retries", type=int, default=3, help="resends of a frame before giving up")
    p.add_argument("--checkpoint", help="checkpoint the build came from (default: the one inside it)")
    p.add_argument("--dataset", choices=DATASETS, default=None, help="default: the checkpoint's dataset")
    p.add_argument("--data", metavar="DIR", help="dataset folder")
    p.add_argument("--json", action="store_true", help="machine-readable summary")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)
    return parser



def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2), already printed
        return int(e.code or 0)
    try:
        args.func(args)
    except _user_errors() as e:
        err_console.print(f"[bold red]error:[/] {e}", highlight=False)
        return 2
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
