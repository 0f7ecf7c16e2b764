"""`tian compare` names a registry version as the registry does (`tian models add --version`),
not by the version its manifest was trained under."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tian.cli import main


def test_compare_by_version_prints_the_registry_names(
    toy_proposals: list, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from model.bundle import save_bundle
    from model.records import write_proposals
    from training.baseline import fit_baseline

    bundle = tmp_path / "trained"
    save_bundle(fit_baseline(toy_proposals), bundle, {"version": "20261208-010203"})
    data = tmp_path / "toy.jsonl"
    write_proposals(data, toy_proposals)
    root = ["models", "--root", str(tmp_path / "models")]
    assert main([*root, "add", str(bundle), "--version", "2025-01", "--promote"]) == 0
    assert main([*root, "add", str(bundle), "--version", "2025-02"]) == 0
    capsys.readouterr()

    compare = ["compare", "--root", str(tmp_path / "models"), "--data", str(data)]
    assert main([*compare, "--model", "live", "--model", "2025-02"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("compare 2025-01 (old) with 2025-02 (new) on "), first
    assert main([*compare, "--model", str(bundle), "--model", "2025-02", "--json"]) == 0
    models = json.loads(capsys.readouterr().out)["models"]
    assert [models["old"]["version"], models["new"]["version"]] == ["20261208-010203", "2025-02"]
