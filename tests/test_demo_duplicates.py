"""The demo's identical-title pair on one matter (2024-010 and 2022-008, 冷链物流 in 临水县) is a
duplicate by the shipped scorer with the real e5 backbone, as `tian dedup --pairs` scores it."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tian.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.smoke
def test_identical_title_pair_of_the_demo_is_flagged(tmp_path: Path) -> None:
    from model.dedup import DedupCalibration

    pairs, out = tmp_path / "pairs.csv", tmp_path / "scored.csv"
    pairs.write_text("id_a,id_b\n2024-010,2022-008\n", encoding="utf-8")
    data = str(ROOT / "data" / "demo" / "proposals.csv")
    rc = main(["dedup", "--data", data, "--pairs", str(pairs), "--out", str(out), "--no-progress"])
    assert rc == 0
    with out.open(encoding="utf-8") as fh:
        (row,) = list(csv.DictReader(fh))
    assert (row["id_a"], row["id_b"]) == ("2024-010", "2022-008")
    assert float(row["score"]) >= DedupCalibration.load().threshold, row
