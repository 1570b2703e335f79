"""`bnn2fpga run`: stream test images to a UART board (or its Verilator model) and check every reply.

The expected popcounts come from the bit-exact reference on the build's own checkpoint (as
`bnn2fpga sim` computes them); predictions are the manifest's ``argmax logit_table[k][popcount]``
(lowest index on ties). The time is split into the link (the bytes on the wire at the baud
rate, both ways: the protocol is stop-and-wait, so they never overlap) and the rest (the
board's compute plus the host's and the USB adapter's latency), next to the compute the
manifest predicts.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .contract.wire import pack_payload
from .errors import UserError
from .host.link import UartConfig, open_port, uart_config
from .host.session import Port, Session
from .progress import progress_bar

__all__ = ["RunOptions", "RunFailure", "run_board", "check", "predictions"]

PORT_TIMEOUT_S = 1.0   # default reply deadline on a real port (plus the frame's own wire time)
SIM_TIMEOUT_S = 60.0   # default reply deadline against the simulator (a frame takes ~0.1-1 s of CPU)


class RunFailure(UserError):
    """The board answered every frame, but not what the reference computes."""


@dataclass(frozen=True)
class RunOptions:
    """One `bnn2fpga run`: ``port`` (a serial device) or ``sim`` (the Verilator model behind a pty)."""

    build_dir: Path | str
    port: str | None = None
    sim: bool = False
    images: int = 100
    baud: int | None = None         # None: the build's
    timeout: float | None = None    # seconds per reply; None: PORT_TIMEOUT_S (+ wire time) or SIM_TIMEOUT_S
    retries: int = 3
    checkpoint: Path | str | None = None
    dataset: str | None = None
    data: Path | str | None = None
    grace_ms: int = 500             # --sim: wall time the harness waits for the rest of a request


def predictions(manifest: Any, popcounts: np.ndarray) -> np.ndarray:
    """The manifest's prediction per frame; -1 for a frame whose popcounts lie beyond the logit table."""
    from .contract.manifest import predict

    pcs = np.asarray(popcounts, dtype=np.int64)
    width = min(len(row) for row in manifest.logit_table) if manifest.logit_table else 0
    ok = ((pcs >= 0) & (pcs < width)).all(axis=1)
    out = np.full(len(pcs), -1, dtype=np.int64)
    if ok.any():
        out[ok] = predict(manifest, pcs[ok])
    return out


@contextlib.contextmanager
def _link(options: RunOptions, config: UartConfig, timeout: float) -> Iterator[tuple[Port, str, Any]]:
    """The serial port to talk through, its name, and the simulator (None on a real port)."""
    if options.sim:
        import serial

        from .sim.uart_board import UartBoardSim

        with UartBoardSim(config, grace_ms=options.grace_ms) as sim:
            port = serial.Serial(sim.port, baudrate=config.baud, timeout=timeout, write_timeout=timeout)
            try:
                yield port, f"the simulated board ({sim.port})", sim
            finally:
                port.close()
    else:
        assert options.port is not None
        port = open_port(options.port, options.baud or config.baud, timeout)
        try:
            yield port, options.port, None
        finally:
            port.close()


def run_board(options: RunOptions, *, show_progress: bool = True,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Stream ``options.images`` test images through the board; the summary (``passed``: see :func:`check`)."""
    from . import data as datasets
    from . import reference
    from .contract.manifest import load_manifest, pack_frames
    from .cosim import build_checkpoint
    from .ir.pipeline import lower

    if options.images < 1:
        raise UserError(f"--images must be a positive integer, not {options.images}")
    if (options.port is None) == (not options.sim):
        raise UserError("say where the board is: --port DEVICE (e.g. /dev/ttyUSB0) or --sim (its Verilator model)")
    build_dir = Path(options.build_dir)
    manifest = load_manifest(build_dir)
    manifest.check_files()
    config = uart_config(manifest)
    baud = options.baud or config.baud
    wire = config.wire_seconds(config.request_bytes + config.reply_bytes, baud)
    timeout = options.timeout or (SIM_TIMEOUT_S if options.sim else PORT_TIMEOUT_S + wire)
    # A drain waits this long for silence: longer than a frame the board may still be busy with.
    compute_s = manifest.latency / config.clock_hz
    quiet = 1.0 if options.sim else min(timeout, max(0.05, 4 * (wire + compute_s)))

    with _link(options, config, timeout) as (port, name, sim):
        ckpt = build_checkpoint(manifest, options.checkpoint)
        ds = datasets.load(options.dataset or ckpt.dataset, options.data)
        datasets.require_fit(ckpt.architecture, ds, f"the network of {build_dir}", ckpt.dataset)
        n = min(options.images, len(ds.test))
        pixels, labels = ds.test.images[:n], ds.test.labels[:n]
        ref = reference.run(lower(ckpt), pixels)
        frames = pack_frames(manifest, np.ascontiguousarray(pixels.transpose(0, 2, 3, 1)))
        if frames.shape[1] != config.pixels:
            raise UserError(f"{build_dir}: frames of this dataset are {frames.shape[1]} pixels, the board takes "
                            f"{config.pixels}; pass the build's --dataset")
        frames = pack_payload(frames, config.planes)
        if log:
            where = "the Verilator model of " + config.top if options.sim else f"{name} at {baud:,} baud"
            log(f"streaming {n} {ds.name} test images to {where} ...")
        session = Session(port, frame_bytes=config.frame_bytes, classes=config.classes, reply_timeout=timeout,
                          retries=options.retries, quiet=quiet, name=name)
        got = np.full((n, config.classes), -1, dtype=np.int64)
        wrong_frames = 0
        t0 = time.perf_counter()
        with progress_bar(show_progress) as bar:
            task = bar.add_task("run", total=n, info="")
            for i in range(n):
                got[i] = session.infer(frames[i].tobytes())
                if not np.array_equal(got[i], ref.popcounts[i]):
                    wrong_frames += 1
                bar.update(task, advance=1, info=f"{wrong_frames} mismatched, {session.stats.retries} resent")
        seconds = time.perf_counter() - t0
    return _summary(options, manifest, config, ds.name, labels, ref, got, session, seconds, baud, compute_s, sim)


def _summary(options: RunOptions, manifest: Any, config: UartConfig, dataset: str, labels: np.ndarray, ref: Any,
             got: np.ndarray, session: Session, seconds: float, baud: int, compute_s: float,
             sim: Any) -> dict[str, Any]:
    n = len(got)
    stats = session.stats
    wrong = int((got != ref.popcounts).sum())
    hw_pred = predictions(manifest, got)
    link_s = config.wire_seconds(stats.bytes_sent + stats.bytes_received, baud)
    s: dict[str, Any] = {
        "build": str(options.build_dir), "mode": "sim" if options.sim else "port",
        "port": options.port, "images": n, "dataset": dataset, "baud": baud, "divisor": config.divisor,
        "clock_hz": config.clock_hz, "frame_bytes": config.frame_bytes, "classes": config.classes,
        "mismatched_words": wrong, "mismatched_frames": int((got != ref.popcounts).any(axis=1).sum()),
        "bit_exact": wrong == 0,
        "hardware_accuracy": float((hw_pred == labels).mean()),
        "reference_accuracy": float((ref.predictions == labels).mean()),
        "seconds": seconds, "frames_per_second": n / seconds if seconds > 0 else 0.0,
        "link_seconds": link_s, "other_seconds": max(0.0, seconds - link_s),
        "predicted_compute_seconds": n * compute_s, "predicted_latency_cycles": manifest.latency,
        "session": stats.as_dict(),
    }
    if sim is not None and sim.stats is not None:
        h = sim.stats
        link_cycles = (h.bytes_in + h.bytes_out) * 10 * config.divisor
        s["sim"] = {"cycles": h.cycles, "cycles_per_second": h.cycles_per_second, "wall_s": h.wall_s,
                    "waited_s": h.waited_s, "build_time_s": h.build_time_s, "bytes_in": h.bytes_in,
                    "bytes_out": h.bytes_out, "framing_errors": h.framing_errors, "bridge_errors": h.bridge_errors,
                    "cycles_per_frame": h.cycles / n, "link_cycles": link_cycles,
                    "other_cycles": max(0, h.cycles - link_cycles),
                    "board_seconds": h.cycles / config.clock_hz,
                    "board_frames_per_second": n * config.clock_hz / h.cycles if h.cycles else 0.0}
    s["passed"] = bool(s["bit_exact"] and s["hardware_accuracy"] == s["reference_accuracy"])
    return s


def check(summary: dict[str, Any]) -> None:
    """Raise :class:`RunFailure` saying what differed unless every reply was the reference's."""
    if summary["passed"]:
        return
    s = summary
    raise RunFailure(f"{s['mismatched_frames']} of {s['images']} frames ({s['mismatched_words']} popcounts) differ "
                     f"from the reference (hardware accuracy {s['hardware_accuracy']:.4f}, reference "
                     f"{s['reference_accuracy']:.4f}): the board does not run this build; program its bitstream "
                     f"or pass the build it was made from")


def print_summary(s: dict[str, Any], console: Any) -> None:
    """The readable report of :func:`run_board`'s summary: checks, then where the time went."""
    from rich.table import Table

    def ok(flag: bool) -> str:
        return "[green]ok[/]" if flag else "[red]FAIL[/]"

    where = "simulated board (Verilator)" if s["mode"] == "sim" else s["port"]
    table = Table(title=f"{s['images']} {s['dataset']} images through {where}")
    table.add_column("check")
    table.add_column("board", justify="right")
    table.add_column("reference", justify="right")
    table.add_column("")
    table.add_row("popcounts differing from the reference", str(s["mismatched_words"]), "0", ok(s["bit_exact"]))
    table.add_row("frames differing", str(s["mismatched_frames"]), "0", ok(s["mismatched_frames"] == 0))
    table.add_row("accuracy", f"{s['hardware_accuracy']:.4f}", f"{s['reference_accuracy']:.4f}",
                  ok(s["hardware_accuracy"] == s["reference_accuracy"]))
    console.print(table)

    n, secs = s["images"], s["seconds"]
    rate = f"{s['frames_per_second']:,.1f} frames/s ({secs:.2f} s for {n} frames)"
    time_table = Table(title=f"simulation: {rate}; the board's time by its clock:" if s["mode"] == "sim"
                       else f"time: {rate}")
    time_table.add_column("where")
    time_table.add_column("per frame", justify="right")
    time_table.add_column("share", justify="right")
    time_table.add_column("how it is counted")

    def row(what: str, seconds: float, how: str, total: float = secs) -> None:
        share = f"{100 * seconds / total:.0f} %" if total > 0 else "-"
        time_table.add_row(what, _duration(seconds / n), share, how)

    session = s["session"]
    wire_how = (f"{session['bytes_sent']:,} + {session['bytes_received']:,} bytes in the run x 10 bits / "
                f"{s['baud']:,} baud")
    if s["mode"] == "sim" and "sim" in s:
        sim = s["sim"]
        board_s = sim["board_seconds"]
        clock = s["clock_hz"]
        row("link (simulated)", sim["link_cycles"] / clock,
            f"{sim['bytes_in'] + sim['bytes_out']:,} bytes in the run x 10 bits x {s['divisor']} clocks", board_s)
        row("compute and turnaround (simulated)", sim["other_cycles"] / clock,
            f"the other cycles; manifest latency {s['predicted_latency_cycles']:,} cycles", board_s)
        console.print(time_table)
        console.print(f"on the board at {clock / 1e6:g} MHz: {sim['board_frames_per_second']:,.1f} frames/s "
                      f"({sim['cycles_per_frame']:,.0f} cycles a frame); simulated {sim['cycles']:,} cycles at "
                      f"{sim['cycles_per_second']:,.0f} cycles/s (harness build {sim['build_time_s']:.1f} s)")
    else:
        row("link", s["link_seconds"], wire_how)
        row("compute and host/USB latency", s["other_seconds"], "wall time less the link")
        row("  of it, compute (predicted)", s["predicted_compute_seconds"],
            f"manifest latency {s['predicted_latency_cycles']:,} cycles at {s['clock_hz'] / 1e6:g} MHz")
        console.print(time_table)
    if session["retries"] or session["stray_bytes"]:
        errors = ", ".join(f"{v} {k}" for k, v in session["board_errors"].items()) or "none"
        console.print(f"resent {session['retries']} requests: {session['timeouts']} timeouts, "
                      f"{session['garbled']} garbled replies, board error replies: {errors}; "
                      f"{session['stray_bytes']} stray bytes dropped")
    console.print("[bold green]PASS[/]: every reply bit-exact" if s["passed"] else "[bold red]FAIL[/]")


def _duration(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"
