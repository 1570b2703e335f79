"""Builds side by side (`bnn2fpga report`): what each costs, how fast it runs, how accurate it simulated.

Everything comes from the build folders themselves: ``manifest.json`` (network, board, folding,
cycles, the resource estimate and Yosys's count) and ``sim_build/simulations.json``, which
`bnn2fpga sim` keeps up to date (the bulk run over the whole test set is preferred to a cocotb run
over a few images).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..contract.manifest import ManifestError, load_manifest
from ..errors import UserError


class ReportError(UserError):
    pass


@dataclass
class BuildRow:
    build: str
    network: str
    board: str
    folding: str  # PE x SIMD per weight layer, compactly
    rate_bound: str
    initiation_interval: int
    latency: int
    fps: float
    lut_estimate: float
    ff_estimate: float
    bram36_estimate: float
    lut_yosys: float | None
    ff_yosys: float | None
    bram36_yosys: float | None
    accuracy: float | None  # hardware accuracy of the most complete simulation recorded
    simulated_images: int | None


def read_build(folder: Path | str) -> BuildRow:
    folder = Path(folder)
    try:
        manifest = load_manifest(folder)
        manifest.check_files()  # a folder whose files changed since the build is not the build it reports
    except (ManifestError, OSError, ValueError) as e:
        raise ReportError(f"{folder}: not a bnn2fpga build folder ({e}); give folders `bnn2fpga build` wrote") from None
    if manifest.resources is None:
        raise ReportError(f"{folder}: its manifest.json records no resources (a build from an old version); rebuild")
    est, yosys = manifest.resources.estimate, manifest.resources.yosys
    sims: dict[str, Any] = {}
    record = folder / "sim_build" / "simulations.json"
    if record.is_file():
        try:
            sims = json.loads(record.read_text())
        except ValueError:
            sims = {}
    best = max(sims.values(), key=lambda r: r.get("images", 0), default=None) if isinstance(sims, dict) else None
    source = manifest.checkpoint.source if manifest.checkpoint is not None else "?"
    return BuildRow(
        build=str(folder), network=f"{manifest.top} ({source})", board=manifest.board,
        folding=manifest.folding.text if manifest.folding is not None else "",
        rate_bound=manifest.rate_bound or "-",
        initiation_interval=manifest.initiation_interval, latency=manifest.latency,
        fps=manifest.fps, lut_estimate=est.lut, ff_estimate=est.ff, bram36_estimate=est.bram36,
        lut_yosys=None if yosys is None else yosys.lut, ff_yosys=None if yosys is None else yosys.ff,
        bram36_yosys=None if yosys is None else yosys.bram36,
        accuracy=None if best is None else float(best["hardware_accuracy"]),
        simulated_images=None if best is None else int(best["images"]))


def markdown(rows: list[BuildRow]) -> str:
    def num(v: float | None, fmt: str = ",.0f") -> str:
        return "-" if v is None else format(v, fmt)

    lines = ["| build | network | board | II (cycles) | latency | frames/s | rate set by | LUT est. / Yosys | "
             "FF est. / Yosys | BRAM36 est. / Yosys | hw accuracy | folding (PE x SIMD) |",
             "|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|---|"]
    for r in rows:
        acc = "-" if r.accuracy is None else f"{100 * r.accuracy:.2f} % ({r.simulated_images:,} images)"
        lines.append(f"| {Path(r.build).name} | {r.network} | {r.board} | {r.initiation_interval:,} | {r.latency:,} | "
                     f"{r.fps:,.0f} | {r.rate_bound} | {num(r.lut_estimate)} / {num(r.lut_yosys)} | "
                     f"{num(r.ff_estimate)} / {num(r.ff_yosys)} | {num(r.bram36_estimate, 'g')} / "
                     f"{num(r.bram36_yosys, 'g')} | {acc} | {r.folding} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[BuildRow], path: Path) -> None:
    """Frames/s against LUTs (Yosys where measured), one labelled point per build, and BRAM beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    names = [Path(r.build).name for r in rows]
    for r, name in zip(rows, names, strict=True):
        lut = r.lut_yosys if r.lut_yosys is not None else r.lut_estimate
        ax.scatter(lut, r.fps, s=40)
        label = name + ("" if r.accuracy is None else f"\n{100 * r.accuracy:.2f} %")
        ax.annotate(label, (lut, r.fps), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xlabel("LUT (Yosys where synthesised, else the estimate)")
    ax.set_ylabel("frames per second")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title("speed against logic")
    bram = [r.bram36_yosys if r.bram36_yosys is not None else r.bram36_estimate for r in rows]
    bx.barh(names, bram, color="tab:orange")
    bx.set_xlabel("BRAM36")
    bx.set_title("block RAM")
    bx.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(rows: list[BuildRow], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "report.md", out / "report.json", out / "report.png"]
    files[0].write_text("# bnn2fpga builds side by side\n\n" + markdown(rows))
    files[1].write_text(json.dumps([asdict(r) for r in rows], indent=1))
    plot(rows, files[2])
    return files
