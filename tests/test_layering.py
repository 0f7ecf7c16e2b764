"""The layering contracts of pyproject.toml hold, read from the source (import-linter).

`make lint` runs `lint-imports` too; this keeps the check in a plain `pytest` run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"

pytest.importorskip("importlinter")


def _lint(config: Path) -> int:
    # In a process of its own: import-linter configures logging, which would silence the
    # loggers of every test that runs after it in this process.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the root packages, found from the root
    cli = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(cli), str(config), "--no-cache"], cwd=ROOT, env=env, capture_output=True, timeout=300
    )
    return done.returncode


def test_the_contracts_name_every_layer() -> None:
    config = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["importlinter"]
    forbidden = {
        tuple(c["source_modules"]): set(c["forbidden_modules"])
        for c in config["contracts"]
        if c["type"] == "forbidden"
    }
    assert forbidden[("model",)] == {"service", "training", "tian"}
    assert forbidden[("service",)] == {"training", "tian", "datasets"}
    assert forbidden[("training",)] == {"service", "tian"}
    assert forbidden[("model", "service", "training")] == {"argparse"}


def test_argparse_below_the_command_line_breaks_a_contract(tmp_path: Path) -> None:
    # The argparse contract is checked from the source: a module in training/ that imports it
    # fails `lint-imports` (a copy of the package, so the real tree is never touched).
    import shutil

    for package in ("model", "service", "training", "tian"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.pyc"))
    (tmp_path / "training" / "flags.py").write_text("import argparse\n", encoding="utf-8")
    shutil.copy(PYPROJECT, tmp_path / "pyproject.toml")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    cli = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(cli), "--no-cache"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 1
    assert "training.flags -> argparse" in done.stdout


def test_layering_contracts_hold() -> None:
    assert _lint(PYPROJECT) == 0


def test_a_broken_contract_is_reported(tmp_path: Path) -> None:
    # The same machinery on a contract that cannot hold (model uses numpy everywhere).
    config = tmp_path / "contracts.toml"
    config.write_text(
        "[tool.importlinter]\n"
        'root_packages = ["model"]\n'
        "include_external_packages = true\n"
        "[[tool.importlinter.contracts]]\n"
        'name = "model without numpy"\n'
        'type = "forbidden"\n'
        'source_modules = ["model"]\n'
        'forbidden_modules = ["numpy"]\n',
        encoding="utf-8",
    )
    assert _lint(config) == 1
