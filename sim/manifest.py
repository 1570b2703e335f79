"""Read a build folder's ``manifest.json`` (docs/architecture.md, build folder) as far as the simulators need it.

Every simulator path (cocotb testbench, C++ harness, runners) takes widths, beat counts
and expected cycle numbers from here, never from literals, so one change in the compiler's
output reaches all of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "bnn2fpga-build/1"


class ManifestError(ValueError):
    """The build folder's manifest.json is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class Manifest:
    build_dir: Path
    top: str
    clock_mhz: float
    in_bits: int               # s_axis_tdata width
    pixels_per_beat: int
    in_beats: int              # input beats per frame
    samples_per_frame: int
    shape: tuple[int, int, int]  # (H, W, C), HWC order
    out_bits: int              # m_axis_tdata width
    out_beats: int             # output beats per frame == number of classes
    initiation_interval: int
    latency: int
    sources: tuple[Path, ...]   # absolute paths
    memories: tuple[Path, ...]  # absolute paths
    logit_table: tuple[tuple[float, ...], ...] | None
    raw: dict[str, Any]

    @property
    def classes(self) -> int:
        return self.out_beats

    @property
    def in_bytes(self) -> int:
        return self.in_bits // 8

    def check_files(self) -> None:
        """Fail early: a missing ``$readmemh`` file is only a simulator warning (ROM reads zeros)."""
        missing = [str(p) for p in (*self.sources, *self.memories) if not p.is_file()]
        if missing:
            raise ManifestError(f"{self.build_dir}: files listed in manifest.json are missing: {missing}")


def _field(d: dict[str, Any], path: str) -> Any:
    node: Any = d
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            raise ManifestError(f"manifest.json has no field {path!r}")
        node = node[key]
    return node


def _int(d: dict[str, Any], path: str, minimum: int = 1) -> int:
    value = _field(d, path)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ManifestError(f"manifest.json field {path!r} must be an integer >= {minimum}, not {value!r}")
    return value


def load_manifest(build_dir: str | Path) -> Manifest:
    build_dir = Path(build_dir).resolve()
    path = build_dir / "manifest.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ManifestError(f"{build_dir} is not a build folder: no manifest.json") from None
    except json.JSONDecodeError as e:
        raise ManifestError(f"{path}: not valid JSON: {e}") from None
    if raw.get("format") != FORMAT:
        raise ManifestError(f"{path}: format must be {FORMAT!r}, not {raw.get('format')!r}")

    in_bits = _int(raw, "input.tdata_bits")
    ppb = _int(raw, "input.pixels_per_beat")
    if in_bits != 8 * ppb:
        raise ManifestError(f"input.tdata_bits ({in_bits}) must be 8 * input.pixels_per_beat ({ppb})")
    if _field(raw, "input.order") != "HWC" or _field(raw, "input.pixel_bits") != 8:
        raise ManifestError("only input.order 'HWC' with input.pixel_bits 8 is supported")
    shape = _field(raw, "input.shape")
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(s, int) and s > 0 for s in shape)):
        raise ManifestError(f"input.shape must be [H, W, C] of positive integers, not {shape!r}")
    samples = _int(raw, "input.samples_per_frame")
    if samples != shape[0] * shape[1] * shape[2]:
        raise ManifestError(f"input.samples_per_frame ({samples}) != H*W*C of input.shape {shape}")
    in_beats = _int(raw, "input.beats_per_frame")
    if in_beats != -(-samples // ppb):
        raise ManifestError(f"input.beats_per_frame ({in_beats}) != ceil({samples} / {ppb})")
    out_bits = _int(raw, "output.tdata_bits")
    if out_bits % 8 or out_bits > 64:
        raise ManifestError(f"output.tdata_bits must be a multiple of 8 up to 64, not {out_bits}")
    table = raw["output"].get("logit_table")
    logit_table = None if table is None else tuple(tuple(float(v) for v in row) for row in table)

    def files(key: str) -> tuple[Path, ...]:
        items = _field(raw, key)
        if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
            raise ManifestError(f"manifest.json field {key!r} must be a list of relative paths")
        return tuple(build_dir / s for s in items)

    return Manifest(
        build_dir=build_dir,
        top=str(_field(raw, "top")),
        clock_mhz=float(_field(raw, "clock_mhz")),
        in_bits=in_bits,
        pixels_per_beat=ppb,
        in_beats=in_beats,
        samples_per_frame=samples,
        shape=(shape[0], shape[1], shape[2]),
        out_bits=out_bits,
        out_beats=_int(raw, "output.beats_per_frame"),
        initiation_interval=_int(raw, "cycles.initiation_interval"),
        latency=_int(raw, "cycles.latency"),
        sources=files("sources"),
        memories=files("memories"),
        logit_table=logit_table,
        raw=raw,
    )


def pack_frames(manifest: Manifest, images: np.ndarray) -> np.ndarray:
    """Images (N, H, W, C) uint8 -> input stream bytes (N, beats * PPB), HWC order, zero-padded.

    Byte ``k`` of a frame is lane ``k % PPB`` of beat ``k // PPB`` (first pixel in the low byte).
    """
    images = np.asarray(images)
    expected = (manifest.shape[0], manifest.shape[1], manifest.shape[2])
    if images.ndim != 4 or images.shape[1:] != expected:
        raise ValueError(f"images must have shape (N, {', '.join(map(str, expected))}), not {images.shape}")
    if images.dtype != np.uint8:
        raise TypeError(f"images must be uint8, not {images.dtype}")
    flat = images.reshape(len(images), manifest.samples_per_frame)
    padded = np.zeros((len(images), manifest.in_beats * manifest.pixels_per_beat), dtype=np.uint8)
    padded[:, : manifest.samples_per_frame] = flat
    return padded


def check_expected(manifest: Manifest, images: np.ndarray, expected: np.ndarray) -> np.ndarray:
    expected = np.asarray(expected)
    if expected.shape != (len(images), manifest.classes):
        want = (len(images), manifest.classes)
        raise ValueError(f"expected must have shape {want}, not {expected.shape}")
    if not np.issubdtype(expected.dtype, np.integer) or (expected < 0).any():
        raise ValueError("expected popcounts must be non-negative integers")
    return expected.astype(np.int64)


def predict(manifest: Manifest, popcounts: np.ndarray) -> np.ndarray:
    """Host-side prediction: argmax over classes of ``logit_table[c][popcount_c]``, lowest index on ties."""
    if manifest.logit_table is None:
        raise ManifestError("manifest.json has no output.logit_table")
    pcs = np.asarray(popcounts, dtype=np.int64)
    if pcs.ndim != 2 or pcs.shape[1] != len(manifest.logit_table):
        raise ValueError(f"popcounts must have shape (N, {len(manifest.logit_table)}), not {pcs.shape}")
    width = min(len(row) for row in manifest.logit_table)
    if (pcs < 0).any() or (pcs >= width).any():
        # A popcount beyond the table is a hardware error: never clip it away.
        raise ValueError(f"popcounts must lie in 0..{width - 1}, got {pcs.min()}..{pcs.max()}")
    logits = np.stack([np.asarray(row)[pcs[:, c]] for c, row in enumerate(manifest.logit_table)], axis=1)
    return np.argmax(logits, axis=1)  # argmax returns the first maximum: lowest index on ties
