"""Fixtures for the simulation tooling: private copies of the fake accelerator build."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bnn2fpga.contract.manifest import Manifest, load_manifest

from .fake import FIXTURE


@pytest.fixture(scope="session")
def fake_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the fake build folder: simulators cache their builds inside it."""
    dst = tmp_path_factory.mktemp("fake") / "build"
    shutil.copytree(FIXTURE, dst)
    return dst


@pytest.fixture(scope="session")
def fake_manifest(fake_build: Path) -> Manifest:
    return load_manifest(fake_build)
