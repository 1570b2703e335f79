"""`bnn2fpga train`: train a binary network from the model zoo."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from ...errors import UserError
from ..common import SEED_MAX, check_output, console, integer, parse_planes, parse_widths, real

if TYPE_CHECKING:

    pass

NAME = "train"


def add_arguments(sub: Any) -> argparse.ArgumentParser:
    """This command's parser, its arguments and its handler, on the subcommand table ``sub``."""
    from ...data import DATASETS
    from ...nn.models import ZOO

    p = sub.add_parser(NAME, help="train a binary network from the model zoo",
                       description="Train a zoo model on a dataset and save a checkpoint (format v1). "
                                   "Deterministic for a given --seed.")
    p.add_argument("--model", choices=sorted(ZOO), default="sfc", help="zoo model (default: sfc)")
    p.add_argument("--dataset", choices=DATASETS, default="fashion-mnist")
    p.add_argument("--data", metavar="DIR", help="dataset folder (default: /usr/share/datasets/fashion-mnist)")
    p.add_argument("--epochs", type=integer(), default=5)
    p.add_argument("--batch-size", type=integer(), default=100)
    p.add_argument("--lr", type=real(0, 10), default=0.03, help="initial Adam learning rate, cosine-decayed")
    p.add_argument("--seed", type=integer(0, SEED_MAX), default=0)
    p.add_argument("--planes", metavar="LIST", help="input bit planes to keep, e.g. 7,6,5 (default: all 8)")
    p.add_argument("--widths", metavar="LIST", help="hidden layer widths, e.g. 256,179,256")
    p.add_argument("--width-multiplier", type=real(0, 16), default=1.0, help="scale every hidden width")
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
    p.add_argument("--track-flips", type=real(0), metavar="N",
                   help="count every binary weight's sign flips over the last N epochs of this training (the "
                        "flip-pruning indicator, measured near convergence at the final low learning rate) and "
                        "store them in the checkpoint for `prune --method flip`")
    p.add_argument("--flip-checks", choices=("epoch", "iteration"), default="epoch",
                   help="with --track-flips: compare signs after every epoch (published) or every optimiser step")
    p.add_argument("--holdout", type=integer(0), default=0, metavar="N",
                   help="keep the last N training images out of training, for decisions made later on unseen "
                        "data (`prune --holdout N`); recorded in the checkpoint")
    p.add_argument("--limit", type=integer(), help="train on the first N training images only (quick tries)")
    p.add_argument("--out", required=True, help="checkpoint to write")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> None:
    from ... import data as datasets
    from ...checkpoint import Checkpoint
    from ...nn.models import BNN, binops, make_architecture
    from ...nn.train import (
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
    out = check_output(args.out, args.force)
    partial = out.with_name(out.name + ".partial")
    if partial.exists() and not (args.resume or args.force):
        raise UserError(f"{partial} holds an interrupted run of this training; pass --resume to continue it, "
                        "or --force to start over")
    ds = datasets.load(args.dataset, args.data)
    c, h, w = ds.shape
    planes = parse_planes(args.planes)
    widths = parse_widths(args.widths)
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
        console.print(f"test accuracy {result.test_accuracy:.4f}; saved {escape(str(out))}")
    if place.world > 1:
        import torch.distributed as dist

        dist.barrier()  # the others wait until the checkpoint is written, then all leave together
        dist.destroy_process_group()


def _flip_tracker(args: argparse.Namespace, model: Any, config: Any, split: Any) -> Any:
    """The tracker behind ``train --track-flips`` (None without it), checked against the run's length."""
    from ...prune.flips import FlipTracker

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
