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


def test_rollback_target_signature_and_new_kinds(tmp_path: Path, bundles: list[Path]) -> None:
    registry = ModelRegistry(tmp_path / "models")
    assert registry.rollback_target() is None and registry.signature() is None
    for b in bundles:
        registry.add(b)
    registry.promote("v1")
    first = registry.signature()
    registry.promote("v2")
    registry.promote("v3")
    assert registry.rollback_target() == "v2" and registry.live_version() == "v3"
    assert registry.signature() != first  # any process can notice a promotion cheaply
    registry.rollback()
    assert registry.rollback_target() == "v1"
    auto = fake_bundle(tmp_path / "auto", "a1", "2024-02-01T00:00:00+00:00", kind="auto")
    assert registry.add(auto).kind == "auto"  # kinds are the bundle loader's business


def test_describe_and_headline_metrics_in_chinese(tmp_path: Path, bundles: list[Path]) -> None:
    from model.registry import describe, headline_metrics, one_line

    registry = ModelRegistry(tmp_path / "models")
    entry = registry.add(bundles[0])
    assert headline_metrics(entry.manifest) == []
    d = describe(entry)
    assert d["kind_text"] == "基线 TF-IDF" and d["headline"] == []
    assert "metrics: not recorded" in one_line(entry)
    per_head = {
        "metrics": {
            "category": {"macro_f1": 0.9, "accuracy": 0.95, "ece": 0.02},
            "co_units": {"micro_f1": 0.4},
        }
    }
    assert [h["text"] for h in headline_metrics(per_head)] == [
        "类别 宏F1 0.900",
        "类别 准确率 0.950",
        "协办单位 微F1 0.400",
    ]
    assert [h["text"] for h in headline_metrics({"metrics": {"heads": per_head["metrics"]}})][
        0
    ] == ("类别 宏F1 0.900")
    assert [h["text"] for h in headline_metrics({"metrics": {"macro_f1": 0.8}})] == ["宏F1 0.800"]


def test_headline_of_an_auto_bundle_includes_the_review_share() -> None:
    from model.registry import headline_metrics

    metrics = {
        "category": {"log_loss": 0.3, "macro_f1": 0.91, "accuracy": 0.92, "top3": 0.99},
        "main_unit": {"macro_f1": 0.7, "accuracy": 0.8},
        "review": {"flagged": 0.3, "unflagged_accuracy": 0.98},
    }
    texts = [h["text"] for h in headline_metrics({"metrics": metrics})]
    assert texts[-2:] == ["复核 需人工比例 0.300", "复核 未标记准确率 0.980"]
