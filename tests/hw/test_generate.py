"""Generated bundle: determinism, file list, .mem contents, Verilator lint and a Verilator run."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hwsim import chain_model, random_chain_spec, random_spec

from bnn2fpga import reference
from bnn2fpga.backend.lowering import to_spec
from bnn2fpga.hw.generate import VERILATOR_WAIVERS, generate, manifest_entries, render_template
from bnn2fpga.hw.rom import mem_filename, rom_is_block, weight_words
from bnn2fpga.hw.timing import frame_times, predict
from bnn2fpga.tools import find_verilator
from tests.strategies import branch_graph

HERE = Path(__file__).parent


def _spec(seed: int = 5):
    return random_spec(seed, name="gen", channels=3, pixels=24, planes=(5, 6, 7), ppb=4,
                       widths=[20, 13, 10], folds=[(4, 27), (5, 6), (3, 7)])


def _deep_spec():
    # fc0 is fully parallel (one-word ROMs -> constants, no .mem files), fc1 fully folded.
    return random_spec(11, name="deep", channels=1, pixels=8, planes=(0, 3, 6, 7), ppb=8,
                       widths=[11, 7, 13, 3], folds=[(11, 32), (1, 1), (13, 7), (3, 13)],
                       levels_per_stage=1)


def _block_spec():
    # fc0's ROMs (240 words x 16 bits) go to block RAM: two-cycle read with the address fetched ahead.
    return random_spec(13, name="blk", channels=1, pixels=96, planes=(6, 7), ppb=8,
                       widths=[40, 9, 10], folds=[(2, 16), (3, 8), (2, 9)])


CONV_H, CONV_W = 7, 6


def _conv_spec():
    # Window (pad bit 1), conv with an output queue, pool, unpadded window, conv, flatten, output;
    # conv0's ROM is one word per lane (constant), conv2's has 3 words.
    return random_chain_spec(17, name="cnv", height=CONV_H, width=CONV_W, channels=3, planes=(6, 7),
                             stages=[("conv", 5, 3, 1, 1, 5, 54), ("pool", 2), ("conv", 6, 2, 0, 0, 2, 20),
                                     ("output", 4, 2, 3)])


def _branch():
    # A stem conv, a branch of a 3x3 conv ending in a nested branch, a skip and a 1x1 conv, a pool,
    # a dense layer and the output (tests/strategies.py).
    graph, folding = branch_graph(23, height=CONV_H, width=CONV_W, channels=3, planes=(6, 7), nested=True)
    return graph, to_spec(graph, folding)


def _branch_spec():
    return _branch()[1]


def _write(bundle: dict[str, str | bytes], folder: Path) -> None:
    for name, content in bundle.items():
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def test_bundle_is_deterministic_and_listed():
    a, b = generate(_spec()), generate(_spec())  # two independent but identical specs
    assert a == b
    entries = manifest_entries(_spec())
    assert list(a) == [*entries["sources"], *entries["memories"]]
    assert entries["top"] == "gen"
    assert len(entries["memories"]) == 4 + 5 + 3
    assert "/" not in "".join(a["gen_core.v"].splitlines()[1:])  # no absolute source paths


def test_mem_files_hold_the_weight_words():
    spec = _spec()
    bundle = generate(spec)
    for layer in spec.layers:
        for p, words in enumerate(weight_words(layer)):
            lines = bundle[mem_filename("gen", layer.name, p)].splitlines()
            assert [int(line, 16) for line in lines] == words
            assert {len(line) for line in lines} == {-(-layer.simd // 4)}


def test_rom_instances_name_their_init_files():
    spec = _spec()
    core = generate(spec)["gen_core.v"]
    files = sorted(re.findall(r'\.INIT_FILE\("([^"]+)"\)', core))
    assert files == sorted(manifest_entries(spec)["memories"])


def test_templates_are_strict():
    with pytest.raises(Exception, match="undefined"):
        render_template("top.v.j2", top="x")


def _verilator(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    tool = find_verilator()
    return subprocess.run([str(tool.binary), *args], cwd=cwd, env=tool.env(), capture_output=True,
                          text=True, timeout=600)


def test_block_spec_has_block_rom():
    assert rom_is_block(_block_spec().layers[0].cycles, _block_spec().layers[0].simd)


@pytest.mark.parametrize("make_spec", [_spec, _deep_spec, _block_spec, _conv_spec, _branch_spec],
                         ids=["gen", "deep", "block", "conv", "branch"])
def test_verilator_lint_clean(tmp_path: Path, make_spec):
    spec = make_spec()
    _write(generate(spec), tmp_path)
    (tmp_path / "waivers.vlt").write_text(VERILATOR_WAIVERS)
    entries = manifest_entries(spec)
    result = _verilator(["--lint-only", "-Wall", "-Wno-WIDTH", "--top-module", spec.name, "waivers.vlt",
                         *entries["sources"]], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "%Warning" not in result.stderr and "%Error" not in result.stderr, result.stderr


def test_templates_lint_clean_without_waivers(tmp_path: Path):
    # The hand-written parts must be -Wall clean on their own (the waivers only cover the core).
    _write(generate(_spec()), tmp_path)
    stub = ("module gen_core(input wire clk, input wire rst, input wire [32:0] sink__payload,\n"
            "  input wire sink__valid, output wire sink__ready, output wire [32:0] source__payload,\n"
            "  output wire source__valid, input wire source__ready);\n"
            "  gen_rom #(.WIDTH(8), .DEPTH(5), .ADDR_WIDTH(3), .INIT_FILE(\"gen_fc0_pe0.mem\")) rom (\n"
            "    .clk(clk), .addr(sink__payload[2:0]), .data(source__payload[7:0]));\n"
            "  assign source__payload[32:8] = sink__payload[32:8] ^ {24'd0, rst};\n"
            "  assign sink__ready = source__ready;\n"
            "  assign source__valid = sink__valid;\nendmodule\n")
    (tmp_path / "stub.v").write_text(stub)
    (tmp_path / "stub.vlt").write_text('`verilator_config\nlint_off -file "*stub.v"\n')
    result = _verilator(["--lint-only", "-Wall", "--top-module", "gen", "stub.vlt", "gen.v", "gen_rom.v",
                         "stub.v"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "%Warning" not in result.stderr, result.stderr


def _build_and_run(tmp_path: Path, spec, frames: list[np.ndarray], valid: int, ready: int,
                   mem_dir: Path | None, packet_ends: set[int]) -> list[list[int]]:
    """Run ``frames`` through the generated top, ``tlast`` on the last beat of each frame in ``packet_ends``."""
    bundle = generate(spec)
    build = tmp_path / "build"
    build.mkdir()
    _write(bundle, mem_dir or build)
    for name in manifest_entries(spec)["sources"]:
        (build / name).write_text(bundle[name])
    defines = [f'-DBNN2FPGA_MEM_DIR="{mem_dir}"'] if mem_dir else []
    result = _verilator(["--cc", "--exe", "--build", "-j", "2", "-Wno-WIDTH", "--prefix", "Vtop",
                         "--top-module", spec.name, *defines, "-o", "Vtop",
                         *manifest_entries(spec)["sources"], str(HERE / "verilator_tb.cpp")], build)
    assert result.returncode == 0, result.stderr[-3000:]
    ppb = spec.pixels_per_beat
    stim = build / "stim.hex"
    last_beat = spec.samples_per_frame - ppb
    stim.write_text("".join(f"{int.from_bytes(bytes(f[b:b + ppb]), 'little'):x} "
                            f"{int(n in packet_ends and b == last_beat)}\n"
                            for n, f in enumerate(frames) for b in range(0, spec.samples_per_frame, ppb)))
    n_out = len(frames) * spec.classes
    run = subprocess.run([str(build / "obj_dir" / "Vtop"), str(stim), str(n_out), str(valid), str(ready),
                          "7"], cwd=build, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "readmem" not in run.stdout + run.stderr, run.stderr  # every .mem file was found
    events = [line.split() for line in run.stdout.splitlines()]
    ins = [int(e[1]) for e in events if e[0] == "I"]
    outs = [[int(x) for x in e[1:]] for e in events if e[0] == "O"]
    return [ins, *outs]


def test_constant_roms_get_no_files():
    entries = manifest_entries(_deep_spec())
    # Only fc1 (pe=1, simd=1) has more than one word per ROM.
    assert entries["memories"] == ["deep_fc1_pe0.mem"]
    assert list(generate(_deep_spec()))[3:] == entries["memories"]


@pytest.mark.synth
@pytest.mark.parametrize(("make_spec", "mem_dir"), [(_spec, False), (_deep_spec, True), (_block_spec, False),
                                                  (_conv_spec, False)],
                         ids=["cwd", "mem_dir_deep", "block_rom", "conv"])
def test_verilator_run_bit_exact_and_timed(tmp_path: Path, make_spec, mem_dir: bool):
    """The generated Verilog (ROM instances + .mem files) equals the model and the cycle model."""
    spec = make_spec()
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, size=spec.samples_per_frame, dtype=np.uint8) for _ in range(5)]
    expected = [v for f in frames for v in chain_model(spec, f, CONV_H, CONV_W)]  # dense specs ignore H, W
    mems = tmp_path / "mems" if mem_dir else None
    if mems:
        mems.mkdir()
    packet_ends = {1, 4}  # two packets, of 2 and 3 frames: tlast on the last class of frames 1 and 4 only
    ins, *outs = _build_and_run(tmp_path, spec, frames, 100, 100, mems, packet_ends)
    assert [o[1] for o in outs] == expected
    c = spec.classes
    assert [o[2] for o in outs] == [int(i % c == c - 1 and i // c in packet_ends) for i in range(len(outs))]
    # Timing of the real Verilog, no back-pressure: exactly the model.
    nb, c = spec.input_beats, spec.classes
    first_in = [ins[n * nb] for n in range(len(frames))]
    first_out = [outs[n * c][0] for n in range(len(frames))]
    want_in, want_out = frame_times(spec, len(frames))
    assert [t - first_in[0] for t in first_in] == want_in
    assert [t - first_in[0] for t in first_out] == want_out
    timing = predict(spec)
    assert first_out[0] - first_in[0] == timing.latency
    assert first_out[-1] - first_out[-2] == timing.initiation_interval


@pytest.mark.synth
def test_verilator_run_of_a_branch_bit_exact_and_timed(tmp_path: Path):
    """Fork, path FIFOs, nested branch and join as Verilog: every class popcount equal to reference.py
    on the IR graph, under back-pressure, and every frame's handshakes as the cycle model says."""
    graph, spec = _branch()
    rng = np.random.default_rng(8)
    pixels = rng.integers(0, 256, size=(5, 3, CONV_H, CONV_W), dtype=np.uint8)
    frames = list(pixels.transpose(0, 2, 3, 1).reshape(5, -1))
    expected = reference.run(graph, pixels).popcounts.reshape(-1).tolist()
    (tmp_path / "free").mkdir()
    (tmp_path / "pressed").mkdir()
    ins, *outs = _build_and_run(tmp_path / "free", spec, frames, 100, 100, None, {4})
    assert [o[1] for o in outs] == expected
    nb, c = spec.input_beats, spec.classes
    first_in = [ins[n * nb] for n in range(len(frames))]
    want_in, want_out = frame_times(spec, len(frames))
    assert [t - first_in[0] for t in first_in] == want_in
    assert [outs[n * c][0] - first_in[0] for n in range(len(frames))] == want_out
    _, *pressed = _build_and_run(tmp_path / "pressed", spec, frames, 60, 45, None, {4})
    assert [o[1] for o in pressed] == expected
