from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import torch

from bnn2fpga import checkpoint
from bnn2fpga.checkpoint import CheckpointError
from bnn2fpga.cli import main
from tests.conftest import random_checkpoint


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "good.pt"
    random_checkpoint("sfc", widths=[7, 5, 3]).save(path)
    return path


def test_roundtrip_preserves_model(good: Path) -> None:
    ck = checkpoint.load(good)
    assert ck.architecture["layers"][0]["out"] == 7
    x = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    m1 = ck.model()
    m2 = checkpoint.load(good).model()
    assert torch.equal(m1(x), m2(x))


def test_save_refuses_to_overwrite(good: Path) -> None:
    with pytest.raises(CheckpointError, match="already exists; choose another --out or pass --force"):
        random_checkpoint("sfc", widths=[7, 5, 3]).save(good)


def rewrite(path: Path, mutate) -> Path:
    raw = torch.load(path, weights_only=True)
    mutate(raw)
    torch.save(raw, path)
    return path


def test_truncated_file(good: Path) -> None:
    good.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        checkpoint.load(good)


def test_wrong_format_tag(good: Path) -> None:
    rewrite(good, lambda r: r.update(format="finn-onnx"))
    with pytest.raises(CheckpointError, match="field 'format' is 'finn-onnx', expected 'bnn2fpga-checkpoint'"):
        checkpoint.load(good)


def test_wrong_version(good: Path) -> None:
    rewrite(good, lambda r: r.update(version=7))
    with pytest.raises(CheckpointError, match="field 'version' is 7; this bnn2fpga reads version 1"):
        checkpoint.load(good)


@pytest.mark.parametrize("key", ["architecture", "state_dict", "input", "pruning", "metrics", "training"])
def test_missing_key(good: Path, key: str) -> None:
    rewrite(good, lambda r: r.pop(key))
    with pytest.raises(CheckpointError, match=f"missing field '{key}'"):
        checkpoint.load(good)


def test_wrong_tensor_shape(good: Path) -> None:
    def mutate(r: dict) -> None:
        r["state_dict"]["blocks.1.1.weight"] = torch.zeros(5, 6)
    rewrite(good, mutate)
    with pytest.raises(CheckpointError, match=r"state_dict\['blocks.1.1.weight'\] has shape \(5, 6\), "
                                              r"the architecture needs \(5, 7\)"):
        checkpoint.load(good)


def test_missing_tensor(good: Path) -> None:
    rewrite(good, lambda r: r["state_dict"].pop("blocks.0.2.running_var"))
    with pytest.raises(CheckpointError, match=r"state_dict is missing blocks.0.2.running_var"):
        checkpoint.load(good)


def test_input_spec_must_match_architecture(good: Path) -> None:
    rewrite(good, lambda r: r["input"].update(planes=[7]))
    with pytest.raises(CheckpointError, match=r"input.planes is \[7\] but the architecture says"):
        checkpoint.load(good)


@pytest.mark.parametrize(("table", "message"), [
    ([list(range(255))], r"table\[0\] must list the code of every pixel value 0..255"),
    ([list(range(256)), list(range(256))], r"one row per colour channel \(1\), not 2 rows"),
    ([[300] * 256], r"table\[0\] holds 300; codes are integers in 0..255"),
])
def test_a_bad_input_table_is_one_clear_error(good: Path, table: list, message: str) -> None:
    rewrite(good, lambda r: r["architecture"]["input"].update(table=table))
    with pytest.raises(CheckpointError, match=message):
        checkpoint.load(good)


def test_an_input_table_survives_save_and_load(good: Path, tmp_path: Path) -> None:
    ck = checkpoint.load(good)
    arch = copy.deepcopy(ck.architecture)
    arch["input"]["table"] = [[255 - v for v in range(256)]]
    path = tmp_path / "t.pt"
    checkpoint.Checkpoint(architecture=arch, state_dict=ck.state_dict, dataset=ck.dataset).save(path)
    x = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    tabled, plain = checkpoint.load(path).model(), ck.model()
    assert torch.equal(tabled(x), plain(255 - x))


def test_bare_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "bare.pt"
    torch.save({"w": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="bare state dict"):
        checkpoint.load(path)


class Exploit:
    def __reduce__(self):  # a pickle that runs code when unpickled
        return (os.system, ("touch pwned",))


def test_pickle_carrying_code_is_refused_without_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"format": "bnn2fpga-checkpoint", "payload": Exploit()}, path)
    with pytest.raises(CheckpointError, match="refused to load: the file carries Python objects or code") as e:
        checkpoint.load(path)
    assert not (tmp_path / "pwned").exists()
    assert "\x1b" not in str(e.value)  # PyTorch's terminal colours do not reach the user's one-line error


def test_cli_answers_bad_checkpoint_in_one_line(good: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good.write_bytes(b"not a checkpoint at all")
    assert main(["info", str(good)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "Traceback" not in err and len(err.splitlines()) <= 2
