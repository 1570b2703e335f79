"""The ``bnn2fpga`` command: train, prune, build, sim, info, eval, doctor.

Every user-facing failure is raised as a :class:`UserError` (or one of the
domain errors listed in ``_USER_ERRORS``) and printed as one line, no traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console

console = Console(stderr=False)
err_console = Console(stderr=True)


class UserError(RuntimeError):
    """Something the user can fix; printed without a traceback."""


def _user_errors() -> tuple[type[BaseException], ...]:
    from .checkpoint import CheckpointError
    from .data import DatasetError
    from .nn.models import ArchitectureError
    from .tools import ToolNotFound
    return (UserError, CheckpointError, DatasetError, ArchitectureError, ToolNotFound)


# ------------------------------------------------------------------ commands

def cmd_train(args: argparse.Namespace) -> None:
    from . import data as datasets
    from .checkpoint import Checkpoint, CheckpointError
    from .nn.models import BNN, binops, make_architecture
    from .nn.train import TrainConfig, train

    out = Path(args.out)
    if out.exists() and not args.force:
        raise CheckpointError(f"{out} already exists; choose another --out or pass --force to replace it")
    ds = datasets.load(args.dataset, args.data)
    c, h, w = ds.shape
    planes = _parse_planes(args.planes)
    widths = [int(x) for x in args.widths.split(",")] if args.widths else None
    arch = make_architecture(args.model, channels=c, height=h, width=w, classes=ds.classes, planes=planes,
                             widths=widths, width_multiplier=args.width_multiplier)
    model = BNN(arch)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    console.print(f"training [bold]{args.model}[/] on {ds.name} ({len(ds.train)} train / {len(ds.test)} test), "
                  f"{binops(arch):,} binops per inference")
    result = train(model, ds.train.head(args.limit), config, test_split=ds.test, show_progress=not args.quiet)
    ckpt = Checkpoint.from_model(model, dataset=ds.name, metrics={"test_accuracy": result.test_accuracy},
                                 training={**config.to_dict(), "history": result.history, "model": args.model})
    ckpt.save(out, overwrite=args.force)
    console.print(f"test accuracy {result.test_accuracy:.4f}; saved {out}")


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


# ------------------------------------------------------------------ parser

def build_parser() -> argparse.ArgumentParser:
    from .data import DATASETS
    from .nn.models import ZOO

    parser = argparse.ArgumentParser(
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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("train", help="train a binary network from the model zoo",
                       description="Train a zoo model on a dataset and save a checkpoint (format v1). "
                                   "Deterministic for a given --seed.")
    p.add_argument("--model", choices=sorted(ZOO), default="sfc", help="zoo model (default: sfc)")
    p.add_argument("--dataset", choices=DATASETS, default="fashion-mnist")
    p.add_argument("--data", metavar="DIR", help="dataset folder (default: /usr/share/datasets/fashion-mnist)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.01, help="initial Adam learning rate, cosine-decayed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--planes", metavar="LIST", help="input bit planes to keep, e.g. 7,6,5 (default: all 8)")
    p.add_argument("--widths", metavar="LIST", help="hidden layer widths, e.g. 256,179,256")
    p.add_argument("--width-multiplier", type=float, default=1.0, help="scale every hidden width")
    p.add_argument("--limit", type=int, help="train on the first N training images only (quick tries)")
    p.add_argument("--out", required=True, help="checkpoint to write")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)
    return parser


COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
