"""BNN-PYNQ parameter folders: import(pack(net)) is net, bit for bit, and the word layout is the documented one."""

from __future__ import annotations

import filecmp
from pathlib import Path

import numpy as np
import pytest
import torch

from bnn2fpga.checkpoint import Checkpoint
from bnn2fpga.cli import main
from bnn2fpga.interop.bnn_pynq import TOPOLOGIES, BnnPynqError, read_folder, write_folder
from bnn2fpga.ir.pipeline import HARDWARE_STEPS, lower
from bnn2fpga.nn.models import BNN
from bnn2fpga.reference import run


def random_network(topology: str, seed: int) -> Checkpoint:
    """A network of the topology's shape with random weights and thresholds: about a third of the
    channels compare downward (negative batch-norm scale), a few never or always fire."""
    arch = TOPOLOGIES[topology].architecture(10)
    torch.manual_seed(seed)
    model = BNN(arch)
    model.eval()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for m in model.modules():
            if hasattr(m, "weight") and m.weight is not None and m.weight.dim() > 1:
                m.weight.uniform_(-1, 1)
        for bn in norms[:-1]:
            c = bn.num_features
            bn.weight.copy_(torch.where(torch.rand(c) < 0.35, -1.0, 1.0) * (0.5 + torch.rand(c)))
            bn.running_mean.copy_(torch.randn(c) * 6)
            bn.running_var.copy_(0.5 + torch.rand(c) * 4)
            bn.bias.copy_(torch.randn(c) * 0.3)
            bn.bias[:2] = torch.tensor([50.0, -50.0])  # always / never fires
            bn.weight[:2] = 1e-3
        out = norms[-1]  # BNN-PYNQ's last layer emits popcounts: one increasing score for every class
        out.weight.fill_(1.0)
        out.bias.zero_()
        out.running_mean.zero_()
        out.running_var.fill_(1.0)
    return Checkpoint.from_model(model, dataset=TOPOLOGIES[topology].dataset, metrics={"test_accuracy": None})


def _hardware(ckpt: Checkpoint) -> list[tuple[np.ndarray, np.ndarray | None]]:
    graph = lower(ckpt, HARDWARE_STEPS)
    return [(np.asarray(layer.weights), getattr(layer, "thresholds", None)) for layer in graph.layers
            if hasattr(layer, "weights")]


@pytest.mark.parametrize("topology", ["lfc", "cnv"])
def test_import_of_pack_is_the_network(topology: str, tmp_path: Path) -> None:
    net = random_network(topology, seed=3)
    write_folder(net, tmp_path / "a", TOPOLOGIES[topology])
    back = read_folder(tmp_path / "a", TOPOLOGIES[topology])
    for (w0, t0), (w1, t1) in zip(_hardware(net), _hardware(back), strict=True):
        assert np.array_equal(w0, w1)
        assert (t0 is None and t1 is None) or np.array_equal(t0, t1)
    write_folder(back, tmp_path / "b", TOPOLOGIES[topology])
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "b").iterdir())
    assert all(filecmp.cmp(tmp_path / "a" / f, tmp_path / "b" / f, shallow=False) for f in files)
    rng = np.random.default_rng(0)
    c, h, w = TOPOLOGIES[topology].shape
    images = rng.integers(0, 256, size=(16, c, h, w), dtype=np.uint8)
    images[0] = 255  # the input extremes reach the always/never channels and the threshold edges
    images[1] = 0
    a, b = run(lower(net), images), run(lower(back), images)
    assert np.array_equal(a.popcounts, b.popcounts) and np.array_equal(a.predictions, b.predictions)


def test_word_layout_is_finnthesizer_s(tmp_path: Path) -> None:
    """Neuron n on PE n mod PE, its SIMD groups in order, least significant bit first, 1 = +1;
    padding weights 1; thresholds popcount > T; padded neurons at the int16 maximum."""
    net = random_network("lfc", seed=5)
    tmp_path = tmp_path / "params"
    write_folder(net, tmp_path, TOPOLOGIES["lfc"])
    graph = lower(net, HARDWARE_STEPS)
    first = graph.layers[0]
    bits = np.asarray(first.weights)  # (1024, 784), hardware form: popcount >= T
    simd, pe = 64, 32
    words = np.fromfile(tmp_path / "0-5-weights.bin", dtype="<u8")
    assert words.size == (1024 // pe) * (832 // simd)
    groups = 832 // simd
    for n_fold, group, s in [(0, 0, 0), (0, 0, 63), (3, 2, 17), (31, 12, 15), (31, 12, 16)]:
        neuron, column = 5 + n_fold * pe, group * simd + s
        expected = bits[neuron, column] if column < 784 else 1
        assert (int(words[n_fold * groups + group]) >> s) & 1 == expected
    t = np.fromfile(tmp_path / "0-5-thres.bin", dtype="<i8")
    assert np.array_equal(t, np.asarray(first.thresholds)[5::pe] - 1)
    last = np.fromfile(tmp_path / "3-0-weights.bin", dtype="<u8")  # 10 classes padded to 64 rows of ones
    assert last.size == (64 // 16) * (1024 // 8) and (last[1 * 128:] == 0xFF).all()
    assert not (tmp_path / "3-0-thres.bin").exists()


def test_refusals_name_the_problem(tmp_path: Path) -> None:
    net = random_network("lfc", seed=1)
    write_folder(net, tmp_path / "ok", TOPOLOGIES["lfc"])
    with pytest.raises(BnnPynqError, match="not a cnv folder"):
        read_folder(tmp_path / "ok", TOPOLOGIES["cnv"])
    (tmp_path / "ok" / "2-7-thres.bin").rename(tmp_path / "moved.bin")
    with pytest.raises(BnnPynqError, match="2-7-thres.bin: missing"):
        read_folder(tmp_path / "ok", TOPOLOGIES["lfc"])
    (tmp_path / "moved.bin").rename(tmp_path / "ok" / "2-7-thres.bin")
    (tmp_path / "ok" / "1-3-weights.bin").write_bytes(b"\0" * 8)
    with pytest.raises(BnnPynqError, match="8 bytes, expected 4096"):
        read_folder(tmp_path / "ok", TOPOLOGIES["lfc"])
    with pytest.raises(BnnPynqError, match="not a directory"):
        read_folder(tmp_path / "nothing", TOPOLOGIES["lfc"])
    config = tmp_path / "config.h"
    config.write_text("".join(f"#define L{i}_SIMD 8\n#define L{i}_PE {0 if i == 0 else 8}\n" for i in range(4)))
    with pytest.raises(BnnPynqError, match="L0_SIMD and L0_PE must be at least 1, not 8 and 0"):
        read_folder(tmp_path / "ok", TOPOLOGIES["lfc"], config=config)
    from bnn2fpga.nn.models import make_architecture

    small = Checkpoint.from_model(BNN(make_architecture("lfc", planes=[7], width_multiplier=0.5)),
                                  dataset="fashion-mnist", metrics={})
    with pytest.raises(BnnPynqError, match="fixed layers"):
        write_folder(small, tmp_path / "small", TOPOLOGIES["lfc"])
    assert not (tmp_path / "small").exists()


def test_cli_import_and_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    net = random_network("lfc", seed=2)
    net.save(tmp_path / "net.pt")
    folder = tmp_path / "params"
    assert main(["export", str(tmp_path / "net.pt"), "--format", "bnn-pynq", "--topology", "lfc",
                 "--out", str(folder)]) == 0
    (folder / "classes.txt").write_text("\n".join(f"c{i}" for i in range(10)) + "\n")
    assert main(["import", str(folder), "--out", str(tmp_path / "x.pt")]) == 2
    assert "needs --topology" in capsys.readouterr().err
    assert main(["import", str(folder), "--topology", "lfc", "--out", str(tmp_path / "x.pt")]) == 0
    from bnn2fpga.checkpoint import load

    back = load(tmp_path / "x.pt")
    assert back.training["imported_from"]["class_names"][3] == "c3"
    assert main(["export", str(tmp_path / "net.pt"), "--format", "bnn-pynq", "--topology", "lfc",
                 "--out", str(folder)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "x.pt"), "--format", "bnn-pynq", "--topology", "cnv",
                 "--out", str(tmp_path / "wrong")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "fixed input" in err and not (tmp_path / "wrong").exists()
