"""The hand-written fake accelerator (fixtures/fake_build/) and its Python model.

The fake obeys the top-level contract; its model here is independent of the Verilog:
out[c] = popcount(XNOR(frame bits, weights of class c)) over all 8 planes of every pixel.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from bnn2fpga.contract.manifest import Manifest, pack_frames

FIXTURE = Path(__file__).parent / "fixtures" / "fake_build"


def fake_expected(manifest: Manifest, images: np.ndarray) -> np.ndarray:
    """Reference popcounts of the fake design: (N, classes)."""
    # Class c of a ROM word is bits [c*W +: W]: its little-endian bytes are class 0 first, lanes in order.
    nbytes = manifest.classes * manifest.in_bytes
    words = [int(line, 16) for line in (manifest.build_dir / "fake_weights.mem").read_text().split()]
    wbytes = np.array([list(w.to_bytes(nbytes, "little")) for w in words], dtype=np.uint8)
    wbytes = wbytes.reshape(manifest.in_beats, manifest.classes, manifest.in_bytes)
    frames = pack_frames(manifest, images).reshape(len(images), manifest.in_beats, 1, manifest.in_bytes)
    xnor = ~(frames ^ wbytes[None])  # (N, beats, classes, bytes)
    return np.unpackbits(xnor, axis=-1).sum(axis=(1, 3)).astype(np.int64)


def random_images(manifest: Manifest, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, *manifest.shape), dtype=np.uint8)


def mutate(src: Path, dst: Path, old: str, new: str) -> Path:
    """A copy of the fake build with one edit to its Verilog: a known bug to be caught."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("sim_build"))
    verilog = dst / "fake_top.v"
    text = verilog.read_text()
    assert text.count(old) == 1, f"mutation anchor {old!r} not unique in fake_top.v"
    verilog.write_text(text.replace(old, new))
    return dst
