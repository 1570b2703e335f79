"""Images per second: the bit-packed reference against PyTorch float inference, side by side.

Both run the same checkpoint on the same batch of Fashion-MNIST test images in one
process, alternating, so machine noise hits both alike; the table reports the
best of several repeats and the ratio.

    python benchmarks/reference_speed.py [examples/sfc-fmnist.pt ...] [--images 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from bnn2fpga import checkpoint, data, reference
from bnn2fpga.ir.pipeline import lower

ROOT = Path(__file__).resolve().parent.parent


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="*", default=[str(ROOT / "examples" / "sfc-fmnist.pt")])
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    pixels = data.load("fashion-mnist").test.images[: args.images]
    table = Table("checkpoint", "images", "threads", "PyTorch float img/s", "reference img/s", "ratio",
                  title="bnn2fpga reference vs PyTorch float inference (same batch, same process)")
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
            reference.run(graph, pixels, batch_size=args.batch_size)

        run_torch(), run_reference()  # warm-up: allocator, caches
        t_torch = t_ref = float("inf")
        for _ in range(args.repeats):  # alternate so drift in machine load hits both
            t_torch = min(t_torch, best_time(run_torch, 1))
            t_ref = min(t_ref, best_time(run_reference, 1))
        table.add_row(Path(path).name, str(len(pixels)), str(torch.get_num_threads()),
                      f"{len(pixels) / t_torch:,.0f}", f"{len(pixels) / t_ref:,.0f}", f"{t_torch / t_ref:.2f}x")
        assert np.array_equal(reference.run(graph, pixels[:100]).predictions,
                              model(torch.from_numpy(pixels[:100])).argmax(1).numpy())
    Console(soft_wrap=True).print(table)


if __name__ == "__main__":
    main()
