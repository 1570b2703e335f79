"""Datasets as uint8 arrays (N, C, H, W) with int64 labels: IDX (Fashion-MNIST/MNIST), CIFAR-10, synthetic,
and Fashion-MNIST in CIFAR-10's shape (32x32x3) for networks built for CIFAR-10 (FINN's CNV)."""

from __future__ import annotations

import gzip
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UserError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
DATASETS = ("fashion-mnist", "mnist", "cifar10", "fashion-mnist-32rgb", "synthetic")


class DatasetError(UserError):
    """The dataset is missing or malformed; the message says which file and how to fix it."""


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8 (N, C, H, W)
    labels: np.ndarray  # int64 (N,)

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int | None) -> Split:
        return self if n is None else Split(self.images[:n], self.labels[:n])


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    test: Split
    classes: int

    @property
    def shape(self) -> tuple[int, int, int]:
        c, h, w = self.test.images.shape[1:]
        return c, h, w


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DatasetError(f"cannot read {path}: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetError(f"{path} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DatasetError(f"{path} is truncated: header says {tuple(dims)}, found {data.size} bytes")
    return data.reshape(dims)


def _find(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (directory / name).exists():
            return directory / name
    return None


def load_idx(directory: Path | str, name: str = "fashion-mnist") -> Dataset:
    directory = Path(directory)
    stems = {
        "train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
        "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte",
    }
    found = {key: _find(directory, stem) for key, stem in stems.items()}
    missing = [stems[k] + "[.gz]" for k, p in found.items() if p is None]
    if missing:
        hint = ("install it with `sudo apt-get install dataset-fashion-mnist`, or pass --data DIR"
                if name == "fashion-mnist" else "download the IDX files and pass --data DIR")
        raise DatasetError(f"{name} not found in {directory}: missing {', '.join(missing)}; {hint}")
    arrays = {key: _read_idx(path) for key, path in found.items() if path is not None}
    splits = []
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if len(images) != len(labels):
            raise DatasetError(f"{name} {split}: {len(images)} images but {len(labels)} labels")
        splits.append(Split(images[:, None, :, :].copy(), labels.astype(np.int64)))
    return Dataset(name, splits[0], splits[1], classes=10)


def load_cifar10(directory: Path | str) -> Dataset:
    """The python-format batches (``data_batch_1..5``, ``test_batch``), in the folder or its cifar-10-batches-py/."""
    directory = Path(directory)
    if (directory / "cifar-10-batches-py").is_dir():
        directory = directory / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    missing = [n for n in names if not (directory / n).exists()]
    if missing:
        raise DatasetError(f"CIFAR-10 not found in {directory}: missing {', '.join(missing)}; "
                           "download cifar-10-python.tar.gz, unpack it and pass --data DIR")

    def batch(n: str) -> tuple[np.ndarray, np.ndarray]:
        # The official batches are pickles of plain arrays and lists; only trusted files belong here.
        with open(directory / n, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        return (np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32),
                np.asarray(d[b"labels"], dtype=np.int64))

    train = [batch(n) for n in names[:5]]
    test = batch(names[5])
    return Dataset("cifar10", Split(np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train])),
                   Split(*test), classes=10)


def synthetic(n_train: int = 2000, n_test: int = 500, *, channels: int = 1, size: int = 28,
              classes: int = 10, seed: int = 0) -> Dataset:
    """A small learnable dataset for tests: each class brightens its own band of rows, plus noise."""
    rng = np.random.default_rng(seed)

    def make(n: int) -> Split:
        labels = rng.integers(0, classes, n)
        images = rng.integers(0, 96, (n, channels, size, size))
        band = max(1, size // classes)
        for c in range(classes):
            rows = slice((c * band) % size, (c * band) % size + band)
            images[labels == c, :, rows, :] += 140
        return Split(np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.int64))

    return Dataset("synthetic", make(n_train), make(n_test), classes=classes)


def as_32rgb(ds: Dataset) -> Dataset:
    """28x28 grey images as CIFAR-10-shaped ones: 2 black pixels of padding on every side and the grey
    value in all three channels. The networks made for CIFAR-10 (FINN's CNV: 32x32x3 input) then run
    unchanged on data that installs here; their throughput and resources do not depend on the data."""
    def convert(split: Split) -> Split:
        padded = np.pad(split.images, ((0, 0), (0, 0), (2, 2), (2, 2)))
        return Split(np.ascontiguousarray(np.repeat(padded, 3, axis=1)), split.labels)
    if ds.shape != (1, 28, 28):
        raise DatasetError(f"{ds.name} is {'x'.join(map(str, ds.shape))}; the 32x32 RGB form needs 1x28x28 images")
    return Dataset(f"{ds.name}-32rgb", convert(ds.train), convert(ds.test), ds.classes)


def check_holdout(holdout: int, train_images: int) -> None:
    """A holdout drawn from the training set (the images a choice is decided on) must leave some to
    train on: 1..train_images - 1 images."""
    if not 0 < holdout < train_images:
        raise DatasetError(f"--holdout must lie in 1..{train_images - 1} (the training set has {train_images} "
                           f"images), not {holdout}")


def dataset_of(requested: str | None, trained_on: str) -> str:
    """``--dataset`` when given, else the dataset a checkpoint was trained on (its ``dataset`` field)."""
    if requested is not None:
        return requested
    if trained_on not in DATASETS:
        raise DatasetError(f"the checkpoint was trained on {trained_on!r}, which bnn2fpga cannot load; pass "
                           f"--dataset ({', '.join(DATASETS)})")
    return trained_on


def load(name: str, data_dir: Path | str | None = None) -> Dataset:
    if name in ("fashion-mnist", "mnist"):
        default = FASHION_MNIST_DIR if name == "fashion-mnist" else Path("/usr/share/datasets/mnist")
        return load_idx(data_dir or default, name)
    if name == "cifar10":
        if data_dir is None:
            raise DatasetError("CIFAR-10 has no default location: pass --data DIR with the python-format batches")
        return load_cifar10(data_dir)
    if name == "fashion-mnist-32rgb":
        return as_32rgb(load_idx(data_dir or FASHION_MNIST_DIR, "fashion-mnist"))
    if name == "synthetic":
        return synthetic()
    raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def require_fit(architecture: dict, ds: Dataset, name: str, trained_on: str | None = None) -> None:
    """Refuse, with one clear error, a dataset whose images or classes are not the network's.

    ``architecture``: a checkpoint's; ``name``: what to call the network in the message."""
    inp = architecture["input"]
    shape = (inp["channels"], inp["height"], inp["width"])
    hint = f"pick the dataset it was trained on ({trained_on})" if trained_on else "pick one with --dataset"
    if shape != ds.shape:
        raise UserError(f"{name} expects {'x'.join(map(str, shape))} images, {ds.name} has "
                        f"{'x'.join(map(str, ds.shape))}; {hint}")
    classes = architecture["layers"][-1]["out"]
    if classes != ds.classes:
        raise UserError(f"{name} has {classes} classes, {ds.name} has {ds.classes}; {hint}")

