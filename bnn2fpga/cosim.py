"""`bnn2fpga sim`: co-simulate a build folder against the bit-exact reference.

The build folder carries the checkpoint it was made from (``checkpoint.pt``, hash in
manifest.json), so the expected class popcounts are recomputed here by
``reference.py`` from the very same weights, never read from the build itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import checkpoint as ckpt_mod
from . import data as datasets
from . import reference
from .contract.manifest import Manifest, ManifestError, load_manifest, predict
from .errors import UserError
from .ir.pipeline import lower
from .sim import bulk
from .sim.runner import run_cocotb


class SimFailure(UserError):
    """The hardware disagreed with the reference or with its predicted cycles."""


@dataclass(frozen=True)
class SimOptions:
    """One co-simulation of a build folder (``bnn2fpga sim``)."""

    build_dir: Path | str
    images: int | None = None  # test images to simulate; None: 100, or all with bulk
    bulk: bool = False  # the Verilator C++ harness instead of cocotb
    checkpoint: Path | str | None = None  # the build's checkpoint; None: the one inside the build folder
    dataset: str | None = None  # None: the checkpoint's
    data: Path | str | None = None  # dataset folder
    simulator: str = "verilator"  # cocotb's simulator: verilator or icarus
    stall: float = 0.3  # probability of a tvalid/tready pause per cycle (cocotb)
    seed: int = 1


def build_checkpoint(manifest: Manifest, override: Path | str | None) -> ckpt_mod.Checkpoint:
    """The checkpoint a build was made from: its own copy (or ``override``), checked against its digest."""
    build_dir = manifest.build_dir
    record = manifest.checkpoint
    path = Path(override) if override else build_dir / (record.file if record else "checkpoint.pt")
    expected = record.sha256 if record else None
    if path.exists() and expected and hashlib.sha256(path.read_bytes()).hexdigest() != expected:
        raise ckpt_mod.CheckpointError(f"{path} is not the checkpoint {build_dir} was built from (sha256 differs); "
                                       "rebuild, or pass the right --checkpoint")
    return ckpt_mod.load(path)


def check_weight_memories(manifest: Manifest, ckpt: ckpt_mod.Checkpoint) -> None:
    """The build's ``.mem`` files hold the checkpoint's weights as this version packs them, for the folding
    it recorded: a weight file changed by hand, or written by another version, is refused by name."""
    if manifest.backend != "rtl" or manifest.folding is None:
        return  # HLS builds hold their weights in the C++ (its sha256 is checked); very old builds lack it
    from .backend.memories import differing_memories

    files = {p.name: p.read_text() for p in manifest.memories}
    wrong = differing_memories(ckpt, manifest.folding.block, files)
    if wrong:
        shown = ", ".join(wrong[:5]) + (f" and {len(wrong) - 5} more" if len(wrong) > 5 else "")
        raise ManifestError(f"{manifest.build_dir}: weight memories differ from the checkpoint's weights as this "
                            f"version packs them: {shown}; rebuild (bnn2fpga build) with this version")


def run_sim(options: SimOptions, *, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Simulate the build against the reference; the summary (``passed`` says whether to :func:`check` it).

    ``log`` receives one line saying what is being simulated before the simulator starts.
    """
    build_dir = Path(options.build_dir)
    manifest = load_manifest(build_dir)
    manifest.check_files()
    ckpt = build_checkpoint(manifest, options.checkpoint)
    check_weight_memories(manifest, ckpt)
    ds = datasets.load(options.dataset or ckpt.dataset, options.data)
    datasets.require_fit(ckpt.architecture, ds, f"the network of {build_dir}", ckpt.dataset)
    split = ds.test
    wanted = options.images if options.images is not None else (len(split) if options.bulk else 100)
    n = min(wanted, len(split))
    pixels = split.images[:n]
    labels = split.labels[:n]
    graph = lower(ckpt)
    ref = reference.run(graph, pixels)
    hwc = np.ascontiguousarray(pixels.transpose(0, 2, 3, 1))
    summary: dict[str, Any] = {"build": str(build_dir), "images": n, "dataset": ds.name,
                               "expected_initiation_interval": manifest.initiation_interval,
                               "expected_latency": manifest.latency}
    if manifest.backend == "hls":
        summary.update(_csim(build_dir, manifest, hwc, ref, labels, n, ds.name, log))
        _record(build_dir, summary)
        return summary
    if options.bulk:
        if log:
            log(f"bulk co-simulation (Verilator C++ harness) of {n} {ds.name} test images ...")
        result = bulk.run(build_dir, hwc, seed=options.seed)
        wrong = result.mismatches(ref.popcounts)
        hw_pred = predict(manifest, np.clip(result.outputs, 0, None))
        summary.update(mode="bulk", simulator="verilator", mismatched_words=len(wrong),
                       bit_exact=len(wrong) == 0 and result.protocol_ok,
                       measured_initiation_interval=result.initiation_interval, measured_latency=result.latency,
                       cycles=result.cycles, cycles_per_second=result.cycles_per_second,
                       hardware_accuracy=float((hw_pred == labels).mean()),
                       reference_accuracy=float((ref.predictions == labels).mean()),
                       wall_time_s=result.wall_time_s, build_time_s=result.build_time_s)
        cycles_ok = result.cycles_ok
    else:
        if log:
            log(f"cocotb + {options.simulator} co-simulation of {n} {ds.name} test images, "
                f"random tvalid/tready pauses p={options.stall} ...")
        sim = run_cocotb(build_dir, hwc, ref.popcounts, simulator=options.simulator, seed=options.seed,
                         stall_in=options.stall, stall_out=options.stall)
        hw_pred = predict(manifest, np.clip(sim.outputs, 0, None))
        summary.update(mode="cocotb", simulator=options.simulator, mismatched_words=sim.mismatch_count,
                       tlast_errors=len(sim.tlast_errors), extra_beats=sim.extra_beats, error=sim.error,
                       bit_exact=sim.bit_exact, measured_initiation_interval=sim.initiation_interval,
                       measured_latency=sim.latency, cycles=sim.cycles, cycles_per_second=sim.cycles_per_second,
                       in_stall_cycles=sim.in_stall_cycles, out_stall_cycles=sim.out_stall_cycles,
                       hardware_accuracy=float((hw_pred == labels).mean()),
                       reference_accuracy=float((ref.predictions == labels).mean()),
                       wall_time_s=sim.wall_time_s, build_time_s=sim.build_time_s, log=str(sim.log_path))
        cycles_ok = sim.cycles_ok
    summary["cycles_equal"] = cycles_ok
    summary["passed"] = bool(summary["bit_exact"] and cycles_ok and
                             summary["hardware_accuracy"] == summary["reference_accuracy"])
    _record(build_dir, summary)
    return summary


def _csim(build_dir: Path, manifest: Any, hwc: np.ndarray, ref: reference.Result, labels: np.ndarray, n: int,
          dataset: str, log: Callable[[str], None] | None) -> dict[str, Any]:
    """An HLS build: C simulation of its C++ (g++), every class popcount against the reference; untimed."""
    from .contract.manifest import pack_frames
    from .sim import hls_csim

    if log:
        log(f"C simulation (g++) of the HLS design on {n} {dataset} test images ...")
    result = hls_csim.run_frames(build_dir, pack_frames(manifest, hwc), top=manifest.top, classes=manifest.classes)
    wrong = np.argwhere(result.outputs != ref.popcounts)
    hw_pred = predict(manifest, np.clip(result.outputs, 0, None))
    hw_acc, ref_acc = float((hw_pred == labels).mean()), float((ref.predictions == labels).mean())
    bit_exact = len(wrong) == 0 and result.protocol_ok
    error = None if result.protocol_ok else (
        f"stream protocol: {result.missing_beats} missing, {result.extra_beats} extra output beats, "
        f"{result.tlast_errors} tlast errors, {result.leftover_input_beats} input beats left unread")
    return {"error": error, "mode": "csim", "simulator": "g++", "mismatched_words": len(wrong), "bit_exact": bit_exact,
            "tlast_errors": result.tlast_errors, "missing_beats": result.missing_beats,
            "extra_beats": result.extra_beats, "leftover_input_beats": result.leftover_input_beats,
            "measured_initiation_interval": None, "measured_latency": None, "cycles": None,
            "images_per_second": n / result.seconds if result.seconds > 0 else None,
            "hardware_accuracy": hw_acc, "reference_accuracy": ref_acc,
            "wall_time_s": result.wall_time_s, "build_time_s": result.build_time_s,
            "cycles_equal": None,  # C simulation is untimed: Vitis's csynth / cosim give the cycles
            "passed": bool(bit_exact and hw_acc == ref_acc)}


SIM_RECORD = Path("sim_build") / "simulations.json"


def _record(build_dir: Path, summary: dict[str, Any]) -> None:
    """Keep the latest summary per mode in the build folder, for `bnn2fpga report` (best effort: a
    read-only build folder still simulates)."""
    path = build_dir / SIM_RECORD
    try:
        records = json.loads(path.read_text()) if path.is_file() else {}
        if not isinstance(records, dict):
            records = {}
        records[summary["mode"]] = {k: v for k, v in summary.items() if k != "log"}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(records, indent=1))
    except (OSError, ValueError):
        pass


def check(summary: dict[str, Any]) -> None:
    """Raise :class:`SimFailure` saying what went wrong unless the co-simulation passed."""
    if not summary["passed"]:
        raise SimFailure(_failure(summary))


def _failure(s: dict[str, Any]) -> str:
    parts = []
    if not s["bit_exact"]:
        parts.append(f"{s['mismatched_words']} output words differ from the reference")
        if s.get("error"):
            parts.append(f"testbench: {s['error']}")
    if s["cycles_equal"] is False:
        parts.append(f"measured II/latency {s['measured_initiation_interval']}/{s['measured_latency']} != "
                     f"predicted {s['expected_initiation_interval']}/{s['expected_latency']}")
    if s["hardware_accuracy"] != s["reference_accuracy"]:
        parts.append("hardware accuracy differs from the reference's")
    log = f" (log: {s['log']})" if s.get("log") else ""
    return "co-simulation failed: " + "; ".join(parts) + log
