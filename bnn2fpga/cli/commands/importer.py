"""`bnn2fpga import`: import a binary network: QONNX / FINN-ONNX (Brevitas) or a BNN-PYNQ folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from ...errors import UserError
from ..common import check_output, console, integer, real

if TYPE_CHECKING:

    pass

NAME = "import"


def add_arguments(sub: Any) -> argparse.ArgumentParser:
    """This command's parser, its arguments and its handler, on the subcommand table ``sub``."""
    from ...data import DATASETS

    p = sub.add_parser(NAME, help="import a binary network: QONNX / FINN-ONNX (Brevitas) or a BNN-PYNQ folder",
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
    p.add_argument("--classes", type=integer(1, 254),
                   help="BNN-PYNQ only: classes of the last layer (default: the lines of classes.txt, else 10)")
    p.add_argument("--dataset", choices=DATASETS,
                   help="the images the network takes (default: fashion-mnist; for BNN-PYNQ cnv fashion-mnist-32rgb)")
    p.add_argument("--data", metavar="DIR", help="dataset folder")
    p.add_argument("--pixel-divisor", type=real(0), default=None, metavar="D",
                   help="ONNX only: the model's input is the uint8 pixel divided by D (default: 1 when the graph "
                        "declares its input UINT8, FINN's annotation for the raw pixel; else 255, torchvision's "
                        "ToTensor)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> None:
    from ... import data as datasets
    from ...nn.models import binops

    check_output(args.out, args.force)
    source = Path(args.model)
    fmt = args.format or ("bnn-pynq" if source.is_dir() else "onnx")
    if fmt == "bnn-pynq":
        from ...interop.bnn_pynq import TOPOLOGIES, read_folder

        if args.topology is None:
            raise UserError(f"{source}: a BNN-PYNQ folder needs --topology ({' or '.join(TOPOLOGIES)}): the "
                            "files hold bits, not the network's shape")
        ckpt = read_folder(source, TOPOLOGIES[args.topology], classes=args.classes, config=args.config)
        if args.dataset is not None:
            ckpt.dataset = args.dataset
        ds = datasets.load(ckpt.dataset, args.data)
    else:
        from ...interop.qonnx_import import import_qonnx

        if not source.is_file():
            raise UserError(f"{source}: no such file" + (" (a folder: add --format bnn-pynq)" if source.is_dir()
                                                        else ""))
        given = [o for o, v in (("--topology", args.topology), ("--config", args.config),
                                ("--classes", args.classes)) if v is not None]
        if given:  # BNN-PYNQ options: an ONNX file carries its own shape, so they would be silently ignored
            raise UserError(f"{', '.join(given)}: BNN-PYNQ folders only; an ONNX model carries its own topology, "
                            "folding and classes. Drop them, or give a BNN-PYNQ parameter folder")
        ds = datasets.load(args.dataset or "fashion-mnist", args.data)
        ckpt = import_qonnx(source, shape=ds.shape, dataset=ds.name, divisor=args.pixel_divisor)
    datasets.require_fit(ckpt.architecture, ds, str(source))
    inp = ckpt.architecture["input"]
    ckpt.save(args.out, overwrite=args.force)
    planes = inp["planes"]
    kept = "all 8 planes" if planes == list(range(8)) else f"planes {planes}"
    first = (f"integer first layer over {kept}" if inp.get("encoding") == "integer"
             else "1-bit input (plane 7)" if planes == [7] else f"bit planes as binary channels ({kept})")
    if inp.get("table") is not None:
        first += " of an input table (the input quantiser's code for each pixel value)"
    origin = ckpt.training["imported_from"]
    divisor = ""
    if fmt == "onnx":  # the one guess an ONNX import makes: what the graph's input is
        from ...interop.qonnx_import import DIVISOR_REASONS

        divisor = (f"model input = pixel / {origin['pixel_divisor']:g} "
                   f"({DIVISOR_REASONS[origin['pixel_divisor_from']]}); ")
    console.print(f"imported {source} ({origin['producer']}): "
                  f"{len(ckpt.architecture['layers'])} layers, {first}, {binops(ckpt.architecture):,} binops; "
                  f"{divisor}"
                  f"saved {escape(str(args.out))}; next: bnn2fpga eval {escape(str(args.out))}")
