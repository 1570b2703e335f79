"""The rows of an exploration: per candidate its hardware cost and accuracy over seeds, the Pareto fronts
(accuracy against LUT and against block RAM, among the candidates that reach the rate), the
recommendation, and the plots."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .space import SEED_METHODS

__all__ = ["summarise", "mark_fronts", "recommend", "plot"]


def summarise(candidate: dict[str, Any], results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One row: the candidate, its cost, and its holdout accuracy as mean and sample std over seeds."""
    accs = [r["holdout_accuracy"] for r in results]
    tests = [r["test_accuracy"] for r in results]
    return {**candidate, "seeds": [r["seed"] for r in results],
            "holdout_accuracy": statistics.fmean(accs) if accs else None,
            "holdout_std": statistics.stdev(accs) if len(accs) > 1 else 0.0 if accs else None,
            "_test": statistics.fmean(tests) if tests else None}


def _dominated(r: dict[str, Any], rows: Sequence[dict[str, Any]], cost: str) -> bool:
    return any(o is not r and o[cost] <= r[cost] and o["holdout_accuracy"] >= r["holdout_accuracy"]
               and (o[cost] < r[cost] or o["holdout_accuracy"] > r["holdout_accuracy"]) for o in rows)


def mark_fronts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``front_lut`` / ``front_bram``: on the Pareto front of accuracy against that resource, among the rows
    that reach the rate. The test accuracy is kept only for rows on a front (it is reported, never used to
    choose); the others lose it."""
    live = [r for r in rows if r["fits"] and r["holdout_accuracy"] is not None]
    for r in rows:
        r["front_lut"] = r in live and not _dominated(r, live, "lut")
        r["front_bram"] = r in live and not _dominated(r, live, "bram36")
        test = r.pop("_test")
        r["test_accuracy"] = test if (r["front_lut"] or r["front_bram"]) else None
    return rows


def recommend(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The most accurate candidate on the holdout that reaches the rate and did not fail to build; the
    cheaper in LUT on a tie."""
    live = [r for r in rows if r["fits"] and r["holdout_accuracy"] is not None and not r.get("build_error")]
    if not live:
        return None
    return max(live, key=lambda r: (round(r["holdout_accuracy"], 6), -r["lut"], -r["bram36"]))


_MARKERS = {"base": ("*", "black"), "uniform": ("s", "tab:gray"), "random": ("x", "tab:brown"),
            "flip": ("^", "tab:blue"), "bitslice": ("v", "tab:green"), "flip+bitslice": ("D", "tab:cyan"),
            "hardware": ("o", "tab:red")}


def plot(rows: Sequence[dict[str, Any]], path: Path, *, title: str) -> Path:
    """Accuracy against LUT and against BRAM36, one marker per method (the seed methods filled, the rest
    hollow), the fronts joined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    live = [r for r in rows if r["fits"] and r["holdout_accuracy"] is not None]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, cost, label in ((axes[0], "lut", "LUT (estimate)"), (axes[1], "bram36", "BRAM36 (estimate)")):
        for method, (marker, colour) in _MARKERS.items():
            pts = [r for r in live if r["method"] == method]
            if not pts:
                continue
            filled = method in SEED_METHODS or method in ("base", "hardware")
            ax.errorbar([r[cost] for r in pts], [100 * r["holdout_accuracy"] for r in pts],
                        yerr=[100 * (r["holdout_std"] or 0) for r in pts], fmt=marker, color=colour,
                        mfc=colour if filled else "none", capsize=2, linestyle="none",
                        label=method + (" (seed method)" if method in SEED_METHODS else ""))
        front = sorted((r for r in live if r[f"front_{'lut' if cost == 'lut' else 'bram'}"]), key=lambda r: r[cost])
        ax.plot([r[cost] for r in front], [100 * r["holdout_accuracy"] for r in front], color="tab:red", lw=0.8,
                alpha=0.6)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("holdout accuracy (%)")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
