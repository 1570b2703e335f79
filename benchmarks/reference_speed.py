"""Images per second: the bit-packed reference against PyTorch float inference, side by side, and the
HLS backend's C++ compiled as a native engine.

All run the same checkpoint on the same batch of Fashion-MNIST test images in one
process, alternating, so machine noise hits them alike. PyTorch's intra-op threads and the
reference's batch workers are pinned to the same number (``--threads``, default: the CPUs this
process may use); the native engine is single-threaded. The table reports the median images per second over
``--repeats`` rounds and the median ratio with its range over the rounds (each round times
all three back to back, so a ratio comes from one stretch of machine load). The native engine
is the `--backend hls` build's design and testbench (default folding for pynq-z2) compiled with g++ -O3 -march=native,
single-threaded; its time is the whole testbench run (process start and file I/O included),
and its popcounts are checked against the reference's.

    python benchmarks/reference_speed.py [examples/sfc-fmnist.pt ...] [--images 10000] [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from bnn2fpga import checkpoint, data, reference
from bnn2fpga.backend import hls
from bnn2fpga.backend.build import BuildOptions, build
from bnn2fpga.contract.manifest import load_manifest, pack_frames
from bnn2fpga.ir.pipeline import lower
from bnn2fpga.sim import hls_csim

ROOT = Path(__file__).resolve().parent.parent


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def spread(values: list[float]) -> str:
    """Median, and the range over the rounds."""
    return f"{statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f})"


def native_engine(path: str, pixels: np.ndarray, expected: np.ndarray, work: Path) -> Callable[[], None]:
    """The HLS build of ``path`` compiled -O3 -march=native (compiled here, outside the timing)."""
    out = work / Path(path).stem
    build(path, BuildOptions(backend="hls", out=out, force=True), show_progress=False)
    frames = pack_frames(load_manifest(out), np.ascontiguousarray(pixels.transpose(0, 2, 3, 1)))
    hls_csim.compile_design(out.resolve(), load_manifest(out).top, hls.NATIVE_FLAGS)

    def run() -> None:
        result = hls_csim.run_frames(out, frames, flags=hls.NATIVE_FLAGS)
        assert np.array_equal(result.outputs, expected), "native engine differs from the reference"
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="*", default=[str(ROOT / "examples" / "sfc-fmnist.pt")])
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (each runs all three engines)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="PyTorch intra-op threads and the reference's batch workers")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    pixels = data.load("fashion-mnist").test.images[: args.images]
    table = Table("checkpoint", "images", "threads (PyTorch, reference)", "PyTorch float img/s", "reference img/s",
                  "reference / PyTorch", "native HLS-C++ img/s (1 thread)", "native / reference", "native / PyTorch",
                  title=f"bnn2fpga reference and native HLS-C++ engine vs PyTorch float inference (same batch, "
                        f"same process; medians of {args.repeats} rounds, ratio ranges over the rounds)")
    work = Path(tempfile.mkdtemp(prefix="bnn2fpga-native-"))
    for path in args.checkpoints:
        ck = checkpoint.load(path)
        model = ck.model()
        graph = lower(ck)
        x = torch.from_numpy(pixels)

        def run_torch(model=model, x=x) -> None:
            with torch.no_grad():
                for i in range(0, len(x), args.batch_size):
                    model(x[i:i + args.batch_size])

        def run_reference(graph=graph) -> None:
            reference.run(graph, pixels, batch_size=args.batch_size, workers=args.threads)

        run_native = native_engine(path, pixels, reference.run(graph, pixels).popcounts, work)
        run_torch(), run_reference(), run_native()  # warm-up: allocator, caches
        rounds = [(timed(run_torch), timed(run_reference), timed(run_native)) for _ in range(args.repeats)]
        t_torch, t_ref, t_native = (statistics.median(r[k] for r in rounds) for k in range(3))
        table.add_row(Path(path).name, str(len(pixels)), str(torch.get_num_threads()),
                      f"{len(pixels) / t_torch:,.0f}", f"{len(pixels) / t_ref:,.0f}",
                      spread([a / b for a, b, _ in rounds]), f"{len(pixels) / t_native:,.0f}",
                      spread([b / c for _, b, c in rounds]), spread([a / c for a, _, c in rounds]))
        assert np.array_equal(reference.run(graph, pixels[:100]).predictions,
                              model(torch.from_numpy(pixels[:100])).argmax(1).numpy())
    shutil.rmtree(work, ignore_errors=True)
    Console(soft_wrap=True).print(table)


if __name__ == "__main__":
    main()
