"""Fixtures for the simulation tooling: a hand-written fake accelerator and its Python model.

The fake (fixtures/fake_build/fake_top.v) obeys the top-level contract; its model here
is independent of the Verilog: out[c] = popcount(XNOR(frame bits, weights of class c)).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from bnn2fpga.sim.manifest import Manifest, load_manifest, pack_frames

FIXTURE = Path(__file__).parent / "fixtures" / "fake_build"


def fake_expected(manifest: Manifest, images: np.ndarray) -> np.ndarray:
    """Reference popcounts of the fake design: (N, classes)."""
    lane_bits = manifest.in_bits
    words = [int(line, 16) for line in (manifest.build_dir / "fake_weights.mem").read_text().split()]
    # weights[b, c] = the class-c word used on beat b, as bytes in lane order
    weights = np.array(
        [
            [((w >> (c * lane_bits)) & ((1 << lane_bits) - 1)).to_bytes(lane_bits // 8, "little") for c in
             range(manifest.classes)]
            for w in words
        ]
    )
    wbytes = np.frombuffer(b"".join(weights.flatten()), dtype=np.uint8).reshape(
        manifest.in_beats, manifest.classes, manifest.in_bytes
    )
    frames = pack_frames(manifest, images).reshape(len(images), manifest.in_beats, 1, manifest.in_bytes)
    xnor = ~(frames ^ wbytes[None])  # (N, beats, classes, bytes)
    return np.unpackbits(xnor, axis=-1).sum(axis=(1, 3)).astype(np.int64)


def random_images(manifest: Manifest, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, *manifest.shape), dtype=np.uint8)


@pytest.fixture(scope="session")
def fake_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the fake build folder: simulators cache their builds inside it."""
    dst = tmp_path_factory.mktemp("fake") / "build"
    shutil.copytree(FIXTURE, dst)
    return dst


@pytest.fixture(scope="session")
def fake_manifest(fake_build: Path) -> Manifest:
    return load_manifest(fake_build)
