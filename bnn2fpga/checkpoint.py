"""Checkpoint format v1 (docs/checkpoint.md): save, and load with full validation.

A checkpoint is a ``torch.save``d dict of plain values and tensors, loaded only with
``weights_only=True`` (no code runs on load). Schema, all keys required:

- ``format``: ``"bnn2fpga-checkpoint"``; ``version``: ``1``
- ``architecture``: see :mod:`bnn2fpga.nn.models` (``input`` + ``layers``; ``name`` optional)
- ``state_dict``: tensors of the :class:`~bnn2fpga.nn.models.BNN` built from the architecture
- ``input``: ``{"shape": [C, H, W], "bits": 8, "planes": [...], "encoding": "planes"|"integer", "dataset": str}``
  (``encoding`` may be absent in files written before it existed: it then means ``planes``)
- ``pruning``: list of records ``{"method": str, "widths_before": [...], "widths_after": [...], ...}``
- ``metrics``: ``{"test_accuracy": float | None, ...}``
- ``training``: the training recipe (``epochs``, ``seed``, ...), or ``{}``
"""

from __future__ import annotations

import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import UserError
from .nn.models import BNN, ArchitectureError, input_encoding, validate_architecture

FORMAT = "bnn2fpga-checkpoint"
VERSION = 1


class CheckpointError(UserError, ValueError):
    """A checkpoint could not be used; the message names the file, the field and the fix."""


@dataclass
class Checkpoint:
    architecture: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    dataset: str = "unknown"
    pruning: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_model(cls, model: BNN, **kwargs: Any) -> Checkpoint:
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return cls(architecture=model.arch, state_dict=state, **kwargs)

    def model(self) -> BNN:
        model = BNN(self.architecture)
        model.load_state_dict(self.state_dict)
        model.eval()
        return model

    @property
    def input(self) -> dict[str, Any]:
        inp = self.architecture["input"]
        return {"shape": [inp["channels"], inp["height"], inp["width"]], "bits": inp["bits"],
                "planes": list(inp["planes"]), "encoding": input_encoding(self.architecture),
                "dataset": self.dataset}

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "architecture": self.architecture,
                "state_dict": self.state_dict, "input": self.input, "pruning": self.pruning,
                "metrics": self.metrics, "training": self.training}

    def save(self, path: Path | str, *, overwrite: bool = False) -> None:
        path = Path(path)
        if path.exists() and not overwrite:
            raise CheckpointError(f"{path} already exists; choose another --out or pass --force to replace it")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            torch.save(self.to_dict(), tmp)
            tmp.replace(path)  # never leave a half-written checkpoint under the user's name
        finally:
            tmp.unlink(missing_ok=True)  # nor a temporary file when the disk filled up half-way


def _require(d: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in d:
        raise CheckpointError(f"{where}: missing field '{key}'")
    value = d[key]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise CheckpointError(f"{where}: field '{key}' must be {names}, not {type(value).__name__}")
    return value


def load(path: Path | str) -> Checkpoint:
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise CheckpointError(f"{where}: no such file")
    _check_kind(path, where)
    _check_unpacked_size(path, where)
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", str(e)).strip()  # PyTorch colours its message
        first = text.splitlines()[0] if text else "unsupported content"
        if "weights_only" in str(e) or "Unsupported global" in str(e) or "Weights only load failed" in str(e):
            raise CheckpointError(f"{where}: refused to load: the file carries Python objects or code, not just "
                                  f"weights ({first[:160]}). Re-save it with bnn2fpga, or export a plain state dict "
                                  "and rebuild the checkpoint") from None
        raise CheckpointError(f"{where}: not a readable checkpoint ({first[:160]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{where}: not a readable PyTorch file, truncated or corrupt ({msg[:160]}); "
                              "re-save or re-download it") from None
    return validate(raw, where)


#: The most a checkpoint may unpack to: far beyond any binary network (256 M weights as float32), and a
#: bound on what a small corrupt or hostile file can make the loader allocate.
MAX_UNPACKED_BYTES = 2**30


def _check_kind(path: Path, where: str) -> None:
    """A PyTorch file is a zip archive (``torch.save``) or, from old versions, a pickle: anything else is
    named for what it is, before ``torch.load`` misdiagnoses it as a pickle carrying code."""
    if path.is_dir():
        raise CheckpointError(f"{where}: a directory, not a checkpoint file")
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except OSError as e:
        raise CheckpointError(f"{where}: cannot read it ({e.strerror})") from None
    if head[:2] == b"PK" or head[:1] == b"\x80" or not head:
        return  # zip or pickle (an empty file: torch.load's own message says so)
    if path.suffix.lower() == ".onnx" or head[:1] == b"\x08":  # ONNX's protobuf opens with ir_version, field 1
        raise CheckpointError(f"{where}: an ONNX model, not a bnn2fpga checkpoint; convert it with "
                              f"bnn2fpga import {path} --out model.pt")
    raise CheckpointError(f"{where}: not a PyTorch checkpoint (neither a zip archive nor a pickle); give a file "
                          "written by bnn2fpga train, prune or import")


def _check_unpacked_size(path: Path, where: str) -> None:
    try:
        if not zipfile.is_zipfile(path):
            return  # torch.load says what it is
        with zipfile.ZipFile(path) as archive:
            total = sum(info.file_size for info in archive.infolist())
    except (OSError, zipfile.BadZipFile):
        return
    if total > MAX_UNPACKED_BYTES:
        raise CheckpointError(f"{where}: unpacks to {total / 2**30:.1f} GiB, more than the "
                              f"{MAX_UNPACKED_BYTES // 2**30} GiB a checkpoint may hold; the file is corrupt or not a "
                              "bnn2fpga checkpoint")


def validate(raw: Any, where: str = "checkpoint") -> Checkpoint:
    if not isinstance(raw, dict):
        raise CheckpointError(f"{where}: expected a dict with format '{FORMAT}', found {type(raw).__name__} "
                              "(a bare state dict or model? save it with bnn2fpga train/prune)")
    fmt = raw.get("format")
    if fmt != FORMAT:
        if fmt is None and all(isinstance(v, torch.Tensor) for v in raw.values()):
            raise CheckpointError(f"{where}: this is a bare state dict, not a bnn2fpga checkpoint; it lacks the "
                                  "architecture and input spec. Train with `bnn2fpga train` or wrap it with "
                                  "bnn2fpga.checkpoint.Checkpoint(...).save()")
        raise CheckpointError(f"{where}: field 'format' is {fmt!r}, expected {FORMAT!r}")
    version = raw.get("version")
    if version != VERSION:
        raise CheckpointError(f"{where}: field 'version' is {version!r}; this bnn2fpga reads version {VERSION}")
    arch = _require(raw, "architecture", dict, where)
    try:
        validate_architecture(arch)
    except ArchitectureError as e:
        raise CheckpointError(f"{where}: {e}") from None
    except (KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{where}: malformed field 'architecture' ({type(e).__name__}: {e})") from None
    state = _require(raw, "state_dict", dict, where)
    inp = _require(raw, "input", dict, where)
    pruning = _require(raw, "pruning", list, where)
    metrics = _require(raw, "metrics", dict, where)
    training = _require(raw, "training", dict, where)
    a_in = arch["input"]
    expected_input = {"shape": [a_in["channels"], a_in["height"], a_in["width"]], "bits": a_in["bits"],
                      "planes": list(a_in["planes"])}
    if "encoding" in inp:
        expected_input["encoding"] = input_encoding(arch)
    for key, value in expected_input.items():
        if key not in inp:
            raise CheckpointError(f"{where}: field 'input' is missing '{key}'")
        if (list(inp[key]) if isinstance(value, list) else inp[key]) != value:
            raise CheckpointError(f"{where}: input.{key} is {inp[key]!r} but the architecture says {value!r}")
    for i, record in enumerate(pruning):
        if not isinstance(record, dict) or not isinstance(record.get("method"), str):
            raise CheckpointError(f"{where}: pruning[{i}] must be a dict with a 'method' string")
    for key, value in metrics.items():
        if key.endswith("accuracy") and value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1):
            raise CheckpointError(f"{where}: metrics.{key} must be a fraction in 0..1 or null, not {value!r}")
    bad = next((k for k, v in metrics.items() if isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise CheckpointError(f"{where}: metrics.{bad} holds a tensor; metrics are plain numbers")
    model = BNN(arch)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing:
        raise CheckpointError(f"{where}: state_dict is missing {', '.join(missing[:5])}"
                              f"{' ...' if len(missing) > 5 else ''} for the architecture it declares")
    if extra:
        raise CheckpointError(f"{where}: state_dict has unexpected {', '.join(extra[:5])}"
                              f"{' ...' if len(extra) > 5 else ''}")
    for key, ref in expected.items():
        value = state[key]
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{where}: state_dict['{key}'] must be a tensor, not {type(value).__name__}")
        if tuple(value.shape) != tuple(ref.shape):
            raise CheckpointError(f"{where}: state_dict['{key}'] has shape {tuple(value.shape)}, the architecture "
                                  f"needs {tuple(ref.shape)}")
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(f"{where}: state_dict['{key}'] contains NaN or infinity")
    return Checkpoint(architecture=arch, state_dict=state, dataset=str(inp.get("dataset", "unknown")),
                      pruning=pruning, metrics=metrics, training=training)
