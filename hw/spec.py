"""Hardware specification: what the compiler hands to the RTL library.

Plain frozen dataclasses, filled by the backend from its IR. They hold the
numbers that fix the hardware (weights, thresholds, folding) and check them
at construction, so every later stage can trust them.

See ``docs/hardware-contract.md`` for the bit order and the cycle contract.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ..contract.codes import CodeTable
from ..contract.planes import Planes

__all__ = ["DenseLayerSpec", "AcceleratorSpec", "ceil_div", "bits_for", "engines_within", "MUX_FOLDS"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def bits_for(value: int) -> int:
    """Number of bits of an unsigned integer that holds 0..value (at least 1)."""
    return max(1, int(value).bit_length())


def check_identifier(what: str, name: object) -> None:
    # Names end up in Verilog module and file names, so keep them plain identifiers.
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ValueError(f"{what} must be a plain identifier ([A-Za-z_][A-Za-z0-9_]*), not {name!r}")


def check_int(what: str, value: object, minimum: int, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{what} must be an integer, not {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        value = int(value)  # quote numpy integers as plain numbers
        bound = f"at least {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise ValueError(f"{what} must be {bound}, not {value!r}")


#: The default of ``DenseLayerSpec.mux_folds``: a register-held vector read in at most this many folds
#: is sliced by a multiplexer (an 8:1 mux is a LUT6 and a MUXF7 on the 7-series, two LUT4, a PFUMX and
#: an L6MUX on the ECP5: one level of slices on both); read in more, it rotates by SIMD bits at every
#: issue and the slice is its low bits (``mvtu.rotates_vector``). Wider multiplexers were the
#: FINN-shape CNV's ECP5 critical path twice: the output layer's 512-way slice, then conv4's 14-way
#: (four LUT4 levels). The rotation costs a LUT per vector bit, about four times the mux's: rotating
#: from 5 folds up cost cnv x0.75 2,100 Yosys LUTs (+6.5 %). The build picks it per part family
#: (``backend.folding.SLICE_MUX_FOLDS``).
MUX_FOLDS = 8


@dataclass(frozen=True, eq=False)
class DenseLayerSpec:
    """One binary matrix-vector(-threshold) layer and its folding.

    ``weights``: (mh, mw) array of 0/1 (bit 1 = +1). Row j is output channel j.
    ``thresholds``: (mh,) integers with ``0 <= T <= mw + 1`` for a hidden layer
    (output bit j = ``popcount(xnor(x, w_j)) >= T_j``), or ``None`` for the
    output layer, which emits the popcount of each class.
    ``pe``: output channels computed in parallel, ``1..mh``.
    ``simd``: input bits consumed per cycle per PE, ``1..mw``.
    Neither has to divide its dimension; the remainder is masked.
    ``vectors``: input vectors per frame: 1 for a dense layer, OH*OW windows for a
    convolution (each output pixel is one matrix-vector product with the same weights).
    ``out_slots``: vectors that may be started and not yet taken downstream (at least 2):
    ``out_slots - 1`` finished vectors wait in the output queue. A conv layer with few
    cycles per vector needs more than 2 to run at one vector per ``cycles``.
    ``mux_folds``: a vector held in a register and read in at most this many folds is sliced by a
    multiplexer, in more it rotates (``mvtu.rotates_vector``): a pipeline parameter of the
    folding, chosen per part family (``backend.folding.SLICE_MUX_FOLDS``).
    ``planes``: set for an integer-input first layer: its input vector holds the kept bit
    planes of each of the mw inputs (bit ``i*P + k`` = plane ``planes[k]`` of input i), the
    weights are shared by all planes, and the count is ``sum_k 2^planes[k] * popcount_k``
    (0..pc_max, pc_max = mw * sum 2^p); the planes are issued one after the other, so a
    vector takes ``ceil(mh/pe) * P * ceil(mw/simd)`` cycles. Thresholds lie in 0..pc_max+1.

    Arrays are copied and made read-only; equality is identity (arrays do not
    compare as booleans).
    """

    name: str
    weights: np.ndarray
    thresholds: np.ndarray | None
    pe: int
    simd: int
    vectors: int = 1
    out_slots: int = 2
    planes: tuple[int, ...] | None = None
    mux_folds: int = MUX_FOLDS

    def __post_init__(self) -> None:
        check_identifier("Layer name", self.name)
        if self.planes is not None:
            object.__setattr__(self, "planes", Planes(self.planes, what=f"Layer {self.name}: planes"))
        w = np.asarray(self.weights)
        if w.ndim != 2 or w.shape[0] < 1 or w.shape[1] < 1:
            raise ValueError(f"Layer {self.name}: weights must be a non-empty 2-D (mh, mw) array, "
                             f"not shape {w.shape}")
        if not np.isin(w, (0, 1)).all():
            bad = w[~np.isin(w, (0, 1))].flat[0].item()
            raise ValueError(f"Layer {self.name}: weights must be 0/1, found {bad!r}")
        w = w.astype(np.uint8, copy=True)
        w.setflags(write=False)
        object.__setattr__(self, "weights", w)
        mh, mw = w.shape
        if self.thresholds is not None:
            t = np.asarray(self.thresholds)
            if t.shape != (mh,):
                raise ValueError(f"Layer {self.name}: thresholds must have shape ({mh},), not {t.shape}")
            if not np.issubdtype(t.dtype, np.integer):
                raise TypeError(f"Layer {self.name}: thresholds must be integers, not dtype {t.dtype}")
            top = self.pc_max + 1
            if t.min() < 0 or t.max() > top:
                bad = int(t[(t < 0) | (t > top)][0])
                what = "mw + 1" if self.planes is None else "pc_max + 1"
                raise ValueError(f"Layer {self.name}: thresholds must be in 0..{top} ({what}), not {bad}")
            t = t.astype(np.int64, copy=True)
            t.setflags(write=False)
            object.__setattr__(self, "thresholds", t)
        check_int(f"Layer {self.name}: pe", self.pe, 1, mh)
        check_int(f"Layer {self.name}: simd", self.simd, 1, mw)
        check_int(f"Layer {self.name}: vectors", self.vectors, 1)
        check_int(f"Layer {self.name}: out_slots", self.out_slots, 2)
        check_int(f"Layer {self.name}: mux_folds", self.mux_folds, 1)
        for key in ("pe", "simd", "vectors", "out_slots", "mux_folds"):
            object.__setattr__(self, key, int(getattr(self, key)))

    # --- shape and folding -------------------------------------------------
    @property
    def mh(self) -> int:
        """Output channels (rows)."""
        return int(self.weights.shape[0])

    @property
    def mw(self) -> int:
        """Input bits (columns)."""
        return int(self.weights.shape[1])

    @property
    def is_output(self) -> bool:
        return self.thresholds is None

    @property
    def nf(self) -> int:
        """Column folds: cycles to consume one input vector per row group."""
        return ceil_div(self.mw, self.simd)

    @property
    def ng(self) -> int:
        """Row groups: PE-wide slices of the output vector."""
        return ceil_div(self.mh, self.pe)

    @property
    def plane_count(self) -> int:
        """Planes issued one after another: P for an integer-input layer, else 1."""
        return 1 if self.planes is None else len(self.planes)

    @property
    def group_issues(self) -> int:
        """Issue cycles per row group: the column folds of every plane."""
        return self.nf * self.plane_count

    @property
    def cycles(self) -> int:
        """Issue cycles per input vector, ``ceil(mh/pe) * P * ceil(mw/simd)`` (P = 1 unless integer input)."""
        return self.group_issues * self.ng

    @property
    def rom_depth(self) -> int:
        """Words per PE weight ROM, ``ceil(mh/pe) * ceil(mw/simd)`` (planes share the weights)."""
        return self.nf * self.ng

    @property
    def pc_max(self) -> int:
        """Largest count: mw, or mw * sum 2^p for an integer-input layer."""
        return self.mw * (1 if self.planes is None else sum(1 << p for p in self.planes))

    @property
    def is_conv(self) -> bool:
        return self.vectors > 1

    # --- stream shape: one input vector in, one output vector out, ``vectors`` times a frame
    @property
    def sink_bits(self) -> int:
        """Input vector: mw bits, or mw * P plane bits for an integer-input layer."""
        return self.mw * self.plane_count

    @property
    def sink_beats(self) -> int:
        return self.vectors

    @property
    def source_bits(self) -> int:
        return self.mh * self.out_bits

    @property
    def source_beats(self) -> int:
        return self.vectors

    @property
    def acc_bits(self) -> int:
        """Width of a count over the whole row, 0..pc_max."""
        return bits_for(self.pc_max)

    @property
    def threshold_bits(self) -> int:
        """Width of a threshold, 0..pc_max+1."""
        return bits_for(self.pc_max + 1)

    @property
    def out_bits(self) -> int:
        """Bits per output element: 1 for a hidden layer, the popcount width for the output layer."""
        return self.acc_bits if self.is_output else 1


_STREAM_SHAPE = ("sink_bits", "sink_beats", "source_bits", "source_beats")


def _specs(layers: tuple) -> list:
    """Every spec of ``layers``, a branch (``hw/branch.py``) before the specs on its paths."""
    found: list = []
    for layer in layers:
        found.append(layer)
        for path in getattr(layer, "paths", ()):
            found += _specs(path)
    return found


def engines_within(layers: tuple) -> list:
    """Every engine spec of ``layers``, the engines on a branch's paths in path order and the branch
    itself not: what holds weights, names and memories."""
    return [spec for spec in _specs(layers) if not hasattr(spec, "paths")]


@dataclass(frozen=True, eq=False)
class AcceleratorSpec:
    """A whole accelerator: input format, engine chain, pipelining options.

    ``channels``: colour channels C of the input image.
    ``samples_per_frame``: uint8 samples per frame, H*W*C (HWC order).
    ``planes``: surviving bit planes, strictly ascending, each in 0..7.
    ``pixels_per_beat``: uint8 samples per input beat (s_axis_tdata is 8*PPB bits);
    must divide ``samples_per_frame``.
    ``layers``: the engine chain after the input slicer, ending with the output layer
    (a ``DenseLayerSpec`` without thresholds). Two forms:

    * dense: every engine is a dense ``DenseLayerSpec``; a deserializer in front of the
      first collects the whole frame (``samples_per_frame * len(planes)`` bits).
    * pixel stream: the first engine takes one pixel (``channels * len(planes)`` bits) per
      beat, so ``pixels_per_beat == channels``; engines are sliding windows, conv and
      dense MVTUs, pools and the flatten hand-off (``hw/window.py``, ``hw/pool.py``,
      ``hw/stream.py``).

    Every hand-off must agree on beat width and beats per frame (``sink_bits``,
    ``sink_beats``, ``source_bits``, ``source_beats`` of each engine).
    ``popcount_levels_per_stage``: pipelining of the popcount adder trees: a
    register after every this many adder levels (0: one register after the
    whole tree). Smaller = shorter critical path, more latency and flip-flops.
    ``input_table``: per colour channel, the 8-bit code of each pixel value (``hw/input_table.py``),
    which the slicer then takes the planes of; None: the codes are the pixels.
    """

    name: str
    channels: int
    samples_per_frame: int
    planes: tuple[int, ...]
    pixels_per_beat: int
    layers: tuple
    popcount_levels_per_stage: int = field(default=2)
    input_table: tuple[tuple[int, ...], ...] | None = None

    def __post_init__(self) -> None:
        check_identifier("Accelerator name", self.name)
        check_int("channels", self.channels, 1)
        check_int("samples_per_frame", self.samples_per_frame, 1)
        if self.samples_per_frame % self.channels:
            raise ValueError(f"samples_per_frame ({self.samples_per_frame}) must be a multiple of "
                             f"channels ({self.channels})")
        object.__setattr__(self, "planes", Planes(self.planes))
        check_int("pixels_per_beat", self.pixels_per_beat, 1)
        if self.samples_per_frame % self.pixels_per_beat:
            raise ValueError(f"pixels_per_beat ({self.pixels_per_beat}) must divide samples_per_frame "
                             f"({self.samples_per_frame})")
        check_int("popcount_levels_per_stage", self.popcount_levels_per_stage, 0)
        if self.input_table is not None:
            object.__setattr__(self, "input_table",
                               CodeTable(self.input_table, channels=self.channels, what="input_table"))
        layers = tuple(self.layers)
        if not layers:
            raise ValueError("An accelerator needs at least one layer, not ()")
        for layer in layers:
            if not all(hasattr(layer, key) for key in ("name", *_STREAM_SHAPE)):
                raise TypeError(f"layers must be engine specs (DenseLayerSpec, WindowSpec, PoolSpec, "
                                f"FlattenSpec), not {layer!r}")
        object.__setattr__(self, "layers", layers)
        names = [spec.name for spec in _specs(layers)]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise ValueError(f"Layer names must be unique, {dup!r} appears {names.count(dup)} times")
        for layer in layers[:-1]:
            if isinstance(layer, DenseLayerSpec) and layer.is_output:
                raise ValueError(f"Layer {layer.name}: only the last layer may lack thresholds")
        first = layers[0]
        for layer in layers:
            if isinstance(layer, DenseLayerSpec) and layer.planes is not None and (
                    layer is not self.mvtus[0] or layer.planes != self.planes):
                raise ValueError(f"Layer {layer.name}: only the first MVTU may take integer input, over the "
                                 f"input planes {list(self.planes)}")
        if self.is_dense:
            if first.sink_bits != self.input_bits:
                raise ValueError(f"Layer {first.name}: mw ({first.mw}) must equal samples_per_frame * "
                                 f"len(planes) = {self.input_bits}")
        else:
            if self.pixels_per_beat != self.channels:
                raise ValueError(f"pixels_per_beat ({self.pixels_per_beat}) must equal channels ({self.channels}) "
                                 "when the first engine takes a pixel stream (one pixel per beat)")
            pixel = self.channels * len(self.planes)
            if (first.sink_bits, first.sink_beats) != (pixel, self.input_beats):
                raise ValueError(f"Layer {first.name} takes {first.sink_beats} beats of {first.sink_bits} bits per "
                                 f"frame; the input stream gives {self.input_beats} pixels of {pixel} bits")
        for prev, layer in zip(layers, layers[1:], strict=False):
            if (layer.sink_bits, layer.sink_beats) != (prev.source_bits, prev.source_beats):
                if isinstance(layer, DenseLayerSpec) and isinstance(prev, DenseLayerSpec) and self.is_dense:
                    raise ValueError(f"Layer {layer.name}: mw ({layer.mw}) must equal the mh of layer "
                                     f"{prev.name} ({prev.mh})")
                raise ValueError(f"Layer {layer.name} takes {layer.sink_beats} beats of {layer.sink_bits} bits per "
                                 f"frame; layer {prev.name} gives {prev.source_beats} beats of "
                                 f"{prev.source_bits} bits")
        last = layers[-1]
        if not (isinstance(last, DenseLayerSpec) and last.is_output):
            raise ValueError(f"Layer {last.name}: the last layer must be an output layer "
                             f"(thresholds None)")
        if last.vectors != 1:
            raise ValueError(f"Layer {last.name}: the output layer takes one vector per frame, not {last.vectors}")
        if last.acc_bits > 32:
            raise ValueError(f"Layer {last.name}: popcounts of {last.acc_bits} bits do not "
                             f"fit the 32-bit output stream")

    @property
    def is_dense(self) -> bool:
        """Every engine a dense MVTU behind a whole-frame deserializer (else: a pixel stream)."""
        return all(isinstance(layer, DenseLayerSpec) and layer.vectors == 1 for layer in self.layers)

    @property
    def mvtus(self) -> tuple[DenseLayerSpec, ...]:
        """Every MVTU, those on a branch's paths included, in the order they compute."""
        return tuple(layer for layer in engines_within(self.layers) if isinstance(layer, DenseLayerSpec))

    @property
    def bits_per_sample(self) -> int:
        return len(self.planes)

    @property
    def input_bits(self) -> int:
        """Bits of the first layer's input vector."""
        return self.samples_per_frame * len(self.planes)

    @property
    def tdata_bits(self) -> int:
        """Width of s_axis_tdata: one uint8 sample per pixel of a beat."""
        return 8 * self.pixels_per_beat

    @property
    def input_beats(self) -> int:
        """s_axis beats per frame."""
        return self.samples_per_frame // self.pixels_per_beat

    @property
    def classes(self) -> int:
        """m_axis beats per frame (one class popcount each)."""
        return self.layers[-1].mh
