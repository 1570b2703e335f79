"""BNN-PYNQ's published parameters through bnn2fpga: import, classify BNN-PYNQ's own test pictures, repack.

Reads a checkout of Xilinx/BNN-PYNQ (not shipped with bnn2fpga: its parameters are Xilinx's) and,
for the W1A1 networks with a test picture in that repository, prints

- the class bnn2fpga's reference predicts for each picture, next to the class BNN-PYNQ's own tests
  (``tests/test_qnn.py``) or the picture's name expect, and the popcounts;
- whether ``bnn2fpga export --format bnn-pynq`` of the imported network rewrites the folder byte for
  byte (the first ``cnv`` layer's thresholds may differ in value and not in effect: any threshold
  between two reachable sums is the same function; those files are counted apart).

Pictures go through BNN-PYNQ's ``image_to_cifar`` steps (thumbnail to 32x32, pasted centred on a
white background). Run it with the repository's path:

    git clone https://github.com/Xilinx/BNN-PYNQ
    python benchmarks/bnn_pynq_published.py BNN-PYNQ
"""

from __future__ import annotations

import argparse
import filecmp
import tempfile
from pathlib import Path

import numpy as np

from bnn2fpga.interop.bnn_pynq import TOPOLOGIES, read_folder, write_folder
from bnn2fpga.ir.pipeline import lower
from bnn2fpga.reference import run

# (params folder, topology, picture, expected class index, where the expectation comes from)
CASES = [
    ("mnist/lfcW1A1", "lfc", "tests/Test_image/3.image-idx3-ubyte", 3, "tests/test_qnn.py"),
    ("cifar10/cnvW1A1", "cnv", "tests/Test_image/deer.jpg", 4, "tests/test_qnn.py"),
    ("cifar10/cnvW1A1", "cnv", "notebooks/pictures/airplane.jpg", 0, "file name"),
    ("cifar10/cnvW1A1", "cnv", "notebooks/pictures/car.png", 1, "file name"),
    ("cifar10/cnvW1A1", "cnv", "notebooks/pictures/bird.jpg", 2, "file name"),
    ("cifar10/cnvW1A1", "cnv", "notebooks/pictures/dog.jpg", 5, "file name"),
    ("streetview/cnvW1A1", "cnv", "tests/Test_image/6.png", 5, "tests/test_qnn.py"),
]


def picture(path: Path, topology: str) -> np.ndarray:
    """uint8 (1, C, H, W) as BNN-PYNQ's Python driver prepares it."""
    if topology == "lfc":
        return np.frombuffer(path.read_bytes()[16:16 + 784], np.uint8).reshape(1, 1, 28, 28)
    from PIL import Image

    img = Image.open(path)
    img.thumbnail((32, 32), Image.LANCZOS)
    background = Image.new("RGBA", (32, 32), (255, 255, 255, 0))
    background.paste(img, ((32 - img.size[0]) // 2, (32 - img.size[1]) // 2))
    return np.array(background)[:, :, :3].transpose(2, 0, 1)[None].copy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("repo", type=Path, help="a checkout of Xilinx/BNN-PYNQ")
    args = parser.parse_args()
    params = args.repo / "bnn" / "params"
    tests = args.repo / "bnn"
    print(f"{'network':<22} {'picture':<14} {'expected':>8} {'bnn2fpga':>8}  class          popcounts")
    right = 0
    for folder, topology, pic, expected, _ in CASES:
        ckpt = read_folder(params / folder, TOPOLOGIES[topology])
        names = ckpt.training["imported_from"].get("class_names", [])
        result = run(lower(ckpt), picture(tests / pic if (tests / pic).exists() else args.repo / pic, topology))
        got = int(result.predictions[0])
        right += got == expected
        print(f"{folder:<22} {Path(pic).name:<14} {expected:>8} {got:>8}  {names[got] if names else got:<14} "
              f"{result.popcounts[0].tolist()}")
    print(f"{right} of {len(CASES)} pictures classified as BNN-PYNQ expects")
    for folder, topology in (("mnist/lfcW1A1", "lfc"), ("cifar10/cnvW1A1", "cnv")):
        ckpt = read_folder(params / folder, TOPOLOGIES[topology])
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "params"
            written = write_folder(ckpt, out, TOPOLOGIES[topology])
            same = [p for p in written if filecmp.cmp(p, params / folder / p.name, shallow=False)]
            differ = [p.name for p in written if p not in same]
            first = [n for n in differ if n.startswith("0-") and n.endswith("-thres.bin") and topology == "cnv"]
            print(f"repack {folder}: {len(same)} of {len(written)} files byte-identical"
                  + (f"; {len(first)} differ, all first-layer thresholds of the same function" if first else "")
                  + (f"; OTHERS DIFFER: {sorted(set(differ) - set(first))}" if set(differ) - set(first) else ""))
            back = read_folder(out, TOPOLOGIES[topology])
            a, b = lower(ckpt), lower(back)
            same_fn = all(np.array_equal(getattr(x, "thresholds", None), getattr(y, "thresholds", None))
                          and np.array_equal(getattr(x, "weights", 0), getattr(y, "weights", 0))
                          for x, y in zip(a.layers, b.layers, strict=True))
            print(f"  re-import of the repacked folder: {'the same' if same_fn else 'A DIFFERENT'} integer network")


if __name__ == "__main__":
    main()
