"""The wheel ships every package: pyproject's explicit list names each folder with an ``__init__.py``."""

from __future__ import annotations

import tomllib

from tests.conftest import ROOT


def test_every_package_is_listed_for_the_wheel() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapped = {name: ROOT / folder for name, folder in config["package-dir"].items()}
    found = set()
    roots = {"bnn2fpga": ROOT / "bnn2fpga", **mapped}
    for name, folder in roots.items():
        for init in folder.rglob("__init__.py"):
            if any((ROOT / q).is_symlink() for q in init.relative_to(ROOT).parents):
                continue  # a checkout's bnn2fpga/hw -> ../hw link: listed under its own name
            parts = init.parent.relative_to(folder).parts
            found.add(".".join((name, *parts)))
    assert found - listed == set(), f"packages missing from pyproject.toml [tool.setuptools] packages: {found - listed}"


def test_ci_runs_the_readmes_two_set_up_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Set-up: two commands", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert len(commands) == 2, commands
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    for command in commands:
        assert command in ci, f".ci/run does not run the README's set-up command {command!r}"
    assert any(line.startswith("python3 -m venv") for line in ci)  # in a fresh environment of its own
