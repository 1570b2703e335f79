"""BNN-PYNQ parameter folders <-> bnn2fpga checkpoints (W1A1: binary weights and activations).

A folder holds, for every weight layer L and processing element p, ``L-p-weights.bin`` and
(except for the last layer) ``L-p-thres.bin``:

- **weights**: little-endian uint64 words, one SIMD-wide group of 1-bit weights each, least
  significant bit first (bit 1 = +1). Output neuron n lives on PE ``n mod PE`` at neuron fold
  ``n // PE``; its ``MW / SIMD`` groups follow one another, so a PE holds
  ``(MH / PE) * (MW / SIMD)`` words (WMEM). Matrices are padded to multiples of SIMD and PE (the
  first and last layer of the dense ``lfc`` to 64, for its 64-bit AXI words) with 1-weights;
  padded inputs are 0, so padding adds nothing to a popcount. Conv weight columns run over the
  window in (ky, kx, channel) order, which is bnn2fpga's HWC order.
- **thresholds**: little-endian int64, one per neuron, laid out as the neurons (TMEM per PE).
  A binary layer outputs ``popcount > T`` (finn-hlslib's default comparison, ``T < accu``), the
  popcount counting matching bits over the real inputs. The ``cnv`` first layer reads each pixel
  as ``ap_fixed<8,1>`` (raw q = pixel - 128, value q / 128) and outputs ``sum w*q/128 > T``, its
  thresholds stored as ``ap_fixed<64,56>`` (raw integer / 256).
- the last layer outputs its popcounts; the class is the largest.

PE and SIMD per layer are those of the W1A1 networks' ``config.h`` in Xilinx/BNN-PYNQ
(``bnn/src/network/<net>/hw/config.h``); ``--config`` reads another ``config.h``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import Checkpoint
from ..errors import UserError
from ..ir.graph import BinaryConv, BinaryDense, Graph, MaxPool, Output
from ..ir.pipeline import HARDWARE_STEPS, lower
from ..nn.models import make_architecture
from .assemble import Layer, to_model


class BnnPynqError(UserError):
    pass


@dataclass(frozen=True)
class Fold:
    simd: int
    pe: int


@dataclass(frozen=True)
class Topology:
    name: str
    zoo: str  # the bnn2fpga model with the same layers
    shape: tuple[int, int, int]  # C, H, W of the image
    encoding: str  # "planes" (1-bit input, plane 7) or "integer" (8-bit fixed-point first layer)
    folds: tuple[Fold, ...]  # one per weight layer, the output layer last
    dataset: str  # the bnn2fpga dataset whose images have this shape

    def architecture(self, classes: int) -> dict[str, Any]:
        planes = [7] if self.encoding == "planes" else None
        c, h, w = self.shape
        return make_architecture(self.zoo, channels=c, height=h, width=w, classes=classes, planes=planes,
                                 encoding=self.encoding)


# From BNN-PYNQ's lfcW1A1 and cnvW1A1 config.h (the PYNQ-Z1/Z2 overlays).
TOPOLOGIES = {
    "lfc": Topology("lfc", "lfc", (1, 28, 28), "planes",
                    (Fold(64, 32), Fold(32, 64), Fold(64, 32), Fold(8, 16)), "fashion-mnist"),
    "cnv": Topology("cnv", "cnv", (3, 32, 32), "integer",
                    (Fold(3, 16), Fold(32, 32), Fold(32, 16), Fold(32, 16), Fold(32, 4), Fold(32, 1),
                     Fold(4, 1), Fold(8, 1), Fold(1, 4)), "fashion-mnist-32rgb"),
}
THRESHOLD_MAX = 2**15 - 1  # finnthesizer pads neurons with 2^16 - 1, saturated to int16
FIXED_FRACTION = 256  # ap_fixed<64,56>: 8 fractional bits
PIXEL_OFFSET = 128  # ap_fixed<8,1> raw value of a pixel: q = pixel - 128
INPUT_SCALE = 128  # ... whose value is q / 128


def read_config(path: Path | str, layers: int) -> tuple[Fold, ...]:
    """SIMD and PE of layers 0..layers-1 from a finnthesizer ``config.h``."""
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        raise BnnPynqError(f"{path}: cannot read the config.h ({e.strerror})") from None
    found = {(int(m[1]), m[2]): int(m[3]) for m in re.finditer(r"#define\s+L(\d+)_(SIMD|PE)\s+(\d+)", text)}
    folds = []
    for i in range(layers):
        if (i, "SIMD") not in found or (i, "PE") not in found:
            raise BnnPynqError(f"{path}: no L{i}_SIMD / L{i}_PE defines; the topology has {layers} weight layers")
        if found[i, "SIMD"] < 1 or found[i, "PE"] < 1:
            raise BnnPynqError(f"{path}: L{i}_SIMD and L{i}_PE must be at least 1, not {found[i, 'SIMD']} and "
                               f"{found[i, 'PE']}")
        folds.append(Fold(found[i, "SIMD"], found[i, "PE"]))
    return tuple(folds)


def _pad(n: int, to: int) -> int:
    return -(-n // to) * to


def _padded(index: int, count: int, mh: int, mw: int, fold: Fold, dense_input: bool) -> tuple[int, int]:
    """finnthesizer's padded (MH, MW): to PE and SIMD, and a dense network's first input and last
    output to 64 as well (its AXI words)."""
    mw_p = _pad(mw, max(fold.simd, 64) if index == 0 and dense_input else fold.simd)
    mh_p = _pad(mh, max(fold.pe, 64) if index == count - 1 else fold.pe)
    return mh_p, mw_p


def _padded_in_folder(folder: Path, index: int, count: int, mh: int, mw: int, fold: Fold) -> tuple[int, int]:
    """The padded (MH, MW) of a layer in a folder. finnthesizer versions differ in how far they pad
    the first layer's inputs and the last layer's outputs (to SIMD and PE, or to 64), so those two
    are read from the size of PE 0's weight file; every other size follows from PE and SIMD."""
    path = folder / f"{index}-0-weights.bin"
    words = path.stat().st_size // 8 if path.is_file() else 0
    mh_p, mw_p = _pad(mh, fold.pe), _pad(mw, fold.simd)
    if index == 0 and words:
        mw_p = words * fold.simd // (mh_p // fold.pe)
    elif index == count - 1 and words:
        mh_p = words * fold.pe // (mw_p // fold.simd)
    if mh_p < mh or mw_p < mw or mh_p % fold.pe or mw_p % fold.simd:
        raise BnnPynqError(f"{path}: {8 * words} bytes do not hold layer {index}'s {mh} x {mw} weights at PE "
                           f"{fold.pe}, SIMD {fold.simd}; check --topology and --classes (or --config)")
    return mh_p, mw_p


def _read(path: Path, dtype: str, words: int) -> np.ndarray:
    if not path.is_file():
        raise BnnPynqError(f"{path}: missing; a BNN-PYNQ folder has L-p-weights.bin (and L-p-thres.bin) for "
                           "every layer L and PE p. Check --topology (or --config for another folding)")
    data = np.fromfile(path, dtype=dtype)
    if data.size != words or path.stat().st_size != 8 * words:
        raise BnnPynqError(f"{path}: {path.stat().st_size} bytes, expected {8 * words} ({words} words) for this "
                           "layer's PE and SIMD; the folder was made for another folding: give its config.h "
                           "with --config")
    return data


def _unpack_weights(folder: Path, index: int, fold: Fold, mh_p: int, mw_p: int) -> np.ndarray:
    """(MH, MW) 0/1 bits of layer ``index``, padded."""
    groups, nf = mw_p // fold.simd, mh_p // fold.pe
    bits = np.zeros((mh_p, mw_p), np.uint8)
    shifts = np.arange(fold.simd, dtype=np.uint64)
    for p in range(fold.pe):
        words = _read(folder / f"{index}-{p}-weights.bin", "<u8", nf * groups)
        pe_bits = ((words[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)
        bits[p::fold.pe] = pe_bits.reshape(nf, groups * fold.simd)
    return bits


def _unpack_thresholds(folder: Path, index: int, fold: Fold, mh_p: int) -> np.ndarray:
    t = np.zeros(mh_p, np.int64)
    for p in range(fold.pe):
        t[p::fold.pe] = _read(folder / f"{index}-{p}-thres.bin", "<i8", mh_p // fold.pe)
    return t


def _weight_layers(arch: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(kind, MH, MW) of each weight layer of a bnn2fpga architecture."""
    from ..nn.models import layer_shapes

    return [(spec["kind"], s["out_c"], s["fan_in"])
            for spec, s in zip(arch["layers"], layer_shapes(arch), strict=True) if spec["kind"] != "pool"]


def read_folder(folder: Path | str, topology: Topology, *, classes: int | None = None,
                config: Path | str | None = None) -> Checkpoint:
    """The bnn2fpga checkpoint of the BNN-PYNQ parameter folder ``folder`` of ``topology``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BnnPynqError(f"{folder}: not a directory; a BNN-PYNQ network is a folder of *-weights.bin files")
    names = _class_names(folder)
    if classes is None:
        classes = len(names) if names else 10
    arch = topology.architecture(classes)
    shapes = _weight_layers(arch)
    folds = read_config(config, len(shapes)) if config is not None else topology.folds
    layers: list[Layer] = []
    weighted = iter(range(len(shapes)))
    for spec in arch["layers"]:
        if spec["kind"] == "pool":
            layers.append(Layer("pool"))
            continue
        i = next(weighted)
        kind, mh, mw = shapes[i]
        fold = folds[i]
        mh_p, mw_p = _padded_in_folder(folder, i, len(shapes), mh, mw, fold)
        bits = _unpack_weights(folder, i, fold, mh_p, mw_p)
        if not bits[:, mw:].all() or not bits[mh:].all():
            raise BnnPynqError(f"layer {i}: the padding weights are not all 1, so this is not a {topology.name} "
                               f"folder with {mh} x {mw} weights at PE {fold.pe}, SIMD {fold.simd}")
        bits = bits[:mh, :mw]
        signs = bits.astype(np.float32) * 2 - 1
        if kind == "conv":
            k = spec["kernel"]
            signs = signs.reshape(mh, k, k, mw // (k * k)).transpose(0, 3, 1, 2)  # (ky,kx,c) -> OIHW
        ones = np.ones(mh, np.float32)
        if i == len(shapes) - 1:  # popcounts out: score = dot, the same increasing function for every class
            layers.append(Layer("output", signs, (ones, np.zeros(mh, np.float32), np.zeros(mh, np.float32))))
            continue
        raw = _unpack_thresholds(folder, i, fold, mh_p)[:mh]
        if i == 0 and topology.encoding == "integer":
            # sum w*q/128 > raw/256 with q = pixel - 128: dot = sum w*pixel > raw/2 + 128 * sum w.
            bound = raw / 2 + PIXEL_OFFSET * signs.reshape(mh, -1).sum(1)
        else:
            bound = 2.0 * raw - mw  # popcount > T  <=>  dot = 2 popcount - MW > 2T - MW
        first_on = np.floor(bound) + 1  # the smallest integer dot that fires
        layers.append(Layer(kind, signs, (ones, np.zeros(mh, np.float32), (first_on - 0.5).astype(np.float32))))
    model = to_model(arch, layers)
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.bin")):
        digest.update(path.name.encode() + path.read_bytes())
    source = {"format": "bnn-pynq", "file": folder.name, "sha256": digest.hexdigest(), "producer": "BNN-PYNQ",
              "topology": topology.name, "folds": [[f.simd, f.pe] for f in folds]}
    if names:
        source["class_names"] = names
    return Checkpoint.from_model(model, dataset=topology.dataset, metrics={"test_accuracy": None},
                                 training={"imported_from": source, "model": topology.zoo})


def _class_names(folder: Path) -> list[str]:
    path = folder / "classes.txt"
    if not path.is_file():
        return []
    return [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]


def _matrices(graph: Graph) -> list[tuple[np.ndarray, np.ndarray | None, BinaryDense | BinaryConv | Output]]:
    """Per weight layer: (MH, MW) bits in BNN-PYNQ column order, thresholds (popcount >= T) or None."""
    out: list[tuple[np.ndarray, np.ndarray | None, BinaryDense | BinaryConv | Output]] = []
    for layer in graph.layers:
        if isinstance(layer, MaxPool):
            continue
        bits = np.asarray(layer.weights).reshape(layer.mh, -1)
        out.append((bits, None if isinstance(layer, Output) else np.asarray(layer.thresholds), layer))
    return out


def write_folder(ckpt: Checkpoint, folder: Path | str, topology: Topology, *,
                 config: Path | str | None = None) -> list[Path]:
    """Write ``ckpt`` as a BNN-PYNQ parameter folder of ``topology`` (as finnthesizer packs it)."""
    folder = Path(folder)
    arch = ckpt.architecture
    classes = arch["layers"][-1]["out"]
    want = topology.architecture(classes)
    for key, what in (("input", "input"), ("layers", "layers")):
        if arch[key] != want[key]:
            have = [(s["kind"], s.get("out")) for s in arch["layers"]] if key == "layers" else arch["input"]
            need = [(s["kind"], s.get("out")) for s in want["layers"]] if key == "layers" else want["input"]
            raise BnnPynqError(f"BNN-PYNQ's {topology.name} overlay has fixed {what} {need}; this network has "
                               f"{have}. Only a network of exactly that shape loads into it")
    graph = lower(ckpt, HARDWARE_STEPS)
    output = graph.output
    table = np.asarray(output.logit_table)
    if not (np.all(table == table[:1]) and np.all(np.diff(table[0]) > 0)):
        raise BnnPynqError("the output layer scales its classes differently (a per-class batch-norm); BNN-PYNQ's "
                           "last layer outputs plain popcounts, so the predictions would change")
    matrices = _matrices(graph)
    folds = read_config(config, len(matrices)) if config is not None else topology.folds
    dense_input = isinstance(matrices[0][2], BinaryDense)
    folder.mkdir(parents=True, exist_ok=False)
    written: list[Path] = []
    for i, (bits, thresholds, layer) in enumerate(matrices):
        fold = folds[i]
        mh, mw = bits.shape
        mh_p, mw_p = _padded(i, len(matrices), mh, mw, fold, dense_input)
        padded = np.ones((mh_p, mw_p), np.uint8)
        padded[:mh, :mw] = bits
        groups = mw_p // fold.simd
        words = (padded.reshape(mh_p, groups, fold.simd).astype(np.uint64)
                 << np.arange(fold.simd, dtype=np.uint64)).sum(axis=2, dtype=np.uint64)
        for p in range(fold.pe):
            path = folder / f"{i}-{p}-weights.bin"
            words[p::fold.pe].reshape(-1).astype("<u8").tofile(path)
            written.append(path)
        if thresholds is None:
            continue
        if i == 0 and topology.encoding == "integer":
            # S >= T with S = dot + n_neg * 255  <=>  dot >= A  <=>  sum w*q > 2(A - 1 - 128 sum w) / 2.
            assert isinstance(layer, BinaryConv | BinaryDense)
            n_neg = (bits == 0).sum(1)
            first_on = thresholds - n_neg * layer.plane_weight_sum
            sum_w = 2 * bits.sum(1).astype(np.int64) - mw
            raw = 2 * (first_on - 1 - PIXEL_OFFSET * sum_w)
        else:
            raw = np.clip(thresholds - 1, -THRESHOLD_MAX - 1, THRESHOLD_MAX)  # popcount >= T  <=>  > T - 1
        t = np.full(mh_p, THRESHOLD_MAX, np.int64)
        t[:mh] = raw
        for p in range(fold.pe):
            path = folder / f"{i}-{p}-thres.bin"
            t[p::fold.pe].astype("<i8").tofile(path)
            written.append(path)
    return written
