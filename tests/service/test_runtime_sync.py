"""The service's model follows the registry folder it shares with `tian models`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from model.registry import ModelRegistry
from service.registry_runtime import ModelRuntime


def test_runtime_follows_promote_and_rollback_from_another_process(
    tmp_path: Path, baseline_bundle: Path, baseline_bundle_2: Path
) -> None:
    root = tmp_path / "models"
    runtime = ModelRuntime(root, baseline_bundle)
    runtime.start()
    assert runtime.current is not None and runtime.current.version == "toy-1"
    other = ModelRegistry(root)  # what the command line holds
    other.add(baseline_bundle_2)
    other.promote("toy-2")
    assert runtime.current.version == "toy-2"
    assert runtime.rollback_target() == "toy-1"
    loaded = runtime.current
    assert runtime.current is loaded  # nothing changed: no reload
    other.rollback()
    assert runtime.current.version == "toy-1"


def test_a_registered_model_that_cannot_load_keeps_the_old_one(
    tmp_path: Path, baseline_bundle: Path, baseline_bundle_2: Path
) -> None:
    root = tmp_path / "models"
    runtime = ModelRuntime(root, baseline_bundle)
    runtime.start()
    broken = tmp_path / "broken"
    shutil.copytree(baseline_bundle_2, broken)
    manifest = json.loads((broken / "manifest.json").read_text(encoding="utf-8"))
    (broken / "manifest.json").write_text(json.dumps(manifest | {"version": "bad"}), "utf-8")
    registry = ModelRegistry(root)
    registry.add(broken)
    (root / "bad" / "baseline.joblib").write_bytes(b"not a model")
    registry.promote("bad")
    assert runtime.current.version == "toy-1"
    assert runtime.notice == "模型库登记的当前模型 bad 无法加载，仍在使用 toy-1。"
