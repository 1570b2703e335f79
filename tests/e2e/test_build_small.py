"""`bnn2fpga build` and `sim` on small random networks: determinism, folding, refusals, co-simulation."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from bnn2fpga.cli import main
from tests.conftest import random_checkpoint


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ck") / "tiny.pt"
    # Awkward widths, three planes, negative batch-norm scales and constant channels (see conftest).
    random_checkpoint("tfc", widths=[37, 13, 7], planes=[4, 6, 7], dataset="fashion-mnist").save(path)
    return path


def build(ck: Path, out: Path, *extra: str) -> int:
    return main(["build", str(ck), "--out", str(out), "--no-synth", "--quiet", *extra])


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "sim_build" not in p.parts}


def test_identical_inputs_give_byte_identical_builds(tiny: Path, tmp_path: Path) -> None:
    assert build(tiny, tmp_path / "a") == 0
    assert build(tiny, tmp_path / "b") == 0
    a, b = files(tmp_path / "a"), files(tmp_path / "b")
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)
    assert {"manifest.json", "report.md", "folding.json", "vivado.tcl", "driver.py", "checkpoint.pt"} <= a.keys()


def test_folding_file_and_target_fps(tiny: Path, tmp_path: Path) -> None:
    folding = {"pixels_per_beat": 7, "layers": {"dense0": {"pe": 5, "simd": 100}, "dense1": {"pe": 3, "simd": 10},
                                                "dense2": {"pe": 2, "simd": 13}, "output": {"pe": 4, "simd": 7}}}
    (tmp_path / "f.json").write_text(json.dumps(folding))
    assert build(tiny, tmp_path / "f", "--folding", str(tmp_path / "f.json")) == 0
    m = json.loads((tmp_path / "f" / "manifest.json").read_text())
    # The pipeline parameters the build chose (pynq-z2: xc7 at 100 MHz) are recorded with the folding.
    assert m["folding"] == {**folding, "popcount_levels_per_stage": 2, "mux_folds": 8}
    assert json.loads((tmp_path / "f" / "folding.json").read_text()) == m["folding"]
    dense0 = m["layers"][0]
    assert (dense0["mh"], dense0["mw"], dense0["cycles"]) == (37, 2352, 8 * 24)  # ceil(37/5) * ceil(2352/100)
    assert m["cycles"]["initiation_interval"] == max(layer["period"] for layer in m["layers"])
    assert build(tiny, tmp_path / "t", "--target-fps", "100000") == 0
    m = json.loads((tmp_path / "t" / "manifest.json").read_text())
    assert m["cycles"]["initiation_interval"] <= 1000


def test_bad_folding_is_one_clear_error(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f.json").write_text(json.dumps({"pixels_per_beat": 5, "layers": {}}))
    assert build(tiny, tmp_path / "f", "--folding", str(tmp_path / "f.json")) == 2
    assert "pixels_per_beat must be a positive divisor of 784, not 5" in capsys.readouterr().err
    (tmp_path / "g.json").write_text(json.dumps({"pixels_per_beat": 4, "layers": {
        "dense0": {"pe": 99, "simd": 1}, "dense1": {"pe": 1, "simd": 1}, "dense2": {"pe": 1, "simd": 1},
        "output": {"pe": 1, "simd": 1}}}))
    assert build(tiny, tmp_path / "g", "--folding", str(tmp_path / "g.json")) == 2
    assert "layer dense0: pe must be in 1..37 (its MH), not 99" in capsys.readouterr().err
    assert not (tmp_path / "g").exists()


def test_never_overwrites_what_the_user_made(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    assert build(tiny, mine, "--force") == 2
    assert "is not a bnn2fpga build folder" in capsys.readouterr().err
    assert (mine / "notes.txt").read_text() == "precious"
    assert build(tiny, tmp_path / "b") == 0
    assert build(tiny, tmp_path / "b") == 2
    assert "pass --force" in capsys.readouterr().err
    assert build(tiny, tmp_path / "b", "--force") == 0
    # A file of the user's inside a build folder: --force replaces only the build's own files.
    (tmp_path / "b" / "notes.txt").write_text("precious")
    (tmp_path / "b" / "sim_build").mkdir()
    (tmp_path / "b" / "sim_build" / "cache.bin").write_text("a simulator's, not the user's")
    capsys.readouterr()
    assert build(tiny, tmp_path / "b", "--force") == 2
    assert "holds files bnn2fpga did not write (notes.txt)" in capsys.readouterr().err
    assert (tmp_path / "b" / "notes.txt").read_text() == "precious"
    (tmp_path / "b" / "notes.txt").unlink()
    assert build(tiny, tmp_path / "b", "--force") == 0


def test_two_builds_into_one_folder_at_once_the_second_is_refused(tiny: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import fcntl

    out = tmp_path / "b"
    with (tmp_path / ".b.lock").open("a") as held:  # what a running build holds
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert build(tiny, out) == 2
        assert "another bnn2fpga build is writing" in capsys.readouterr().err
        assert not out.exists()
    assert build(tiny, out) == 0 and not (tmp_path / ".b.lock").exists()


def test_lfc_over_all_planes_is_refused_for_memory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ck = tmp_path / "lfc.pt"
    random_checkpoint("lfc", dataset="fashion-mnist").save(ck)
    assert build(ck, tmp_path / "lfc") == 2
    err = capsys.readouterr().err
    assert "the weights need 8.53 Mbit but pynq-z2 (xc7z020clg400-1) has 5.16 Mbit of block RAM" in err
    assert "layer dense0 alone holds 6.42 Mbit (1024 x 6272, over 8 input bit planes)" in err
    assert "--method bitslice" in err and not (tmp_path / "lfc").exists()


def test_conv_network_builds_and_cosimulates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A small cnv (x0.1 widths, padded 3x3 convs, two pools, flatten) from checkpoint to cocotb:
    # every word bit-exact under back-pressure, interval and latency as the manifest predicts.
    ck = tmp_path / "cnv.pt"
    random_checkpoint("cnv", width_multiplier=0.1, dataset="fashion-mnist").save(ck)
    assert build(ck, tmp_path / "cnv") == 0
    manifest = json.loads((tmp_path / "cnv" / "manifest.json").read_text())
    kinds = [layer["kind"] for layer in manifest["layers"]]
    # conv5's 3x3 window is its whole 3x3 map: lowered as a flatten and a dense MVTU (no window unit).
    assert kinds.count("window") == 5 and kinds.count("conv") == 5 and kinds.count("pool") == 2
    conv5 = next(layer for layer in manifest["layers"] if layer["name"] == "conv5")
    assert conv5["kind"] == "dense" and kinds[kinds.index("dense") - 1] == "flatten"
    assert manifest["input"]["pixels_per_beat"] == 1
    assert main(["sim", str(tmp_path / "cnv"), "--images", "12", "--json"]) == 0
    s = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert s["bit_exact"] and s["cycles_equal"] and s["passed"]
    assert s["in_stall_cycles"] > 0 and s["out_stall_cycles"] > 0


@pytest.mark.parametrize(("dataset", "shape"), [("fashion-mnist", (1, 28, 28)), ("fashion-mnist-32rgb", (3, 32, 32))],
                         ids=["28x28x1-padded", "32x32x3-valid"])
def test_integer_first_layer_cnv_builds_and_cosimulates(dataset: str, shape: tuple[int, int, int], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    # CNV-shaped (x0.1) with the integer-input first layer (FINN CNV / BinaryNet style) over 3 kept planes:
    # built, co-simulated with cocotb on real images, every word bit-exact, cycles as predicted. At 32x32x3
    # it is FINN's CNV topology itself (valid convolutions), narrowed.
    ck = tmp_path / "cnv_int.pt"
    c, h, w = shape
    random_checkpoint("cnv", width_multiplier=0.1, dataset=dataset, encoding="integer", planes=[5, 6, 7],
                      channels=c, height=h, width=w).save(ck)
    assert build(ck, tmp_path / "cnv") == 0
    manifest = json.loads((tmp_path / "cnv" / "manifest.json").read_text())
    first = next(layer for layer in manifest["layers"] if layer["kind"] == "conv")
    assert first["planes"] == [5, 6, 7] and first["mw"] == 9 * c  # 3x3xC weights shared by the planes
    assert main(["sim", str(tmp_path / "cnv"), "--images", "12", "--json"]) == 0
    s = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert s["bit_exact"] and s["cycles_equal"] and s["passed"]


def test_conv_folding_must_take_one_pixel_per_beat(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ck = tmp_path / "cnv.pt"
    random_checkpoint("cnv", width_multiplier=0.1, dataset="fashion-mnist").save(ck)
    assert build(ck, tmp_path / "a", "--target-fps", "20000") == 0
    folding = json.loads((tmp_path / "a" / "folding.json").read_text())
    folding["pixels_per_beat"] = 2
    (tmp_path / "f.json").write_text(json.dumps(folding))
    assert build(ck, tmp_path / "b", "--folding", str(tmp_path / "f.json")) == 2
    err = capsys.readouterr().err
    assert "a convolutional network takes one pixel per beat: pixels_per_beat must be 1" in err
    assert err.count("error:") == 1 and "Traceback" not in err and not (tmp_path / "b").exists()


def test_strided_conv_is_refused_naming_the_layer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ck = tmp_path / "cnv.pt"
    random_checkpoint("cnv", width_multiplier=0.1, dataset="fashion-mnist").save(ck)
    raw = torch.load(ck, weights_only=True)
    raw["architecture"]["layers"][3]["stride"] = 2
    torch.save(raw, ck)
    assert build(ck, tmp_path / "x") == 2
    err = capsys.readouterr().err
    assert "architecture.layers[3] (conv): unsupported field 'stride'" in err and "downsample with a pool" in err
    assert err.count("error:") == 1 and "Traceback" not in err and not (tmp_path / "x").exists()


def test_unknown_board(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", str(tiny), "--board", "nexys", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "invalid choice: 'nexys'" in err and "pynq-z2" in err


def test_cocotb_cosimulation_of_a_small_build(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert build(tiny, tmp_path / "s", "--target-fps", "200000") == 0
    assert main(["sim", str(tmp_path / "s"), "--images", "12", "--json"]) == 0
    s = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert s["bit_exact"] and s["cycles_equal"] and s["passed"]
    assert s["measured_initiation_interval"] == s["expected_initiation_interval"]
    # `bnn2fpga report` sets this simulated build beside a faster folding of the same network.
    assert build(tiny, tmp_path / "fast", "--target-fps", "max") == 0
    assert main(["report", str(tmp_path / "s"), str(tmp_path / "fast"), "--out", str(tmp_path / "cmp")]) == 0
    table = capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith("| s |") or line.startswith("| fast |")]
    assert len(rows) == 2 and "(12 images)" in rows[0] and "| target |" in rows[0] and "| resources |" in rows[1]
    assert (tmp_path / "cmp" / "report.png").stat().st_size > 10_000
    saved = json.loads((tmp_path / "cmp" / "report.json").read_text())
    assert saved[0]["simulated_images"] == 12 and saved[1]["accuracy"] is None
    assert saved[1]["fps"] > saved[0]["fps"]
    assert main(["report", str(tmp_path)]) == 2
    assert "not a bnn2fpga build folder" in capsys.readouterr().err


def test_sim_refuses_a_tampered_weight_rom_by_name(tiny: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "t"
    assert build(tiny, out, "--target-fps", "200000") == 0
    capsys.readouterr()
    manifest = json.loads((out / "manifest.json").read_text())
    name = manifest["memories"][-1]
    mem = out / name
    lines = mem.read_text().splitlines()
    lines[0] = "".join("0" if c != "0" else "f" for c in lines[0])  # flip bits of one ROM word
    mem.write_text("\n".join(lines) + "\n")
    assert main(["sim", str(out), "--images", "12", "--bulk", "--json"]) == 2
    err = capsys.readouterr().err
    assert f"changed since the build wrote them: {name}" in err and "Traceback" not in err
    # Even with its digest forged to match, the file is not what the checkpoint packs to.
    manifest["sha256"][name] = hashlib.sha256(mem.read_bytes()).hexdigest()
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    assert main(["sim", str(out), "--images", "12", "--bulk", "--json"]) == 2
    err = capsys.readouterr().err
    assert "weight memories differ from the checkpoint's weights" in err and f"{name} (line 1)" in err
    assert not (out / "sim_build").exists() or not any((out / "sim_build").glob("bulk*"))  # refused before simulating


def test_folding_that_cannot_fit_is_refused_with_one_that_would(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    ck = tmp_path / "sfc.pt"
    random_checkpoint("sfc", widths=[256, 64, 32], planes=[6, 7], dataset="fashion-mnist").save(ck)
    unrolled = {"pixels_per_beat": 784, "layers": {"dense0": {"pe": 256, "simd": 1568},
                                                   "dense1": {"pe": 64, "simd": 256},
                                                   "dense2": {"pe": 32, "simd": 64}, "output": {"pe": 10, "simd": 32}}}
    (tmp_path / "f.json").write_text(json.dumps(unrolled))
    assert build(ck, tmp_path / "x", "--folding", str(tmp_path / "f.json")) == 2
    err = capsys.readouterr().err
    assert "the design does not fit pynq-z2: the estimate for this folding" in err
    suggested = json.loads(err[err.index('{"pixels_per_beat"'):err.index(" — save it")])
    (tmp_path / "g.json").write_text(json.dumps(suggested))
    assert build(ck, tmp_path / "y", "--folding", str(tmp_path / "g.json")) == 0
    assert not (tmp_path / "x").exists()


def test_pipeline_spacing_is_part_of_the_folding(tiny: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    folding = {"pixels_per_beat": 7, "popcount_levels_per_stage": 1,
               "layers": {"dense0": {"pe": 5, "simd": 100}, "dense1": {"pe": 3, "simd": 10},
                          "dense2": {"pe": 2, "simd": 13}, "output": {"pe": 4, "simd": 7}}}
    (tmp_path / "one.json").write_text(json.dumps(folding))
    (tmp_path / "two.json").write_text(json.dumps({**folding, "popcount_levels_per_stage": 2}))
    assert build(tiny, tmp_path / "one", "--folding", str(tmp_path / "one.json"), "--no-synth") == 0
    assert build(tiny, tmp_path / "two", "--folding", str(tmp_path / "two.json"), "--no-synth") == 0
    one = json.loads((tmp_path / "one" / "manifest.json").read_text())
    two = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert one["folding"]["popcount_levels_per_stage"] == 1
    # A register every adder level instead of every two: deeper pipelines, same interval.
    assert one["cycles"]["latency"] > two["cycles"]["latency"]
    assert one["cycles"]["initiation_interval"] == two["cycles"]["initiation_interval"]
    for bad in (-1, 17, "2", True, 1.5):
        (tmp_path / "bad.json").write_text(json.dumps({**folding, "popcount_levels_per_stage": bad}))
        assert build(tiny, tmp_path / "bad", "--folding", str(tmp_path / "bad.json"), "--no-synth") == 2
        err = capsys.readouterr().err
        assert "popcount_levels_per_stage must be an integer in 0..16" in err and err.count("\n") <= 2, err
        assert not (tmp_path / "bad").exists()


def test_slice_multiplexers_are_part_of_the_folding(tiny: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    folding = {"pixels_per_beat": 7, "layers": {"dense0": {"pe": 5, "simd": 100}, "dense1": {"pe": 3, "simd": 10},
                                                "dense2": {"pe": 2, "simd": 13}, "output": {"pe": 4, "simd": 7}}}
    (tmp_path / "rotate.json").write_text(json.dumps({**folding, "mux_folds": 1}))
    assert build(tiny, tmp_path / "rotate", "--folding", str(tmp_path / "rotate.json"), "--no-synth") == 0
    (tmp_path / "plain.json").write_text(json.dumps(folding))
    assert build(tiny, tmp_path / "plain", "--folding", str(tmp_path / "plain.json"), "--no-synth") == 0
    rotate = json.loads((tmp_path / "rotate" / "manifest.json").read_text())
    plain = json.loads((tmp_path / "plain" / "manifest.json").read_text())
    assert rotate["folding"]["mux_folds"] == 1 and plain["folding"]["mux_folds"] == 8  # pynq-z2: xc7's choice
    # Rotating every register-held vector instead of slicing it: more LUTs, no cycle moves.
    assert rotate["resources"]["estimate"]["lut"] > plain["resources"]["estimate"]["lut"]
    assert rotate["cycles"] == plain["cycles"]
    for bad in (0, 65, "8", True, 2.5):
        (tmp_path / "bad.json").write_text(json.dumps({**folding, "mux_folds": bad}))
        assert build(tiny, tmp_path / "bad", "--folding", str(tmp_path / "bad.json"), "--no-synth") == 2
        err = capsys.readouterr().err
        assert "mux_folds must be an integer in 1..64" in err and err.count("\n") <= 2, err
        assert not (tmp_path / "bad").exists()
