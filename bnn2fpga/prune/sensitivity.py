"""Bit-level sensitivity analysis (CBNN, docs/bitslice-pruning.md) and ``bnn2fpga sensitivity``.

For each bit position ``b`` the network keeps, plane ``b`` of every colour channel is
replaced by uniform random ±1 on the evaluation images and the accuracy loss is measured,
over several independent draws (mean ± sample std). Cumulative removal randomises the
lowest ``j`` planes together, from the least significant bit up, for ``j = 1 .. P``.

The result is a plain dict (JSON-ready, storable in a checkpoint's pruning record):

``{"planes": [...], "images": N, "draws": D, "seed": s, "baseline": acc,
  "single": [{"bit": b, "accuracies": [...], "mean": m, "std": s, "drop_pp": d, "drop_std_pp": e}, ...],
  "cumulative": [{"removed": [0, 1], "kept": [...], ...same statistics}, ...]}``

Accuracies are fractions; drops are in percentage points (``100 * (baseline - mean)``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import Checkpoint
from ..data import Dataset, Split
from ..nn.models import BNN, require_chain
from ..nn.train import predict
from .planes import fill_bits, randomize_bits

Progress = Callable[[str], None]


def _accuracy(model: BNN, images: np.ndarray, labels: np.ndarray, batch_size: int) -> float:
    return float((predict(model, images, batch_size) == labels).mean())


def noisy_accuracies(model: BNN, split: Split, bits: Sequence[int], *, draws: int, seed: int,
                     batch_size: int = 1000, replace: str = "random") -> list[float]:
    """Accuracy with ``bits`` replaced by uniform random bits, one value per draw.

    Draw ``i`` uses the generator seeded with ``(seed, i)`` for every choice of ``bits``
    (common random numbers: differences between planes are not noise between draws).
    ``replace="0"`` or ``"1"`` fixes the planes to that bit instead (one deterministic value):
    what a network with those planes removed computes before retraining (see planes.py).
    """
    if replace in ("0", "1"):
        fixed = fill_bits(split.images, bits, int(replace))
        return [_accuracy(model, fixed, split.labels, batch_size)]
    if replace != "random":
        raise ValueError(f"replace must be 'random', '0' or '1', not {replace!r}")
    accs = []
    for i in range(draws):
        rng = np.random.default_rng([seed, i])
        accs.append(_accuracy(model, randomize_bits(split.images, bits, rng), split.labels, batch_size))
    return accs


def _stats(accs: list[float], baseline: float) -> dict[str, Any]:
    a = np.asarray(accs)
    std = float(a.std(ddof=1)) if len(a) > 1 else 0.0
    return {"accuracies": [float(x) for x in a], "mean": float(a.mean()), "std": std,
            "drop_pp": 100.0 * (baseline - float(a.mean())), "drop_std_pp": 100.0 * std}


def analyse(model: BNN, split: Split, *, draws: int = 5, seed: int = 0, batch_size: int = 1000,
            replace: str = "random", progress: Progress | None = None) -> dict[str, Any]:
    """Single-plane and cumulative (LSB-first) random-replacement sensitivity of ``model`` on ``split``."""
    if replace != "random":
        draws = 1  # a constant plane has one outcome
    if draws < 1:
        raise ValueError(f"draws must be a positive integer, not {draws!r}")
    planes = list(model.arch["input"]["planes"])
    baseline = _accuracy(model, split.images, split.labels, batch_size)
    single, cumulative = [], []
    for b in planes:
        if progress:
            progress(f"plane {b}")
        single.append({"bit": b, **_stats(noisy_accuracies(model, split, [b], draws=draws, seed=seed,
                                                           batch_size=batch_size, replace=replace), baseline)})
    for j in range(1, len(planes) + 1):
        removed = planes[:j]
        if progress:
            progress(f"planes {removed[0]}..{removed[-1]}")
        cumulative.append({"removed": removed, "kept": planes[j:],
                           **_stats(noisy_accuracies(model, split, removed, draws=draws, seed=seed,
                                                     batch_size=batch_size, replace=replace), baseline)})
    return {"planes": planes, "images": len(split), "draws": draws, "seed": seed, "replace": replace,
            "baseline": baseline,
            "single": single, "cumulative": cumulative}


def planes_within(result: dict[str, Any], max_drop_pp: float) -> list[int]:
    """The fewest most-significant planes whose LSB-first cumulative randomisation costs <= ``max_drop_pp``.

    Keeps at least one plane. This is the noise criterion of the paper, before retraining.
    """
    planes = list(result["planes"])
    keep = planes
    for row in result["cumulative"]:
        if row["kept"] and row["drop_pp"] <= max_drop_pp:
            keep = list(row["kept"])
    return keep


def compact(result: dict[str, Any]) -> dict[str, Any]:
    """The result without per-draw lists: small enough for a checkpoint record."""
    def strip(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "accuracies"} for r in rows]
    return {**result, "single": strip(result["single"]), "cumulative": strip(result["cumulative"])}


# ------------------------------------------------------------------ output

def table_rows(result: dict[str, Any]) -> list[tuple[str, ...]]:
    """Rows (bit, single mean±std, drop, cumulative kept, mean±std, drop) for printing."""
    rows = []
    for s, c in zip(result["single"], result["cumulative"], strict=True):
        kept = ",".join(map(str, c["kept"])) or "none"
        rows.append((str(s["bit"]), f"{100 * s['mean']:.2f} ± {100 * s['std']:.2f}", f"{s['drop_pp']:+.2f}",
                     f"{c['removed'][0]}..{c['removed'][-1]}", kept,
                     f"{100 * c['mean']:.2f} ± {100 * c['std']:.2f}", f"{c['drop_pp']:+.2f}"))
    return rows


def plot(result: dict[str, Any], path: Path | str, title: str = "") -> None:
    """Two panels: accuracy drop per single randomised plane, accuracy under cumulative LSB-first removal."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    bits = [s["bit"] for s in result["single"]]
    ax1.bar([str(b) for b in bits], [s["drop_pp"] for s in result["single"]],
            yerr=[s["drop_std_pp"] for s in result["single"]], capsize=3, color="tab:blue")
    ax1.set_xlabel("randomised bit plane (0 = LSB)")
    ax1.set_ylabel("accuracy drop (percentage points)")
    ax1.set_title("one plane replaced by " + ("random ±1" if result.get("replace", "random") == "random"
                                             else f"constant bit {result['replace']}"))
    ax1.grid(axis="y", alpha=0.3)
    xs = [0] + [len(c["removed"]) for c in result["cumulative"]]
    ys = [100 * result["baseline"]] + [100 * c["mean"] for c in result["cumulative"]]
    es = [0.0] + [100 * c["std"] for c in result["cumulative"]]
    ax2.errorbar(xs, ys, yerr=es, marker="o", capsize=3, color="tab:red")
    ax2.set_xticks(xs, ["none"] + [f"0..{c['removed'][-1]}" for c in result["cumulative"]], rotation=30)
    ax2.set_xlabel("planes randomised (LSB first)")
    ax2.set_ylabel("test accuracy (%)")
    ax2.set_title("cumulative removal")
    ax2.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------ inputs

def load_matching(checkpoint: Path | str, dataset: str | None,
                  data_dir: Path | str | None) -> tuple[Checkpoint, Dataset]:
    """Load a checkpoint and a dataset (default: the one it was trained on), refusing a dataset whose image
    shape differs from the model's."""
    from .. import data as datasets
    from ..checkpoint import load

    ckpt = load(checkpoint)
    require_chain(ckpt.architecture, "pruning")
    ds = datasets.load(datasets.dataset_of(dataset, ckpt.dataset), data_dir)
    datasets.require_fit(ckpt.architecture, ds, str(checkpoint), ckpt.dataset)
    return ckpt, ds
