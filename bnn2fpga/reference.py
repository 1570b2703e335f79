"""The bit-exact reference: executes an integer Graph on bit-packed words with XNOR + popcount.

This module *is* the numeric contract (docs/architecture.md, numeric contract): PyTorch parity tests,
every pass and every hardware test compare against it. Feature maps are HWC
bit arrays; fan-in vectors are packed little-endian into uint64 words so one
word carries 64 binary multiplications, and the dot product's popcount is
``MW - popcount(a XOR w)`` (XOR counts disagreements; zero padding agrees).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .ir.graph import BinaryConv, BinaryDense, Concat, Graph, InputSpec, Layer, MaxPool, Output

# Work on blocks of about this many uint64 words so temporaries stay in cache.
_BLOCK_WORDS = 1 << 16


def slice_planes(pixels: np.ndarray, spec: InputSpec) -> np.ndarray:
    """uint8 pixels (B, C, H, W) -> bits (B, H, W, C*P), channel index c*P + i for plane planes[i]."""
    _check_pixels(pixels, spec)
    planes = np.asarray(spec.planes, dtype=np.uint8)
    hwc = pixels.transpose(0, 2, 3, 1)  # (B, H, W, C)
    bits = (hwc[..., None] >> planes) & 1  # (B, H, W, C, P)
    return bits.reshape(*hwc.shape[:3], spec.channels * len(spec.planes)).astype(np.uint8)


def codes(pixels: np.ndarray, spec: InputSpec) -> np.ndarray:
    """uint8 pixels (B, C, H, W) -> the codes the first layer reads: ``table[c][pixel]`` with an
    input table, else the pixels themselves."""
    _check_pixels(pixels, spec)
    if spec.table is None:
        return pixels
    table = np.asarray(spec.table, dtype=np.uint8)  # (C, 256)
    return table[np.arange(spec.channels).reshape(1, -1, 1, 1), pixels]


def _check_pixels(pixels: np.ndarray, spec: InputSpec) -> None:
    if pixels.dtype != np.uint8 or pixels.ndim != 4:
        raise ValueError(f"pixels must be uint8 (B, C, H, W), not {pixels.dtype} {pixels.shape}")
    expected = (spec.channels, spec.height, spec.width)
    if pixels.shape[1:] != expected:
        raise ValueError(f"pixels have shape {pixels.shape[1:]}, the network expects {expected}")


def pack(bits: np.ndarray) -> np.ndarray:
    """(..., N) 0/1 -> (..., ceil(N/64)) uint64, bit i of the vector in bit i%64 of word i//64."""
    n = bits.shape[-1]
    packed = np.packbits(bits, axis=-1, bitorder="little")
    pad = (-packed.shape[-1]) % 8
    if pad:
        packed = np.concatenate([packed, np.zeros((*packed.shape[:-1], pad), np.uint8)], axis=-1)
    out = np.ascontiguousarray(packed).view("<u8")
    assert out.shape[-1] == (n + 63) // 64
    return out


def popcounts(x_bits: np.ndarray, w_bits: np.ndarray) -> np.ndarray:
    """popcount(XNOR(x_b, w_m)) for x_bits (B, N) and w_bits (M, N) -> (B, M) int32."""
    return _popcounts_packed(pack(x_bits), pack(w_bits), x_bits.shape[-1])


def _pack_bytes(rows: np.ndarray) -> np.ndarray:
    """(B, nbytes) uint8 already in packed little-endian bit order -> (B, words) uint64."""
    pad = (-rows.shape[1]) % 8
    if pad:
        rows = np.concatenate([rows, np.zeros((rows.shape[0], pad), np.uint8)], axis=1)
    return np.ascontiguousarray(rows).view("<u8")


def _popcounts_packed(x: np.ndarray, w: np.ndarray, n: int) -> np.ndarray:
    words = x.shape[1]
    out = np.empty((x.shape[0], w.shape[0]), dtype=np.int32)
    if words <= 32:
        # Few words per vector (conv patches, narrow layers): accumulate word by word over
        # (B, M) planes; numpy's reduction over a short innermost axis is slow.
        wt = np.ascontiguousarray(w.T)
        rows = max(1, _BLOCK_WORDS // max(1, w.shape[0]))
        for start in range(0, x.shape[0], rows):
            xs = x[start:start + rows]
            acc = np.zeros((xs.shape[0], w.shape[0]), np.uint32)
            tmp = np.empty_like(acc, dtype=np.uint64)
            for k in range(words):
                np.bitwise_xor(xs[:, k, None], wt[k][None, :], out=tmp)
                acc += np.bitwise_count(tmp)
            out[start:start + rows] = n - acc.astype(np.int32)
        return out
    rows = max(1, _BLOCK_WORDS // max(1, words * w.shape[0]))
    for start in range(0, x.shape[0], rows):
        block = x[start:start + rows, None, :] ^ w[None, :, :]
        out[start:start + rows] = n - np.bitwise_count(block).sum(axis=-1, dtype=np.int32)
    return out


def threshold(pc: np.ndarray, layer: BinaryDense | BinaryConv) -> np.ndarray:
    assert layer.thresholds is not None and layer.direction is not None, f"{layer.name}: run fold_batchnorm first"
    up = pc >= layer.thresholds
    down = pc <= layer.thresholds
    return np.where(layer.direction > 0, up, down).astype(np.uint8)


def im2col(bits: np.ndarray, layer: BinaryConv) -> np.ndarray:
    """(B, H, W, C) -> (B, OH, OW, K*K*C) patches in (ky, kx, c) order, padded with the layer's pad bit."""
    p, k = layer.padding, layer.kernel
    if p:
        bits = np.pad(bits, ((0, 0), (p, p), (p, p), (0, 0)), constant_values=layer.pad_bit)
    oh, ow, _ = layer.out_shape
    cols = [bits[:, ky:ky + oh, kx:kx + ow, :] for ky in range(k) for kx in range(k)]
    return np.concatenate(cols, axis=-1)


def integer_layer(pixels: np.ndarray, layer: BinaryDense | BinaryConv, spec: InputSpec) -> np.ndarray:
    """An integer-input first layer on uint8 pixels (B, C, H, W) -> output bits (B, OH, OW, MH).

    Its count is S = sum over kept planes p of 2^p * popcount(xnor(bit_p, w)) (``graph._IntegerInput``):
    one XNOR-popcount per plane with the weights shared, then a shift-add, as the hardware does."""
    assert layer.input_planes is not None
    _check_pixels(pixels, spec)
    b = len(pixels)
    hwc = pixels.transpose(0, 2, 3, 1)
    w = layer.weights.reshape(layer.mh, -1)
    counts = None
    for p in layer.input_planes:
        plane = ((hwc >> p) & 1).astype(np.uint8)
        x = im2col(plane, layer).reshape(-1, layer.mw) if isinstance(layer, BinaryConv) else plane.reshape(b, -1)
        pc = popcounts(x, w).astype(np.int64) << p
        counts = pc if counts is None else counts + pc
    assert counts is not None
    out = threshold(counts, layer)
    if isinstance(layer, BinaryConv):
        return out.reshape(b, *layer.out_shape)
    return out.reshape(b, 1, 1, -1)


def run_layer(bits: np.ndarray, layer: Layer) -> np.ndarray:
    """One layer on a batch of HWC bit maps (B, H, W, C); Output returns popcounts (B, K).

    A branch runs each path on the map and concatenates the paths' maps along the channels."""
    b = bits.shape[0]
    if isinstance(layer, Concat):
        outs = []
        for path in layer.paths:
            out = bits
            for step in path:
                out = run_layer(out, step)
            outs.append(out)
        return np.concatenate(outs, axis=-1)
    if isinstance(layer, BinaryConv):
        patches = im2col(bits, layer)
        oh, ow, oc = layer.out_shape
        pc = popcounts(patches.reshape(b * oh * ow, -1), layer.weights.reshape(oc, -1))
        return threshold(pc, layer).reshape(b, oh, ow, oc)
    if isinstance(layer, MaxPool):
        s = layer.size
        oh, ow, c = layer.out_shape
        window = bits[:, :oh * s, :ow * s, :].reshape(b, oh, s, ow, s, c)
        return window.max(axis=(2, 4))
    flat = bits.reshape(b, -1)
    pc = popcounts(flat, layer.weights)
    if isinstance(layer, Output):
        return pc
    return threshold(pc, layer).reshape(b, 1, 1, -1)


@dataclass(frozen=True)
class Result:
    popcounts: np.ndarray  # (B, K) int32: the integer class scores hardware emits
    predictions: np.ndarray  # (B,) int64


def predict_from_popcounts(pc: np.ndarray, output: Output) -> np.ndarray:
    """Host-side prediction: argmax of the float logit table at each popcount, lowest index on ties."""
    assert output.logit_table is not None, "run fold_batchnorm first"
    scores = output.logit_table[np.arange(output.mh)[None, :], pc]
    return np.argmax(scores, axis=1).astype(np.int64)


def run(graph: Graph, pixels: np.ndarray, batch_size: int = 500, workers: int | None = None) -> Result:
    """Run the integer graph on uint8 pixels (B, C, H, W).

    Batches run on ``workers`` threads (default: the CPUs this process may use): NumPy
    releases the GIL inside its ufuncs, so the XOR/popcount work spreads over cores.
    """
    first = graph.layers[0]
    # With all 8 planes kept, the bit-sliced HWC vector packed little-endian *is* the pixel bytes
    # (feature s*8 + b = bit b of sample s), so the first dense layer can skip slicing and packing.
    raw_first = (isinstance(first, BinaryDense) and graph.input.encoding == "planes"
                 and graph.input.planes == tuple(range(8)))
    first_words = pack(first.weights) if raw_first else None

    def run_chunk(chunk: np.ndarray) -> np.ndarray:
        chunk = codes(chunk, graph.input)
        if graph.input.encoding == "integer":
            assert isinstance(first, BinaryDense | BinaryConv)
            bits = integer_layer(chunk, first, graph.input)
            layers = graph.layers[1:]
        elif first_words is not None:
            _check_pixels(chunk, graph.input)
            rows = _pack_bytes(chunk.transpose(0, 2, 3, 1).reshape(len(chunk), -1))
            bits = threshold(_popcounts_packed(rows, first_words, first.mw), first).reshape(len(chunk), 1, 1, -1)
            layers = graph.layers[1:]
        else:
            bits = slice_planes(chunk, graph.input)
            layers = graph.layers
        for layer in layers:
            bits = run_layer(bits, layer)
        return bits

    chunks = [pixels[i:i + batch_size] for i in range(0, len(pixels), batch_size)]
    workers = workers or len(os.sched_getaffinity(0))
    if workers > 1 and len(chunks) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            outs = list(pool.map(run_chunk, chunks))
    else:
        outs = [run_chunk(c) for c in chunks]
    pc = np.concatenate(outs) if outs else np.zeros((0, graph.output.mh), np.int32)
    return Result(pc, predict_from_popcounts(pc, graph.output))


def layer_outputs(graph: Graph, pixels: np.ndarray) -> list[np.ndarray]:
    """Every layer's output for a batch (for per-engine hardware tests); the first entry is the
    sliced input (all kept planes, also for an integer-input first layer)."""
    pixels = codes(pixels, graph.input)
    bits = slice_planes(pixels, graph.input)
    outs = [bits]
    for i, layer in enumerate(graph.layers):
        if i == 0 and graph.input.encoding == "integer":
            assert isinstance(layer, BinaryDense | BinaryConv)
            bits = integer_layer(pixels, layer, graph.input)
        else:
            bits = run_layer(bits, layer)
        outs.append(bits)
    return outs
