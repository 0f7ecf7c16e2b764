"""`tian train --aliases`: old unit names train the current label; the manifest records it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from model.records import write_proposals
from tian.cli import main


def test_train_maps_old_unit_names(toy_proposals: list, tmp_path: Path) -> None:
    rows = [
        replace(p, main_unit="市卫生和计划生育委员会")
        if p.main_unit == "市卫生健康委员会" and p.year == 2022
        else p
        for p in toy_proposals
    ]
    data = tmp_path / "toy.jsonl"
    write_proposals(data, rows)
    args = ["train", "--kind", "baseline", "--data", str(data)]
    assert main([*args, "--out", str(tmp_path / "mapped")]) == 0
    labels = json.loads((tmp_path / "mapped" / "labels.json").read_text(encoding="utf-8"))
    assert "市卫生和计划生育委员会" not in labels["main_unit"]
    manifest = json.loads((tmp_path / "mapped" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["aliases"]["renamed"] == {"市卫生和计划生育委员会": 5}
    assert len(manifest["aliases"]["sha256"]) == 64

    assert main([*args, "--out", str(tmp_path / "raw"), "--aliases", "none"]) == 0
    labels = json.loads((tmp_path / "raw" / "labels.json").read_text(encoding="utf-8"))
    assert "市卫生和计划生育委员会" in labels["main_unit"]
