from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from bnn2fpga import data


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


def make_idx_dir(tmp_path: Path, compress: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 5, dtype=np.uint8)
    for split in ("train", "t10k"):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte", images, compress)
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte", labels, compress)
    return images, labels


@pytest.mark.parametrize("compress", [False, True])
def test_idx_loader_reads_plain_and_gzipped(tmp_path: Path, compress: bool) -> None:
    images, labels = make_idx_dir(tmp_path, compress)
    ds = data.load("fashion-mnist", tmp_path)
    assert ds.train.images.shape == (5, 1, 28, 28)
    assert (ds.test.images[:, 0] == images).all()
    assert (ds.test.labels == labels).all()


def test_missing_dataset_names_files_and_debian_package(tmp_path: Path) -> None:
    with pytest.raises(data.DatasetError) as e:
        data.load("fashion-mnist", tmp_path)
    msg = str(e.value)
    assert "t10k-images-idx3-ubyte[.gz]" in msg and "apt-get install dataset-fashion-mnist" in msg


def test_truncated_idx_is_reported(tmp_path: Path) -> None:
    make_idx_dir(tmp_path, False)
    f = tmp_path / "t10k-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(data.DatasetError, match="truncated"):
        data.load("fashion-mnist", tmp_path)


def test_cifar10_python_batches(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, 4))}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    ds = data.load("cifar10", tmp_path)
    assert ds.train.images.shape == (20, 3, 32, 32) and ds.test.images.shape == (4, 3, 32, 32)
    assert ds.shape == (3, 32, 32)


def test_cifar10_missing_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(data.DatasetError, match="CIFAR-10 not found .* missing data_batch_1"):
        data.load("cifar10", tmp_path)


def test_synthetic_is_deterministic() -> None:
    a, b = data.synthetic(seed=3), data.synthetic(seed=3)
    assert (a.train.images == b.train.images).all() and a.train.images.dtype == np.uint8


def test_real_fashion_mnist_present() -> None:
    ds = data.load("fashion-mnist")
    assert len(ds.train) == 60000 and len(ds.test) == 10000 and ds.shape == (1, 28, 28)


def test_fashion_mnist_in_cifar_shape(tmp_path: Path) -> None:
    images, labels = make_idx_dir(tmp_path, compress=False)
    ds = data.load("fashion-mnist-32rgb", tmp_path)
    assert ds.shape == (3, 32, 32) and ds.name == "fashion-mnist-32rgb" and ds.train.images.dtype == np.uint8
    for c in range(3):  # the grey image in every channel, 2 black pixels around it
        assert np.array_equal(ds.train.images[:, c, 2:30, 2:30], images)
    border = ds.test.images.copy()
    border[:, :, 2:30, 2:30] = 0
    assert not border.any() and np.array_equal(ds.test.labels, labels)
    with pytest.raises(data.DatasetError, match="needs 1x28x28 images"):
        data.as_32rgb(ds)
