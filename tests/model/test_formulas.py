"""One formula rule for every CSV and XLSX writer (model.formulas)."""

from __future__ import annotations

import pytest

from model.formulas import is_formula_like, neutralise, unneutralise

HOSTILE = [
    "=2+5+cmd|' /C calc'!A0",
    "=1+1",
    "+1+1",
    "-1+1",
    '=(HYPERLINK("http://x","y"))',
    "@SUM(1)",
    "\t=1",
    "\r=1",
    "  =1+1",  # spaces before it do not protect a cell
    "\u3000=1+1",  # nor a full-width space
    "＝1+1",  # full-width forms Chinese input methods type
    "＋1",
    "－1",
    "＠SUM(1)",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_formula_like_values_are_neutralised(value):
    assert is_formula_like(value)
    assert neutralise(value) == "'" + value
    assert unneutralise(neutralise(value)) == value


@pytest.mark.parametrize("value", ["关于加强河湖治理的建议", "2024 年", "", "a=b", "'", "' 文本"])
def test_ordinary_text_is_left_alone(value):
    assert not is_formula_like(value)
    assert neutralise(value) == value and unneutralise(value) == value


def test_apostrophes_round_trip():
    for value in ("'=1", "''=1", "'正常"):
        assert unneutralise(neutralise(value)) == value


def test_record_writers_use_the_rule(tmp_path):
    import openpyxl

    from model.records import Proposal, read_proposals, write_proposals

    titles = ["=1+1", "+1+1", "-1+1", "=2+5+cmd|' /C calc'!A0", "＝1+1", "正常的案由"]
    records = [
        Proposal(id=f"P{i}", year=2024, title=t, content="内容") for i, t in enumerate(titles)
    ]
    csv_path = tmp_path / "x.csv"
    write_proposals(csv_path, records)
    lines = csv_path.read_text(encoding="utf-8-sig").splitlines()[1:]
    assert len(lines) == len(records)
    assert all(line.split(",")[2].startswith("'") for line in lines[:5])
    assert not lines[5].split(",")[2].startswith("'")
    # Reading back gives the titles unchanged (full-width forms are folded by the reader).
    assert [p.title for p in read_proposals(csv_path)][:4] == titles[:4]
    xlsx_path = tmp_path / "x.xlsx"
    write_proposals(xlsx_path, records)
    cells = list(openpyxl.load_workbook(xlsx_path).active["C"])[1:]
    # XLSX: the text as typed (no visible apostrophe), with the quotePrefix style.
    assert [c.value for c in cells] == titles
    assert [bool(c.quotePrefix) for c in cells] == [True] * 5 + [False]
    assert all(c.data_type == "s" for c in cells)
