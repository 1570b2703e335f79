"""Branched networks a user trains: the architecture's concat layer, its PyTorch module, the import into
the IR (exact on Fashion-MNIST and random pixels), and one clear refusal from every step that handles
chains only."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from bnn2fpga import data, reference
from bnn2fpga.backend.folding import Folding
from bnn2fpga.backend.hls import HlsUnsupported, check_structure
from bnn2fpga.backend.lowering import to_spec
from bnn2fpga.checkpoint import load
from bnn2fpga.interop.qonnx_export import ExportError, export_qonnx
from bnn2fpga.ir.graph import BinaryConv, BinaryDense, Concat, Output, leaves
from bnn2fpga.ir.pipeline import HARDWARE_STEPS, lower
from bnn2fpga.nn.models import (
    BNN,
    ArchitectureError,
    binops,
    hidden_widths,
    layer_shapes,
    make_architecture,
    validate_architecture,
    walk_layers,
    weight_bits,
)
from bnn2fpga.prune.flip import load_inputs
from bnn2fpga.summary import summarize
from tests.conftest import random_checkpoint, random_pixels


def _conv(n: int, k: int, p: int) -> dict:
    return {"kind": "conv", "out": n, "kernel": k, "padding": p, "pad_bit": 1}


def test_zoo_inc_counts_every_layer_on_its_paths() -> None:
    arch = make_architecture("inc", width_multiplier=0.5)
    convs = [layer for layer in walk_layers(arch["layers"]) if layer["kind"] == "conv"]
    assert [c["out"] for c in convs] == [16, 16, 8, 32]  # the stem, then the paths depth first
    rows = layer_shapes(arch)
    assert len(rows) == len(walk_layers(arch["layers"]))
    concat0 = rows[2]
    assert (concat0["in_c"], concat0["out_c"]) == (16, 16 + 8 + 16)  # 3x3 path, 1x1 path, the skip
    expected = sum(r["out_c"] * r["fan_in"] for r in rows)
    assert weight_bits(arch) == expected and expected > 0
    assert binops(arch) == sum(r["out_c"] * r["fan_in"] * r["out_h"] * r["out_w"] for r in rows)
    model = BNN(arch).eval()
    assert model(torch.zeros(2, 1, 28, 28, dtype=torch.uint8)).shape == (2, 10)


def test_branched_checkpoint_imports_exactly() -> None:
    """The IR of a branched checkpoint (random batch-norms: negative scales, ties) scores every image as
    the PyTorch model does, before and after the hardware passes."""
    ckpt = random_checkpoint("inc", seed=3, width_multiplier=0.5)
    graph = lower(ckpt)
    assert [type(layer).__name__ for layer in graph.layers].count("Concat") == 2
    images = np.concatenate([data.load("fashion-mnist").test.images[:400], random_pixels(100, seed=1)])
    model = ckpt.model().eval()
    with torch.no_grad():
        dots = model.output_dots(torch.from_numpy(images)).numpy()
        scores = model(torch.from_numpy(images)).numpy()
    got = reference.run(graph, images)
    assert np.array_equal(2 * got.popcounts - graph.output.mw, dots.astype(np.int64))
    assert np.array_equal(got.predictions, scores.argmax(axis=1))
    hardware = lower(ckpt, HARDWARE_STEPS)
    assert np.array_equal(reference.run(hardware, images).popcounts, got.popcounts)


def test_checkpoint_round_trip_keeps_the_branches(tmp_path: Path) -> None:
    ckpt = random_checkpoint("inc", seed=4, width_multiplier=0.25)
    ckpt.save(tmp_path / "inc.pt")
    again = load(tmp_path / "inc.pt")
    pixels = random_pixels(20, seed=5)
    assert np.array_equal(reference.run(lower(again), pixels).popcounts, reference.run(lower(ckpt), pixels).popcounts)
    info = summarize(again)
    assert [row["kind"] for row in info["layers"]].count("concat") == 2
    assert info["weight_bits"] == sum(row["weight_bits"] for row in info["layers"])


@pytest.mark.parametrize(("change", "message"), [
    (lambda layers: layers[2].update(paths=[[_conv(4, 3, 1)]]), "at least two paths"),
    (lambda layers: layers[2].update(paths=[[_conv(4, 3, 0)], []]), "paths end in maps of sizes 12x12, 14x14"),
    (lambda layers: layers[2].update(paths=[[{"kind": "dense", "out": 3}], []]), "put dense layers after the concat"),
    (lambda layers: layers[2].update(paths="conv"), "'paths' must be a list"),
    (lambda layers: layers[2].update(paths=[[_conv(4, 3, 1)], [7]]), "must be an object with a 'kind'"),
    (lambda layers: layers[2]["paths"][0][0].update(stride=2), "unsupported field 'stride'"),
])
def test_architecture_refuses_a_bad_concat(change, message: str) -> None:  # noqa: ANN001
    arch = copy.deepcopy(make_architecture("inc", width_multiplier=0.25))
    change(arch["layers"])
    with pytest.raises(ArchitectureError, match=message):
        validate_architecture(arch)


def test_chain_only_steps_refuse_a_branched_network(tmp_path: Path) -> None:
    ckpt = random_checkpoint("inc", seed=6, width_multiplier=0.25, dataset="fashion-mnist")
    path = tmp_path / "inc.pt"
    ckpt.save(path)
    with pytest.raises(ArchitectureError, match="branches .* pruning and width changes works on chains"):
        hidden_widths(ckpt.architecture)
    with pytest.raises(ArchitectureError, match="flip pruning works on chains"):
        load_inputs(path, None, None)  # before any image is read or flip counted
    with pytest.raises(ExportError, match="layer concat0: this network branches"):
        export_qonnx(ckpt, tmp_path / "inc.onnx")
    assert not (tmp_path / "inc.onnx").exists()
    graph = lower(ckpt, HARDWARE_STEPS)
    folds = tuple((layer.name, layer.mh, layer.mw) for layer in _weight_layers(graph))  # fully parallel: quick
    spec = to_spec(graph, Folding(1, folds))
    with pytest.raises(HlsUnsupported, match="layer concat0: a branch .* --backend rtl"):
        check_structure(spec)


def _weight_layers(graph):  # noqa: ANN001, ANN202
    return [layer for layer in leaves(graph.layers) if isinstance(layer, BinaryConv | BinaryDense | Output)]


def test_concat_names_follow_the_layers() -> None:
    graph = lower(random_checkpoint("inc", seed=7, width_multiplier=0.25))
    concat = graph.layer("concat0")
    assert isinstance(concat, Concat)
    assert [[layer.name for layer in path] for path in concat.paths] == [["conv1"], ["conv2"], []]
