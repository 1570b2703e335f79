"""`bnn2fpga explore`: the most accurate network that fits a board at a frame rate.

Steps: (1) the candidates (``space``) from the input checkpoint, each costed at the target rate on the
board (``cost``: the build's folding and resource models); the hardware-aware ones get the uniform
candidates' costs as budgets, so each is compared with a control at equal hardware cost. (2) Every
candidate that reaches the rate is trained per seed from scratch with the input's recipe on the
training set less a holdout (``trials``: cached by content, so a killed run goes on where it
stopped). (3) Accuracy is decided on the holdout; the Pareto fronts, the recommendation, the table,
the plots and ``explore.json`` are written; the recommended checkpoint is copied out and built
(``build``), and Yosys counts the resources of every front member (``confirm``)."""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..checkpoint import Checkpoint
from ..errors import UserError
from ..nn.models import binops, require_chain
from . import space
from .cost import CostModel
from .front import mark_fronts, plot, recommend, summarise
from .trials import Trial, TrialStore, run_local, run_ray

if TYPE_CHECKING:
    from ..contract.manifest import Manifest

__all__ = ["ExploreOptions", "ExploreResult", "explore", "FORMAT"]

FORMAT = "bnn2fpga-explore/1"
Log = Callable[[str], None]


@dataclass(frozen=True)
class ExploreOptions:
    board: str = "pynq-z2"
    target_fps: float | str | None = None  # None: what the board's host link feeds
    out: Path = Path("explore")
    dataset: str | None = None  # None: the checkpoint's
    data: str | None = None
    methods: tuple[str, ...] = space.METHODS
    multipliers: tuple[float, ...] = (0.75, 0.5, 0.375, 0.25)
    binop_targets: tuple[float, ...] = (0.7, 0.5, 0.3)
    keep_planes: tuple[int, ...] = (4, 2, 1)
    seeds: tuple[int, ...] = (0,)
    epochs: int | None = None  # None: the input's recipe
    holdout: int = 5000
    limit: int | None = None  # training images (None: the input's own limit, else all)
    workers: int = 0  # 0: the CPUs this process may use
    ray: str | None = None  # a Ray cluster's address
    gpus_per_trial: float = 0.0
    budget_s: float | None = None  # stop starting trials after this long; run again to go on
    confirm: str = "front"  # Yosys on: "front", "recommended" or "none"
    build: bool = True  # build the recommended checkpoint
    margin: float = 0.85


@dataclass
class ExploreResult:
    rows: list[dict[str, Any]]
    recommended: dict[str, Any] | None
    missing: int  # trials not run (budget spent): run again to finish
    files: list[Path] = field(default_factory=list)


def _flip_fractions(ckpt: Checkpoint, path: Path, fit: Any, out: Path, log: Log | None) -> list[float]:
    """``p_l`` of the input's own flips (recorded in training or an earlier prune), else a tracking pass, whose
    result is kept in ``out/flips.json`` for this very checkpoint (a run that goes on does not count again)."""
    import hashlib

    from ..nn.models import hidden_widths
    from ..prune.flip import FlipConfig, layer_p, recipe, recorded_flips, track_flips

    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    cache = out / "flips.json"
    try:
        kept = json.loads(cache.read_text())
        if kept.get("checkpoint_sha256") == digest:
            return [float(q) for q in kept["p"]]
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        pass
    model = ckpt.model()
    config = FlipConfig()
    found = recorded_flips(ckpt, model)
    if found is None:
        if log:
            log(f"counting weight flips: a tracking pass of {config.track_epochs} epoch(s)")
        stats, _ = track_flips(model, fit, recipe(ckpt.training, 0), config, show_progress=False)
    else:
        stats, source = found
        if log:
            log(f"weight flips from the {source}")
    p = layer_p(stats, config, len(hidden_widths(ckpt.architecture)))
    cache.write_text(json.dumps({"checkpoint_sha256": digest, "tau": config.tau, "p": p}) + "\n")
    return p


def candidates(ckpt: Checkpoint, options: ExploreOptions, costs: CostModel, flips: Sequence[float] | None,
               log: Log | None = None) -> list[space.Candidate]:
    arch = ckpt.architecture
    planes = len(arch["input"]["planes"])
    out: list[space.Candidate] = [space.Candidate("base", "input's shape", arch)]
    methods = set(options.methods)
    multipliers = sorted(set(options.multipliers), reverse=True)
    if "uniform" in methods or "hardware" in methods:
        out += [space.uniform(arch, m) for m in multipliers]
    if flips is not None and "flip" in methods:
        out += [space.flip(arch, flips, t) for t in options.binop_targets]
    keeps = [k for k in options.keep_planes if 1 <= k < planes]
    if "bitslice" in methods:
        out += [space.bitslice(arch, k) for k in keeps]
    if flips is not None and "flip+bitslice" in methods:
        out += [space.flip_bitslice(arch, flips, t, k) for t in options.binop_targets for k in keeps]
    if "random" in methods:
        out += [space.random_widths(arch, t, seed=0) for t in options.binop_targets]
    if "hardware" in methods:
        for m in multipliers:
            control = space.uniform(arch, m)
            budget = costs.scalar(control.arch)
            if math.isinf(budget):
                continue  # the control itself misses the rate: nothing to match
            found = space.hardware_aware(arch, budget, costs.scalar, label=f"hardware = cost of x{m:g}",
                                         start=control.widths)
            if found is not None:
                out.append(found)
            elif log:
                log(f"hardware-aware allocation: nothing within the cost of x{m:g}")
    if "uniform" not in methods:  # they were made as the hardware-aware budgets only
        out = [c for c in out if c.method != "uniform"]
    return out


def _check(ckpt: Checkpoint, options: ExploreOptions, train_images: int) -> None:
    unknown = sorted(set(options.methods) - set(space.METHODS))
    if unknown:
        raise UserError(f"--methods: unknown {', '.join(unknown)}; choose from {', '.join(space.METHODS)}")
    from ..data import check_holdout

    check_holdout(options.holdout, train_images)
    if options.confirm not in ("front", "recommended", "none"):
        raise UserError(f"--confirm takes front, recommended or none, not {options.confirm!r}")


def explore(checkpoint: Path | str, options: ExploreOptions, *, log: Log | None = None,
            progress: Callable[[int, int, dict[str, Any]], None] | None = None) -> ExploreResult:
    from ..checkpoint import load
    from ..data import Split, dataset_of, require_fit
    from ..data import load as load_dataset
    from ..prune.flip import recipe

    started = time.monotonic()
    ckpt = load(checkpoint)
    require_chain(ckpt.architecture, "explore's pruning and width search")
    dataset = dataset_of(options.dataset, ckpt.dataset)
    ds = load_dataset(dataset, options.data)
    require_fit(ckpt.architecture, ds, str(checkpoint), ckpt.dataset)
    _check(ckpt, options, len(ds.train))
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    limit = options.limit if options.limit is not None else ckpt.training.get("limit")
    limit = int(limit) if isinstance(limit, int) else None
    n = len(ds.train) - options.holdout
    fit = Split(ds.train.images[:n], ds.train.labels[:n]).head(limit)

    costs = CostModel(options.board, options.target_fps, dataset, options.margin)
    wants_flips = {"flip", "flip+bitslice"} & set(options.methods)
    flips = _flip_fractions(ckpt, Path(checkpoint), fit, out, log) if wants_flips else None
    cands = candidates(ckpt, options, costs, flips, log)
    rec = recipe(ckpt.training, 0).to_dict()
    if options.epochs is not None:
        rec["epochs"] = options.epochs
    rec.pop("seed")
    store = TrialStore(out / "trials")
    trials: list[Trial] = []
    for c in {c.key: c for c in cands}.values():
        if not costs(c.arch).fits:
            continue  # no folding reaches the rate: not worth training
        for seed in options.seeds:
            trials.append(Trial(c.key, c.arch, dataset, options.data, rec, seed, options.holdout, limit))
    todo = [t for t in trials if store.result(t.key) is None]
    if log:
        log(f"{len(cands)} candidates ({len({c.key for c in cands})} shapes), {len(trials)} trials: "
            f"{len(trials) - len(todo)} cached, {len(todo)} to train")
    done = len(trials) - len(todo)
    spent = time.monotonic() - started
    if todo and options.budget_s is not None and spent > options.budget_s:
        if not done:
            raise UserError(f"--budget {options.budget_s:g} s was spent before the first trial could start "
                            f"(loading and costing the candidates took {spent:.0f} s, and a trial takes longer): "
                            "give a larger --budget, or leave it out")
        todo = []  # the budget is spent: the table of the trials already finished, the rest next time
    if todo:
        workers = options.workers or len(os.sched_getaffinity(0))
        stream = (run_ray(todo, options.ray, options.gpus_per_trial, log) if options.ray
                  else run_local(todo, workers))
        try:
            for outcome in stream:
                result = store.put(outcome)
                done += 1
                if progress:
                    progress(done, len(trials), result)
                if options.budget_s is not None and time.monotonic() - started > options.budget_s:
                    break
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()
    missing = sum(store.result(t.key) is None for t in trials)
    rows = _rows(cands, trials, store, costs)
    best = recommend(rows)
    result = ExploreResult(rows, best, missing)
    if not missing:
        confirm_with_fallback(result, lambda r: _confirm(r, options, store, log), log)
    result.files += _write(result, ckpt, checkpoint, options, store, trials, dataset)
    return result


MAX_FALLBACKS = 3  # recommendations tried after the first whose build failed (each build takes minutes)


def confirm_with_fallback(result: ExploreResult, confirm: Callable[[ExploreResult], None],
                          log: Log | None = None) -> None:
    """Build (``confirm``) the recommendation; where its build fails (the estimates said it fits, the
    synthesis or the placer did not), recommend the next most accurate candidate and build that, up to
    :data:`MAX_FALLBACKS` times. A recommendation whose build failed stays only when none is left."""
    for attempt in range(MAX_FALLBACKS + 1):
        confirm(result)
        best = result.recommended
        if best is None or not best.get("build_error") or attempt == MAX_FALLBACKS:
            return
        following = recommend(result.rows)  # skips the candidates whose build failed
        if following is None:
            return
        if log:
            log(f"{best['label']} did not build; recommending the next most accurate: {following['label']}")
        result.recommended = following


def _confirm(result: ExploreResult, options: ExploreOptions, store: TrialStore, log: Log | None) -> None:
    """Build the recommended checkpoint into ``out/build`` and (``confirm``) count with Yosys the resources of
    the front's members (or the recommended one's): each build's ``resources.yosys`` goes into its row."""
    from ..backend.build import BuildError, BuildOptions, build
    from ..contract.manifest import load_manifest

    out = Path(options.out)
    best = result.recommended
    wanted = {"front": [r for r in result.rows if r["front_lut"] or r["front_bram"]],
              "recommended": [best] if best else [], "none": []}[options.confirm]
    if best is not None and options.build and best not in wanted:
        wanted.append(best)
    by_key: dict[str, list[dict[str, Any]]] = {}
    for r in result.rows:  # methods that land on one shape share its trials, and so its build
        by_key.setdefault(r["key"], []).append(r)
    for key in dict.fromkeys(r["key"] for r in wanted if not r.get("build_error")):  # a failure is not retried
        rows = by_key[key]
        ckpt = trial_checkpoint(out, rows[0])
        if ckpt is None:
            continue
        synth = options.confirm != "none"
        folder = out / "build" if best is not None and key == best["key"] else out / "front" / key
        manifest = _earlier_build(folder, ckpt, synth)
        if manifest is None:
            if log:
                log(f"building {rows[0]['label']}{' with Yosys' if synth else ''} into {folder}")
            try:
                state = build(ckpt, BuildOptions(board=options.board, target_fps=options.target_fps, out=folder,
                                                 margin=options.margin, synth=synth, force=True),
                              show_progress=False)
            except BuildError as e:
                if log:
                    log(f"the build of {rows[0]['label']} failed: {str(e).splitlines()[0]}")
                for row in rows:
                    row["build_error"] = str(e)
                continue
            manifest = load_manifest(state.out)
        yosys = manifest.resources.yosys if manifest.resources is not None else None
        placed = placed_resources(folder)
        for row in rows:
            row["build"] = str(folder)
            row["interval_built"] = manifest.initiation_interval
            if yosys is not None:
                row["yosys"] = {"lut": yosys.lut, "ff": yosys.ff, "bram36": yosys.bram36}
            if placed is not None:
                row["placed"] = placed


def placed_resources(folder: Path) -> dict[str, Any] | None:
    """An open board's bitstream: nextpnr's logic cells and block RAM and the clock it closed (the
    estimates count 7-series LUT6s, which say little about an iCE40's LUT4 cells)."""
    from ..backend.bitstream import LOGIC_CELLS, MEMORY_CELLS  # the bitstream flow loads Amaranth: not at start-up

    bitstream = json.loads((folder / "manifest.json").read_text()).get("bitstream")
    if not isinstance(bitstream, dict) or not isinstance(bitstream.get("utilisation"), dict):
        return None
    used = bitstream["utilisation"]
    logic = next((k for k in LOGIC_CELLS if k in used), None)  # TRELLIS_COMB before TRELLIS_FF: the LUTs
    memory = next((k for k in MEMORY_CELLS if k in used), None)
    if logic is None or memory is None:
        return None
    return {"logic_cells": used[logic]["used"], "logic_kind": logic, "bram": used[memory]["used"],
            "bram_kind": memory, "clock_mhz": bitstream.get("clock_mhz")}


def _rows(cands: Sequence[space.Candidate], trials: Sequence[Trial], store: TrialStore,
          costs: CostModel) -> list[dict[str, Any]]:
    base_binops = binops(cands[0].arch)
    rows = []
    for c in cands:
        cost = costs(c.arch)
        results = [r for t in trials if t.candidate == c.key and (r := store.result(t.key)) is not None]
        row = {"method": c.method, "label": c.label, "key": c.key, "widths": c.widths, "planes": c.planes,
               "binops": binops(c.arch), "binops_fraction": binops(c.arch) / base_binops, **cost.to_json(),
               "trials": [t.key for t in trials if t.candidate == c.key]}
        rows.append(summarise(row, results))
    return mark_fronts(rows)


def _write(result: ExploreResult, ckpt: Checkpoint, checkpoint: Path | str, options: ExploreOptions,
           store: TrialStore, trials: Sequence[Trial], dataset: str) -> list[Path]:
    out = Path(options.out)
    files = []
    best = result.recommended
    if best is not None:
        seed_trial = next(t for t in trials if t.candidate == best["key"] and store.result(t.key) is not None)
        rec_path = out / "recommended.pt"
        shutil.copyfile(store.checkpoint(seed_trial.key), rec_path)
        files.append(rec_path)
    rate = f"{options.target_fps} frames/s" if options.target_fps else "its host link's frame rate"
    title = f"{Path(checkpoint).name} on {options.board} at {rate}: holdout accuracy against hardware"
    if any(r["fits"] and r["holdout_accuracy"] is not None for r in result.rows):
        files.append(plot(result.rows, out / "pareto.png", title=title))
    doc = {"format": FORMAT, "checkpoint": str(checkpoint), "dataset": dataset, "board": options.board,
           "target_fps": options.target_fps, "options": {k: (str(v) if isinstance(v, Path) else v)
                                                          for k, v in asdict(options).items()},
           "selection": f"holdout:{options.holdout}", "rows": result.rows, "missing_trials": result.missing,
           "recommended": best["key"] if best else None,
           "note": "accuracy decided on the holdout; the test accuracy is reported for the fronts only"}
    path = out / "explore.json"
    tmp = out / ".explore.json.tmp"
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(path)
    files.append(path)
    return files


def _earlier_build(folder: Path, ckpt: Path, synth: bool) -> Manifest | None:
    """The manifest of a build of this very checkpoint already in ``folder`` (with Yosys counts if wanted)."""
    import hashlib

    from ..contract.manifest import ManifestError, load_manifest

    try:
        manifest = load_manifest(folder)
    except (ManifestError, OSError):
        return None
    record = manifest.checkpoint
    if record is None or record.sha256 != hashlib.sha256(ckpt.read_bytes()).hexdigest():
        return None
    if synth and (manifest.resources is None or manifest.resources.yosys is None) and not placed_resources(folder):
        return None  # not counted: an open board's build counts in its bitstream section (nextpnr's cells)
    return manifest


def trial_checkpoint(out: Path, row: dict[str, Any]) -> Path | None:
    """A trained checkpoint of ``row`` (its first seed's) in an exploration folder."""
    store = TrialStore(Path(out) / "trials")
    for key in row.get("trials", []):
        if store.result(key) is not None:
            return store.checkpoint(key)
    return None
