"""The unit alias map: renames, chains, merges, splits and bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.aliases import DEFAULT_ALIASES, AliasError, load_aliases
from model.records import Proposal


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "aliases.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_file_covers_renames_merges_and_splits() -> None:
    aliases = load_aliases()
    assert aliases.source["file"] == str(DEFAULT_ALIASES)
    assert aliases.canonical("市卫生和计划生育委员会") == "市卫生健康委员会"
    assert aliases.canonical("市乡村振兴局") == "市农业农村局"
    assert aliases.canonical("市扶贫开发办公室") == "市农业农村局"  # a chain of two changes
    assert aliases.since["市乡村振兴局"] == 2023
    assert aliases.is_split("市文化广电新闻出版局")
    assert aliases.canonical("市文化广电新闻出版局") == "市文化广电新闻出版局"
    assert aliases.canonical("市教育局") == "市教育局"


def test_apply_maps_units_dedupes_and_reports_splits() -> None:
    aliases = load_aliases()
    rows = [
        Proposal(
            id="a",
            title="t",
            content="c",
            main_unit="市乡村振兴局",
            co_units=["市农业农村局", "市扶贫开发办公室", "市卫生计生委"],
        ),
        Proposal(id="b", title="t", content="c", main_unit="市文化广电新闻出版局"),
        Proposal(id="c", title="t", content="c", main_unit=None),
    ]
    mapped, report = aliases.apply(rows)
    assert mapped[0].main_unit == "市农业农村局"
    # Both old names became the main unit: dropped from co-units; the duplicate is gone.
    assert mapped[0].co_units == ["市卫生健康委员会"]
    assert mapped[1].main_unit == "市文化广电新闻出版局"  # a split is never guessed
    assert mapped[2].main_unit is None
    assert report.renamed == {"市乡村振兴局": 1, "市扶贫开发办公室": 1, "市卫生计生委": 1}
    assert report.split_rows == {"市文化广电新闻出版局": ["b"]}
    assert rows[0].main_unit == "市乡村振兴局"  # the input is not modified


def test_status_of_names() -> None:
    aliases = load_aliases()
    assert aliases.status("市乡村振兴局") == "alias"
    assert aliases.status("市文化广电新闻出版局") == "split"
    assert aliases.status("市农业农村局") == "current"
    assert aliases.status("市教育局", known={"市教育局"}) == "current"
    assert aliases.status("市数据局") == "unknown"


def test_chinese_headers_and_whitespace(tmp_path: Path) -> None:
    path = write(tmp_path, "原名称,现名称,起始年份,备注\n市 环境保护局 ,市生态环境局,2019,\n\n")
    assert load_aliases(path).canonical("市环境保护局") == "市生态环境局"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("old,new\na,b\n", "missing column"),
        ("old_name,current_name\na,\n", "row 2: old_name and current_name must both"),
        ("old_name,current_name\na,a\n", "mapped to itself"),
        ("old_name,current_name\na,b\na,b\n", "row 3: a → b is listed twice"),
        ("old_name,current_name,since\na,b,19x9\n", "'19x9' is not a year"),
        ("old_name,current_name\na,b\nb,a\n", "alias cycle"),
    ],
)
def test_bad_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(AliasError, match=message):
        load_aliases(write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AliasError, match="alias file not found"):
        load_aliases(tmp_path / "none.csv")
