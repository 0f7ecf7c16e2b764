"""The model registry: add, list, promote, rollback, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model.bundle import FORMAT_VERSION, write_json
from model.registry import ModelRegistry, RegistryError, UnknownVersionError


def fake_bundle(folder: Path, version: str, created: str, kind: str = "baseline") -> Path:
    """A folder with the files a registry checks (the registry never loads the weights)."""
    folder.mkdir(parents=True)
    write_json(
        folder / "manifest.json",
        {"format_version": FORMAT_VERSION, "kind": kind, "version": version, "created": created},
    )
    write_json(folder / "labels.json", {"category": ["a", "b"]})
    write_json(folder / "calibration.json", {"heads": {}})
    (folder / "baseline.joblib").write_bytes(b"weights")
    return folder


@pytest.fixture
def bundles(tmp_path: Path) -> list[Path]:
    return [
        fake_bundle(tmp_path / f"b{i}", f"v{i}", f"2024-01-0{i}T00:00:00+00:00") for i in (1, 2, 3)
    ]


def test_add_list_newest_first_and_lineage(tmp_path: Path, bundles: list[Path]) -> None:
    registry = ModelRegistry(tmp_path / "models")
    assert registry.list() == []
    assert registry.live() is None
    for b in bundles:
        registry.add(b)
    entries = registry.list()
    assert [e.version for e in entries] == ["v3", "v2", "v1"]
    assert all(not e.is_live and e.kind == "baseline" for e in entries)
    assert (entries[0].path / "baseline.joblib").read_bytes() == b"weights"
    assert entries[0].manifest["registry"]["source"] == str(bundles[2].resolve())
    # The original bundle is untouched.
    assert "registry" not in json.loads((bundles[2] / "manifest.json").read_text())


def test_promote_and_rollback_walk_back(tmp_path: Path, bundles: list[Path]) -> None:
    registry = ModelRegistry(tmp_path / "models")
    for b in bundles:
        registry.add(b)
    with pytest.raises(RegistryError, match="no version is live"):
        registry.rollback()
    assert registry.promote("v1").is_live
    with pytest.raises(RegistryError, match="first live"):
        registry.rollback()
    registry.promote("v2")
    registry.promote("v3")
    assert registry.live().version == "v3"  # type: ignore[union-attr]
    assert registry.rollback().version == "v2"
    assert registry.rollback().version == "v1"
    assert [e.version for e in registry.list() if e.is_live] == ["v1"]
    state = json.loads((tmp_path / "models" / "registry.json").read_text())
    assert state["live"] == "v1"
    assert [h["action"] for h in state["history"]][-2:] == ["rollback", "rollback"]
    # A fresh object on the same folder sees the same state.
    assert ModelRegistry(tmp_path / "models").live().version == "v1"  # type: ignore[union-attr]


def test_promote_after_rollback_then_rollback(tmp_path: Path, bundles: list[Path]) -> None:
    registry = ModelRegistry(tmp_path / "models")
    for b in bundles:
        registry.add(b)
    registry.promote("v1")
    registry.promote("v2")
    registry.rollback()
    registry.promote("v3")
    assert registry.rollback().version == "v1"


def test_add_with_explicit_version_and_clashes(tmp_path: Path, bundles: list[Path]) -> None:
    registry = ModelRegistry(tmp_path / "models")
    assert registry.add(bundles[0], version="2025-a").version == "2025-a"
    with pytest.raises(RegistryError, match="already exists"):
        registry.add(bundles[1], version="2025-a")
    with pytest.raises(RegistryError, match="bad version name"):
        registry.add(bundles[1], version="../escape")
    assert not list((tmp_path / "models").glob(".*staging*"))


def test_refuses_non_bundles(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RegistryError, match="manifest.json is missing"):
        registry.add(empty)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    with pytest.raises(RegistryError, match="not valid JSON"):
        registry.add(broken)
    partial = fake_bundle(tmp_path / "partial", "p", "2024")
    (partial / "labels.json").unlink()
    with pytest.raises(RegistryError, match="labels.json is missing"):
        registry.add(partial)
    assert registry.list() == []


def test_unknown_version_is_a_clear_key_error(tmp_path: Path, bundles: list[Path]) -> None:
    registry = ModelRegistry(tmp_path / "models")
    registry.add(bundles[0])
    with pytest.raises(KeyError) as info:
        registry.get("nope")
    assert isinstance(info.value, UnknownVersionError)
    assert str(info.value) == f"no model version 'nope' in {tmp_path / 'models'} (versions: v1)"
    with pytest.raises(UnknownVersionError):
        registry.promote("nope")
    with pytest.raises(RegistryError, match="already live"):
        registry.promote("v1") and registry.promote("v1")
