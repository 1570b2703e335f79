"""``bnn2fpga explore``: the candidates, the hardware-aware allocation, and the command on synthetic data,
locally and (slow suite) on a Ray head started here on 127.0.0.1."""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bnn2fpga.checkpoint import load
from bnn2fpga.cli import main
from bnn2fpga.explore import space
from bnn2fpga.explore.cost import CostModel
from bnn2fpga.nn.models import binops, hidden_widths, make_architecture
from bnn2fpga.prune.flip import with_widths

TINY = ["train", "--model", "tfc", "--dataset", "synthetic", "--epochs", "2", "--batch-size", "25",
        "--widths", "32,16,8", "--quiet"]
# Small on purpose: 1 epoch a trial, a 400-image holdout of the 2,000 synthetic training images.
EXPLORE = ["--holdout", "400", "--epochs", "1", "--multipliers", "0.5,0.25", "--binop-targets", "0.5",
           "--keep-planes", "2", "--confirm", "none", "--workers", "1", "--quiet"]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("explore") / "base.pt"
    assert main([*TINY, "--out", str(out)]) == 0
    return out


def test_candidates_have_the_shapes_their_methods_promise() -> None:
    arch = make_architecture("sfc")
    assert hidden_widths(space.uniform(arch, 0.5).arch) == [128, 128, 128]
    assert space.bitslice(arch, 2).planes == [6, 7] and hidden_widths(space.bitslice(arch, 2).arch) == [256] * 3
    p = [0.5, 0.1, 0.0]
    for c in (space.flip(arch, p, 0.5), space.random_widths(arch, 0.5, seed=0)):
        assert binops(c.arch) <= 0.5 * binops(arch) * 1.02, c.label
    assert space.flip(arch, p, 0.5).widths[2] == 256  # p = 0: flip never narrows that layer
    # the random control: the same target, another allocation; and reproducible
    assert space.random_widths(arch, 0.5, 0).widths == space.random_widths(arch, 0.5, 0).widths
    both = space.flip_bitslice(arch, p, 0.3, 2)
    assert both.planes == [6, 7] and binops(both.arch) <= 0.3 * binops(arch) * 1.02
    assert space.uniform(arch, 0.5).key != space.uniform(arch, 0.25).key
    assert space.uniform(arch, 0.5).key == space.uniform(make_architecture("sfc"), 0.5).key  # content, not identity


def test_hardware_aware_narrows_the_expensive_layer_within_the_budget() -> None:
    arch = with_widths(make_architecture("sfc"), [64, 64, 64])
    # A cost where layer 1 is ten times as expensive per channel as the others.
    def cost(a: dict) -> float:
        w = hidden_widths(a)
        return w[0] + 10 * w[1] + w[2]

    budget = cost(space.uniform(arch, 0.5).arch)
    found = space.hardware_aware(arch, budget, cost, label="hw")
    assert found is not None and cost(found.arch) <= budget
    w = found.widths
    assert w[1] < 32 and w[0] > 32 and w[2] > 32  # it spent the cuts where they pay
    assert binops(found.arch) > binops(space.uniform(arch, 0.5).arch)  # more computation at the same cost
    assert space.hardware_aware(arch, 0.0, cost, label="hw") is None  # even the narrowest costs more
    # No layer below the number of classes (10), even where a narrower one is all the budget allows.
    tight = space.hardware_aware(arch, cost(with_widths(arch, [10, 10, 10])), cost, label="hw")
    assert tight is not None and min(tight.widths) >= 10
    assert space.hardware_aware(arch, cost(with_widths(arch, [10, 10, 10])) - 1, cost, label="hw") is None
    # Nothing fits at first (inf): it narrows towards a fit.
    def fits_small(a: dict) -> float:
        return math.inf if sum(hidden_widths(a)) > 100 else float(sum(hidden_widths(a)))
    assert space.hardware_aware(arch, 100, fits_small, label="hw") is not None


def test_hardware_aware_keeps_the_better_of_descent_and_exchange() -> None:
    arch = make_architecture("sfc")
    # Layers 1 and 2 are expensive only while layer 0 is wide (as a folding the first layer's width
    # sets): the descent cuts them first, to the floor, and cannot undo it once layer 0 is narrow.
    def cost(a: dict) -> float:
        w = hidden_widths(a)
        return w[0] + (w[1] + w[2]) * (10 if w[0] > 64 else 0.1)

    uniform = space.uniform(arch, 0.25)
    budget = cost(uniform.arch)
    descent = space.hardware_aware(arch, budget, cost, label="hw")  # no start: the descent alone
    assert descent is not None and descent.widths[1:] == [10, 10]
    found = space.hardware_aware(arch, budget, cost, label="hw", start=uniform.widths)
    assert found is not None and cost(found.arch) <= budget
    assert space.capacity(found.widths) >= space.capacity(uniform.widths) > space.capacity(descent.widths)
    assert min(found.widths) > 10
    # Where the descent keeps more, it stays: the case above with a smooth cost.
    def smooth(a: dict) -> float:
        w = hidden_widths(a)
        return 6272 * w[0] + w[0] * w[1] + w[1] * w[2] + 10 * w[2]

    budget = smooth(uniform.arch)
    assert (space.hardware_aware(arch, budget, smooth, label="hw", start=uniform.widths).widths
            == space.hardware_aware(arch, budget, smooth, label="hw").widths)


def test_a_recommendation_that_does_not_build_gives_way_to_the_next() -> None:
    from bnn2fpga.explore.front import recommend
    from bnn2fpga.explore.search import MAX_FALLBACKS, ExploreResult, confirm_with_fallback

    def row(label: str, accuracy: float) -> dict:
        return {"label": label, "key": label, "fits": True, "holdout_accuracy": accuracy, "lut": 100, "bram36": 1.0}

    rows = [row("a", 0.9), row("b", 0.8), row("c", 0.7)]
    built: list[str] = []

    def confirm(result: ExploreResult) -> None:  # "a" does not place; the others build
        label = result.recommended["label"]
        built.append(label)
        if label == "a":
            result.recommended["build_error"] = "the design does not fit"

    result = ExploreResult(rows, recommend(rows), 0)
    logged: list[str] = []
    confirm_with_fallback(result, confirm, logged.append)
    assert result.recommended["label"] == "b" and built == ["a", "b"]
    assert "a did not build" in logged[0] and recommend(rows)["label"] == "b"
    # None builds: the tries are bounded and the last failure stays, saying so.
    failing = [row(str(i), 0.9 - i / 100) for i in range(10)]
    def never(result: ExploreResult) -> None:
        result.recommended["build_error"] = "no"
    result = ExploreResult(failing, recommend(failing), 0)
    confirm_with_fallback(result, never)
    assert result.recommended["label"] == str(MAX_FALLBACKS) and result.recommended["build_error"]


def test_an_open_boards_build_is_reported_in_placed_cells_and_clock(tmp_path: Path) -> None:
    from bnn2fpga.cli.commands.explore import built_text
    from bnn2fpga.explore.search import placed_resources

    (tmp_path / "manifest.json").write_text(json.dumps({"bitstream": {"clock_mhz": 42, "utilisation": {
        "ICESTORM_LC": {"used": 2231, "available": 5280}, "ICESTORM_RAM": {"used": 26, "available": 30}}}}))
    placed = placed_resources(tmp_path)
    assert placed is not None and placed["logic_cells"] == 2231 and placed["bram"] == 26
    assert built_text({"placed": placed}) == "2,231 ICESTORM_LC / 26 ICESTORM_RAM at 42 MHz"
    assert built_text({"yosys": {"lut": 12502, "bram36": 3.5}}) == "12,502 / 3.5" and built_text({}) == ""
    (tmp_path / "manifest.json").write_text("{}")  # a Xilinx board's build: no bitstream section
    assert placed_resources(tmp_path) is None


def test_a_candidate_slower_than_the_host_link_misses_the_rate() -> None:
    """Without --target-fps the rate is the host link's: sfc at full width fits pynq-z2 only at a folding
    that takes 192 cycles a frame, twice what the DMA feeds it in (98), so it misses the rate (the build
    would take that slower folding, but explore compares at the rate); at half width it reaches it."""
    costs = CostModel("pynq-z2", None, "fashion-mnist")
    full = costs(make_architecture("sfc"))
    assert not full.fits and full.interval is not None and full.interval > 98
    assert "host link" in (full.reason or "") and math.isinf(costs.scalar(make_architecture("sfc")))
    half = costs(with_widths(make_architecture("sfc"), [128, 128, 128]))
    assert half.fits and half.interval is not None and half.interval <= 98
    # A conv network's input and window units (900 cycles for cnv on 28x28) are slower than the link
    # whatever its widths: that is the rate, reached.
    cnv = costs(with_widths(make_architecture("cnv"), [16, 16, 32, 32, 64, 64, 128, 128]))
    assert cnv.fits and cnv.interval == 900


def test_explore_end_to_end_resumes_and_reports(base: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ex"
    # One method's trials; then a budget spent before any new trial starts: the table of those, the rest
    # left for the next run.
    assert main(["explore", str(base), "--out", str(out), *EXPLORE, "--methods", "base"]) == 0
    assert main(["explore", str(base), "--out", str(out), *EXPLORE, "--budget", "0.0001"]) == 0
    first = json.loads((out / "explore.json").read_text())
    assert first["missing_trials"] > 0 and any(r["holdout_accuracy"] is not None for r in first["rows"])
    capsys.readouterr()
    assert main(["explore", str(base), "--out", str(out), *[a for a in EXPLORE if a != "--quiet"]]) == 0
    text = capsys.readouterr().out
    assert "cached" in text and "not run" not in text
    doc = json.loads((out / "explore.json").read_text())
    assert doc["format"] == "bnn2fpga-explore/1" and doc["missing_trials"] == 0 and doc["selection"] == "holdout:400"
    rows = {r["label"]: r for r in doc["rows"]}
    methods = {r["method"] for r in doc["rows"]}
    assert methods == {"base", "uniform", "flip", "bitslice", "flip+bitslice", "random", "hardware"}
    for r in doc["rows"]:
        assert r["fits"] and r["interval"] > 0 and 0 <= r["holdout_accuracy"] <= 1, r
        # the test set is reported for the fronts only
        assert (r["test_accuracy"] is not None) == (r["front_lut"] or r["front_bram"]), r
    assert rows["uniform x0.25"]["lut"] < rows["uniform x0.5"]["lut"] < rows["input's shape"]["lut"]
    best = next(r for r in doc["rows"] if r["key"] == doc["recommended"])
    assert best["holdout_accuracy"] == max(r["holdout_accuracy"] for r in doc["rows"])
    assert (out / "pareto.png").stat().st_size > 10_000
    # The recommended checkpoint is a normal one, built, and the reference agrees with PyTorch on it.
    rec = load(out / "recommended.pt")
    assert hidden_widths(rec.architecture) == best["widths"] and rec.training["holdout"] == 400
    assert (out / "build" / "manifest.json").is_file()
    # every method that landed on the recommended shape shares its trials and its build
    assert all(r["build"] == str(out / "build") for r in doc["rows"] if r["key"] == best["key"])
    assert main(["eval", str(out / "recommended.pt"), "--dataset", "synthetic", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["agree"]
    # A third run trains nothing and gives the same table; `report` reads the folder.
    assert main(["explore", str(base), "--out", str(out), *EXPLORE]) == 0
    assert json.loads((out / "explore.json").read_text())["rows"] == doc["rows"]
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "recommended" in shown and best["label"] in shown


@pytest.mark.parametrize(("extra", "message"), [
    (["--methods", "flip,magic"], "--methods: unknown magic"),
    (["--seeds", "a"], "--seeds takes comma-separated integers"),
    (["--holdout", "2000"], "--holdout must lie in 1..1999"),
    (["--gpus-per-trial", "1"], "--gpus-per-trial asks Ray for GPUs: give --ray ADDRESS too"),
    (["--multipliers", "0"], "--multipliers"),
    (["--target-fps", "-1"], "--target-fps: must be a positive frame rate"),
    (["--methods", "base", "--ray", "127.0.0.1:1"], "--ray 127.0.0.1:1: nothing answers there"),
    (["--budget", "0.0001"], "was spent before the first trial could start"),
])
def test_bad_options_are_one_clear_error(base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         extra: list[str], message: str) -> None:
    out = tmp_path / "bad"
    assert main(["explore", str(base), "--out", str(out), *EXPLORE, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (out / "explore.json").exists()


def test_out_that_holds_other_files_is_refused(base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["explore", str(base), "--out", str(out), *EXPLORE]) == 2
    assert "holds other files" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine" and sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_explore_on_a_ray_head_gives_the_local_results(base: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="Ray is installed with the test extras (pip install -e '.[test]')")
    ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    assert ray, "the ray command comes with the ray package"
    port = _free_port()
    args = [*EXPLORE, "--methods", "base,uniform,bitslice", "--no-build"]
    started = subprocess.run([ray, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                              "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats"],
                             capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        assert main(["explore", str(base), "--out", str(tmp_path / "ray"), *args,
                     "--ray", f"127.0.0.1:{port}"]) == 0
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=120)
    assert main(["explore", str(base), "--out", str(tmp_path / "local"), *args]) == 0
    on_ray = json.loads((tmp_path / "ray" / "explore.json").read_text())["rows"]
    local = json.loads((tmp_path / "local" / "explore.json").read_text())["rows"]
    assert [(r["key"], r["holdout_accuracy"]) for r in on_ray] == [(r["key"], r["holdout_accuracy"]) for r in local]
