"""The build folder's ``manifest.json`` (docs/architecture.md, "Build folder"): its format, written
once by the build, read by every consumer (simulators, host link, compare, report, HLS) through
:class:`Manifest`, never by hand.

Every simulator path (cocotb testbench, C++ harness, runners) takes widths, beat counts
and expected cycle numbers from here, never from literals, so one change in the compiler's
output reaches all of them. The board driver (``templates/driver.py.j2``) runs on the board
without this package and reads the same fields from the JSON.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from .planes import ALL_PLANES, Planes, PlanesError
from .wire import payload_bytes, request_bytes

__all__ = ["FORMAT", "ManifestError", "Manifest", "CheckpointRecord", "ClockRecord", "UartRecord", "ResourceCounts",
           "ResourcesRecord", "FoldingRecord",
           "load_manifest", "write_manifest", "is_build_folder", "foreign_files", "listed_files", "inside",
           "pack_frames", "check_expected", "predict"]

FORMAT = "bnn2fpga-build/1"
FILE = "manifest.json"


class ManifestError(UserError, ValueError):
    """The build folder's manifest.json is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class CheckpointRecord:
    """The build's own copy of its checkpoint and the digest it must keep."""

    file: str
    source: str
    sha256: str | None

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "source": self.source, "sha256": self.sha256}

    @classmethod
    def from_json(cls, block: object) -> CheckpointRecord | None:
        if not isinstance(block, dict):
            return None
        digest = block.get("sha256")
        return cls(str(block.get("file", "checkpoint.pt")), str(block.get("source", "")),
                   digest if isinstance(digest, str) else None)


@dataclass(frozen=True)
class ClockRecord:
    """The clock every frame rate of the build assumes, and the evidence behind it (docs/timing.md)."""

    mhz: float
    evidence: str  # "assumed", "nextpnr", ...
    why: str
    fmax_mhz: float | None = None
    ecp5_proxy: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        block: dict[str, Any] = {"mhz": self.mhz, "evidence": self.evidence, "why": self.why}
        if self.fmax_mhz is not None:
            block["fmax_mhz"] = self.fmax_mhz
        if self.ecp5_proxy is not None:
            block["ecp5_proxy"] = self.ecp5_proxy
        return block

    @classmethod
    def from_json(cls, block: object) -> ClockRecord:
        if not isinstance(block, dict):
            raise ManifestError(f"manifest.json field 'clock' must be an object, not {type(block).__name__}")
        fmax = block.get("fmax_mhz")
        return cls(float(_field(block, "mhz")), str(block.get("evidence", "assumed")), str(block.get("why", "")),
                   None if fmax is None else float(fmax), block.get("ecp5_proxy"))


@dataclass(frozen=True)
class ResourceCounts:
    """LUT, flip-flops, 36-kbit block RAMs (and DSP where a synthesis counted them) of a design."""

    lut: float
    ff: float
    bram36: float
    dsp: float | None = None

    @classmethod
    def from_json(cls, block: object, where: str) -> ResourceCounts:
        if not isinstance(block, dict):
            raise ManifestError(f"manifest.json field {where!r} must be an object of counts")

        def count(key: str) -> float:
            value = block.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ManifestError(f"manifest.json field '{where}.{key}' must be a count >= 0, not {value!r}")
            return value  # as written: Yosys's counts stay integers

        return cls(count("lut"), count("ff"), count("bram36"), count("dsp") if "dsp" in block else None)


@dataclass(frozen=True)
class ResourcesRecord:
    """The build's resource estimate and, when Yosys ran, its counts (``resources``)."""

    estimate: ResourceCounts
    yosys: ResourceCounts | None

    @classmethod
    def from_json(cls, block: object) -> ResourcesRecord:
        if not isinstance(block, dict) or "estimate" not in block:
            raise ManifestError("manifest.json field 'resources' must hold an 'estimate'")
        yosys = block.get("yosys")
        return cls(ResourceCounts.from_json(block["estimate"], "resources.estimate"),
                   None if yosys is None else ResourceCounts.from_json(yosys, "resources.yosys"))


@dataclass(frozen=True)
class FoldingRecord:
    """The folding the build used (``folding``): pixels per beat and each folded layer's PE and SIMD, in
    the order of the network; ``block`` is the section itself, which ``backend.folding.Folding`` reads
    with the network's shapes to check it fits."""

    pixels_per_beat: int
    layers: tuple[tuple[str, int, int], ...]
    block: dict[str, Any]

    @property
    def text(self) -> str:
        """``PExSIMD`` per layer, space-separated."""
        return " ".join(f"{pe}x{simd}" for _, pe, simd in self.layers)

    @classmethod
    def from_json(cls, block: object) -> FoldingRecord:
        if not isinstance(block, dict) or not isinstance(block.get("layers"), dict):
            raise ManifestError("manifest.json field 'folding' must hold 'layers': {name: {pe, simd}}")
        layers = []
        for name, entry in block["layers"].items():
            if not isinstance(entry, dict) or not all(isinstance(entry.get(k), int) and entry[k] >= 1
                                                      for k in ("pe", "simd")):
                raise ManifestError(f"manifest.json field 'folding.layers.{name}' must give pe and simd >= 1")
            layers.append((str(name), int(entry["pe"]), int(entry["simd"])))
        return cls(_int(block, "pixels_per_beat"), tuple(layers), block)


@dataclass(frozen=True)
class UartRecord:
    """An open board's UART bridge: its core, its line and the request it takes (``hw/uart.py``)."""

    build_dir: Path
    top: str
    sources: tuple[Path, ...]  # absolute paths
    baud: int
    divisor: int
    clock_hz: int
    frame_bytes: int
    pixels: int
    planes: Planes
    classes: int
    timeout_bytes: int

    def wire_seconds(self, nbytes: int, baud: float | None = None) -> float:
        """Time ``nbytes`` take on the line, 10 bits each (8N1)."""
        return nbytes * 10 / (baud or self.baud)

    @property
    def request_bytes(self) -> int:
        return request_bytes(self.frame_bytes)

    @property
    def reply_bytes(self) -> int:
        return 2 * self.classes + 3


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
    board: str
    backend: str                # "rtl" or "hls"
    planes: Planes
    clock: ClockRecord
    checkpoint: CheckpointRecord | None
    uart: UartRecord | None     # open boards only
    digests: dict[str, str]     # sha256 of every file the build wrote and listed, by relative path
    resources: ResourcesRecord | None  # None: builds from before the manifest recorded them
    folding: FoldingRecord | None      # None: HLS-era builds without one
    rate_bound: str | None             # what sets the frame rate ("compute", "host link", ...), if recorded
    # Not typed: ``layers``, the engines' descriptions for people (report.md renders them at build time), and
    # ``rate``'s wording; no program reads them back.

    @property
    def fps(self) -> float:
        """Frames per second at the clock the build assumes (``clock_mhz``)."""
        return self.clock_mhz * 1e6 / self.initiation_interval

    @property
    def classes(self) -> int:
        return self.out_beats

    @property
    def in_bytes(self) -> int:
        return self.in_bits // 8

    def check_present(self) -> None:
        """Every source and memory file the manifest lists is there (no digests compared)."""
        listed = (*self.sources, *self.memories, *(self.uart.sources if self.uart else ()))
        missing = [str(p) for p in listed if not p.is_file()]
        if missing:
            raise ManifestError(f"{self.build_dir}: files listed in manifest.json are missing: {missing}")

    def check_files(self) -> None:
        """Every file the manifest lists is there and, where the build recorded its sha256, unchanged.

        Fail early: a missing ``$readmemh`` file is only a simulator warning (the ROM reads zeros),
        and a build folder is something users pass around: a changed weight file or source would
        otherwise be simulated as if it were the build's."""
        self.check_present()
        changed = [name for name, digest in self.digests.items()
                   if (self.build_dir / name).is_file() and _sha256(self.build_dir / name) != digest]
        gone = [name for name in self.digests if not (self.build_dir / name).is_file()]
        if changed or gone:
            parts = [f"changed since the build wrote them: {', '.join(changed)}" if changed else "",
                     f"missing: {', '.join(gone)}" if gone else ""]
            what = "; ".join(p for p in parts if p)
            raise ManifestError(f"{self.build_dir}: {what} (manifest.json records each file's sha256): rebuild, "
                                "or restore the build's own files")


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
    path = build_dir / FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ManifestError(f"{build_dir} is not a build folder: no manifest.json") from None
    except json.JSONDecodeError as e:
        raise ManifestError(f"{path}: not valid JSON: {e}") from None
    if not isinstance(raw, dict):
        raise ManifestError(f"{path}: must hold a JSON object, not {type(raw).__name__}; rebuild")
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
        return tuple(inside(build_dir, s, key) for s in items)

    try:
        planes = Planes(raw["input"].get("planes", ALL_PLANES), what="input.planes")
    except PlanesError as e:
        raise ManifestError(f"{path}: {e}; rebuild") from None
    uart = _uart(raw, build_dir, samples, _int(raw, "output.beats_per_frame"))
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
        board=str(raw.get("board", "")),
        backend=str(raw.get("backend", "rtl")),
        planes=planes,
        clock=_clock(raw),
        checkpoint=_checkpoint(raw),
        uart=uart,
        digests=_digests(raw, build_dir),
        resources=None if raw.get("resources") is None else ResourcesRecord.from_json(raw["resources"]),
        folding=None if raw.get("folding") is None else FoldingRecord.from_json(raw["folding"]),
        rate_bound=_rate_bound(raw),
    )


def _rate_bound(raw: dict[str, Any]) -> str | None:
    rate = raw.get("rate")
    bound = rate.get("bound") if isinstance(rate, dict) else None
    return bound if isinstance(bound, str) else None


def _clock(raw: dict[str, Any]) -> ClockRecord:
    block = raw.get("clock")
    if block is None:  # builds from before the clock carried its evidence
        return ClockRecord(float(_field(raw, "clock_mhz")), "assumed", "")
    return ClockRecord.from_json(block)


def _checkpoint(raw: dict[str, Any]) -> CheckpointRecord | None:
    return CheckpointRecord.from_json(raw.get("checkpoint"))


def _uart(raw: dict[str, Any], build_dir: Path, pixels_per_frame: int, classes: int) -> UartRecord | None:
    """The ``uart`` block, checked against the rest of the manifest; None for a board without a bridge."""
    block: Any = raw.get("uart")
    if block is None:
        return None
    where = build_dir / FILE
    if not isinstance(block, dict):
        raise ManifestError(f"{where}: 'uart' must be an object, not {type(block).__name__}")

    def number(key: str, minimum: int = 1) -> int:
        value = block.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ManifestError(f"{where}: uart.{key} must be an integer >= {minimum}, not {value!r}; rebuild")
        return value

    sources = block.get("sources")
    if not isinstance(sources, list) or not sources or not all(isinstance(s, str) for s in sources):
        raise ManifestError(f"{where}: uart.sources must be a list of file names; rebuild")
    paths = tuple(inside(build_dir, s, "uart.sources") for s in sources)
    top = block.get("top")
    if not isinstance(top, str) or not top:
        raise ManifestError(f"{where}: uart.top must name the board core's module; rebuild")
    # Builds made before payloads were packed have no "pixels" or "planes": one byte a pixel.
    frame_bytes = number("frame_bytes")
    pixels = number("pixels") if "pixels" in block else frame_bytes
    try:
        planes = Planes(block.get("planes", ALL_PLANES), what="uart.planes")
    except PlanesError as e:
        raise ManifestError(f"{where}: {e}; rebuild") from None
    record = UartRecord(build_dir=build_dir, top=top, sources=paths,
                        baud=number("baud"), divisor=number("divisor", 4), clock_hz=number("clock_hz"),
                        frame_bytes=frame_bytes, classes=number("classes"), timeout_bytes=number("timeout_bytes"),
                        pixels=pixels, planes=planes)
    if record.pixels != pixels_per_frame or record.classes != classes:
        raise ManifestError(f"{where}: uart.pixels/classes ({record.pixels}/{record.classes}) are not the "
                            f"accelerator's ({pixels_per_frame}/{classes}); rebuild")
    packed = payload_bytes(pixels, len(planes))
    if frame_bytes != packed:
        raise ManifestError(f"{where}: uart.frame_bytes is {frame_bytes}, but {pixels} pixels of {len(planes)} "
                            f"planes take {packed} bytes; rebuild")
    return record


def inside(build_dir: Path, name: str, key: str) -> Path:
    """``build_dir / name``, refused unless it is a relative path that stays in the folder: a build
    folder passed around must not make ``sim`` or ``run`` read or write elsewhere."""
    path = Path(name)
    if not name or path.is_absolute() or ".." in path.parts:
        raise ManifestError(f"{build_dir / FILE}: {key} lists {name!r}, which is not a path inside the build "
                            "folder; rebuild")
    return build_dir / path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def listed_files(data: dict[str, Any]) -> list[str]:
    """The files a manifest lists (sources, memories, the UART core's sources, the checkpoint's copy)."""
    names = [*data.get("sources", []), *data.get("memories", []), *(data.get("uart") or {}).get("sources", [])]
    checkpoint = data.get("checkpoint")
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("file"), str):
        names.append(checkpoint["file"])
    return sorted(set(names))


def _digests(raw: dict[str, Any], build_dir: Path) -> dict[str, str]:
    block = raw.get("sha256", {})  # builds from before the manifest recorded them have none
    if not isinstance(block, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in block.items()):
        raise ManifestError(f"{build_dir / FILE}: 'sha256' must map file names to digests; rebuild")
    for name in block:
        inside(build_dir, name, "sha256")
    return dict(block)


def write_manifest(folder: Path, data: dict[str, Any]) -> Manifest:
    """Write ``data`` as ``folder/manifest.json`` (the one writer), with the sha256 of every file it
    lists, after reading it back through :func:`load_manifest`: a build never leaves a manifest its
    own readers would refuse."""
    if data.get("format") != FORMAT:
        raise ValueError(f"a manifest's format is {FORMAT!r}, not {data.get('format')!r}")
    folder = Path(folder)
    written = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != FILE)
    data = {**data, "sha256": {name: _sha256(folder / name) for name in listed_files(data)
                               if (folder / name).is_file()},
            "files": written}
    (folder / FILE).write_text(json.dumps(data, indent=1) + "\n")
    manifest = load_manifest(folder)
    manifest.check_present()  # the digests were computed from these files a moment ago
    return manifest


#: Written by bnn2fpga into a build folder after the build: the simulators' caches and logs.
CACHE_FOLDERS = ("sim_build",)
#: A build's own files before manifests listed them (``files``).
_OLD_BUILD_FILES = ("manifest.json", "report.md", "folding.json", "vivado.tcl", "driver.py", "checkpoint.pt")


def _read_raw(folder: Path) -> dict[str, Any] | None:
    """``folder``'s manifest as JSON when it is one of this format (so bnn2fpga wrote the folder)."""
    try:
        raw = json.loads((Path(folder) / FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return raw if isinstance(raw, dict) and raw.get("format") == FORMAT else None


def foreign_files(folder: Path) -> list[str] | None:
    """Files in a build folder that its build did not write (nor a simulator after it): what ``--force``
    must not delete. None when ``folder`` is no build folder of this format (see :func:`is_build_folder`)."""
    folder = Path(folder)
    raw = _read_raw(folder)
    if raw is None:
        return None
    ours = set(raw["files"]) | {FILE} if isinstance(raw.get("files"), list) \
        else {*_OLD_BUILD_FILES, *listed_files(raw)}
    found = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and rel.parts[0] not in CACHE_FOLDERS and rel.as_posix() not in ours:
            found.append(rel.as_posix())
    return found


def is_build_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a manifest of this format (so bnn2fpga wrote it and may replace it)."""
    return _read_raw(folder) is not None


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
