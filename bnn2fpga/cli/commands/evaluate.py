"""`bnn2fpga eval`: test accuracy through PyTorch and the bit-exact reference."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from ...errors import UserError
from ..common import console, integer

if TYPE_CHECKING:

    pass

NAME = "eval"


def add_arguments(sub: Any) -> argparse.ArgumentParser:
    """This command's parser, its arguments and its handler, on the subcommand table ``sub``."""
    from ...data import DATASETS

    p = sub.add_parser(NAME, help="test accuracy through PyTorch and the bit-exact reference",
                       description="Evaluate a checkpoint on a dataset's test split twice, with PyTorch in eval "
                                   "mode and with the bit-packed integer reference, and check that both give the "
                                   "same class scores and predictions on every image.")
    p.add_argument("checkpoint")
    p.add_argument("--dataset", choices=DATASETS, default=None,
                   help="default: the one the checkpoint was trained on")
    p.add_argument("--data", metavar="DIR", help="dataset folder")
    p.add_argument("--limit", type=integer(), help="only the first N test images")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> None:
    from ... import data as datasets
    from ...checkpoint import load
    from ...evaluate import compare_with_reference

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
