"""`bnn2fpga export`: write a checkpoint as QONNX (for FINN) or a BNN-PYNQ parameter folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from ...errors import UserError
from ..common import check_output, console

if TYPE_CHECKING:

    pass

NAME = "export"


def add_arguments(sub: Any) -> argparse.ArgumentParser:
    """This command's parser, its arguments and its handler, on the subcommand table ``sub``."""
    p = sub.add_parser(NAME, help="write a checkpoint as QONNX (for FINN) or a BNN-PYNQ parameter folder",
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
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> None:
    from ...checkpoint import load

    ckpt = load(args.checkpoint)
    out = check_output(args.out, args.force, folder=args.format == "bnn-pynq")
    if args.format == "bnn-pynq":
        import shutil
        import tempfile

        from ...interop.bnn_pynq import TOPOLOGIES, write_folder

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
        console.print(f"wrote {len(files)} parameter files for BNN-PYNQ's {args.topology} to {escape(str(out))}/ "
                      f"(load them with the overlay's parameter loader; bnn2fpga import {out} --format bnn-pynq "
                      f"--topology {args.topology} reads them back)")
        return
    from ...interop.qonnx_export import export_qonnx

    export_qonnx(ckpt, out, overwrite=args.force)
    shown = escape(str(out))
    console.print(f"wrote {shown}: a QONNX graph of {escape(str(args.checkpoint))} (input: the uint8 image / 255, "
                  f"NCHW); bnn2fpga import {shown} --out X.pt reads it back")
