"""Property: random architectures (with pruning records holding tensors) go through `info --json`,
and random networks with random foldings through `build --no-synth`, whose manifest the simulators'
reader accepts. Both must never raise, and their JSON must be plain JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bnn2fpga.checkpoint import Checkpoint
from bnn2fpga.cli import main
from bnn2fpga.nn.models import BNN, validate_architecture


@st.composite
def architectures(draw: st.DrawFn) -> dict:
    channels = draw(st.sampled_from([1, 3]))
    size = draw(st.integers(6, 12))
    integer = draw(st.booleans())
    planes = sorted(draw(st.sets(st.integers(0, 7), min_size=1, max_size=8)))
    layers: list[dict] = []
    h = size
    for _ in range(draw(st.integers(0, 2))):
        k = draw(st.sampled_from([1, 3]))
        p = draw(st.integers(0, 1)) if k == 3 else 0
        if h + 2 * p - k + 1 < 1:
            p = 1
        layers.append({"kind": "conv", "out": draw(st.integers(1, 12)), "kernel": k, "padding": p,
                       "pad_bit": draw(st.integers(0, 1))})
        h = h + 2 * p - k + 1
        if h >= 4 and draw(st.booleans()):
            layers.append({"kind": "pool", "size": 2})
            h //= 2
    for _ in range(draw(st.integers(0 if layers else 1, 2))):
        layers.append({"kind": "dense", "out": draw(st.integers(1, 24))})
    layers.append({"kind": "output", "out": draw(st.integers(2, 10))})
    inp = {"channels": channels, "height": size, "width": size, "bits": 8, "planes": planes}
    if integer:
        inp["encoding"] = "integer"
    arch = {"name": "prop", "input": inp, "layers": layers}
    validate_architecture(arch)
    return arch


def _checkpoint(arch: dict, seed: int) -> Checkpoint:
    torch.manual_seed(seed)
    model = BNN(arch)
    model.eval()
    widths = [layer["out"] for layer in arch["layers"] if layer["kind"] in ("conv", "dense")]
    history = [{"method": "flip", "widths_before": widths, "widths_after": widths,
                "p": torch.rand(len(widths)), "flips": {"layer0": torch.randint(0, 3, (4,), dtype=torch.uint8)}}]
    ckpt = Checkpoint.from_model(model, dataset="synthetic", metrics={"test_accuracy": 0.5},
                                 training={"note": torch.tensor([1.5, 2.5])})
    ckpt.pruning = history
    return ckpt


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arch=architectures(), seed=st.integers(0, 1000))
def test_info_json_of_any_architecture(arch: dict, seed: int, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / f"m{seed}.pt"
    _checkpoint(arch, seed).save(path, overwrite=True)
    capsys.readouterr()
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert len(info["layers"]) == len(arch["layers"]) and info["binops"] > 0


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arch=architectures(), seed=st.integers(0, 1000), fps=st.sampled_from([1000, 20000, 300000]))
def test_manifest_of_any_network_and_folding(arch: dict, seed: int, fps: int, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from bnn2fpga.contract.manifest import load_manifest

    path = tmp_path / f"m{seed}.pt"
    _checkpoint(arch, seed).save(path, overwrite=True)
    out = tmp_path / f"b{seed}-{fps}"
    code = main(["build", str(path), "--board", "pynq-z2", "--no-synth", "--quiet", "--target-fps", str(fps),
                 "--out", str(out), "--force"])
    err = capsys.readouterr().err
    if code == 2:  # a rate this network cannot reach is refused, in one line
        assert "--target-fps" in err and "Traceback" not in err
        return
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert load_manifest(out) is not None
    assert [layer["name"] for layer in manifest["layers"]] and manifest["cycles"]["initiation_interval"] > 0
