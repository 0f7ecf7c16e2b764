"""`tian export-training` wiring: the service's exporter is mocked, the file is real."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest

from model.records import Proposal, read_proposals
from tian.cli import main
from tian.commands import export_training


@pytest.fixture
def fake_service(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, int]]:
    calls: list[tuple[Any, int]] = []

    def export(session: Any, year: int) -> list[Proposal]:
        calls.append((session, year))
        if year != 2024:
            return []
        return [
            Proposal(
                id="2024-001",
                year=2024,
                title="关于加强医疗卫生的建议",
                content="医院",
                category="医疗卫生",
                main_unit="市卫生健康委员会",
                co_units=["市医疗保障局"],
            ),
            Proposal(
                id="2024-002", year=2024, title="关于学校", content="教育", category="教育科技"
            ),
        ]

    monkeypatch.setattr(export_training, "exporter", lambda: export)
    monkeypatch.setattr(
        export_training, "open_session", lambda url: contextlib.nullcontext("SESSION")
    )
    return calls


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".xlsx"])
def test_writes_reviewed_records(fake_service: list, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / "sub" / f"training_2024{suffix}"
    assert main(["export-training", "--year", "2024", "--out", str(out)]) == 0
    assert fake_service == [("SESSION", 2024)]
    rows = read_proposals(out)
    assert [(p.id, p.category, p.main_unit, p.co_units) for p in rows] == [
        ("2024-001", "医疗卫生", "市卫生健康委员会", ["市医疗保障局"]),
        ("2024-002", "教育科技", None, []),
    ]
    assert all(p.proposer is None for p in rows)


def test_empty_year_and_bad_suffix(
    fake_service: list, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["export-training", "--year", "2019", "--out", str(tmp_path / "x.csv")]) == 2
    assert "no reviewer-confirmed proposals for year 2019" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
    assert main(["export-training", "--year", "2024", "--out", str(tmp_path / "x.txt")]) == 2
    assert "unsupported output type .txt" in capsys.readouterr().err


def test_missing_sqlite_database_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pytest.importorskip("sqlalchemy")
    db = tmp_path / "none.db"
    args = ["export-training", "--year", "2024", "--out", str(tmp_path / "x.csv")]
    assert main([*args, "--db", f"sqlite:///{db}"]) == 2
    assert "no service database" in capsys.readouterr().err
    assert not db.exists()


def test_a_saved_dataset_lies_next_to_the_table(fake_service: list, tmp_path: Path) -> None:
    from datasets import load_from_disk

    out = tmp_path / "training_2024.csv"
    assert main(["export-training", "--year", "2024", "--out", str(out)]) == 0
    dataset = load_from_disk(str(export_training.dataset_folder(out)))
    assert dataset["id"] == ["2024-001", "2024-002"]
    assert dataset["co_units"] == [["市医疗保障局"], []]
    assert "proposer" not in dataset.column_names  # personal data stays out
