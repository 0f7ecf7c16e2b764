"""Tests for model.records: reading, validating and writing proposal tables."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import openpyxl
import pytest
from table_files import write_csv, write_xlsx

from model.records import (
    Proposal,
    canonical_column,
    parse_time,
    read_proposals,
    write_proposals,
)
from model.tables import RecordError, read_table

PROPOSER = "王秘密"  # stands for personal data: must never show up in errors or repr


def read_error(path: Path, **kwargs: int) -> RecordError:
    with pytest.raises(RecordError) as info:
        read_proposals(path, **kwargs)
    return info.value


def sample_proposals() -> list[Proposal]:
    return [
        Proposal(
            id="2024-001",
            title="关于加强老旧小区电梯加装的建议",
            content="一、现状\n老旧小区，电梯少。\n\n二、建议：加快推进（试点）！",
            year=2024,
            proposer=PROPOSER,
            category="城乡建设",
            main_unit="市住房和城乡建设局",
            co_units=["市财政局", "市自然资源和规划局"],
            time="2024-01-05 09:30:00",
            extra={"备注": "重点提案", "likes": "3"},
        ),
        Proposal(id="2024-002", title="", content="只有正文，没有标题。", year=2024),
        Proposal(
            id="17",
            title="=SUM(A1:A3) 不是公式",
            content="'+A1 也不是",
            time="2023-12-30",
            year=2023,
            extra={"备注": "=A1"},
        ),
    ]


# ---------------------------------------------------------------------------------------------
# Basics: aliases, extras, separators, year from time


def test_chinese_aliases_extra_columns_and_separators(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "in.csv",
        "\ufeff提案号 ,案由,提案内容,提案人,类别,主办单位,协办单位,提交时间,附件数\n"
        f'A1,关于 加强　养老服务 的建议,"内容\r\n第二行",{PROPOSER},民政 ,市民政局,'
        '"市财政局、市卫健委，市人社局,市医保局;市教育局；市残联\n市民政局",2024年1月5日,2\n',
    )
    [p] = read_proposals(path)
    assert p.id == "A1"
    assert p.title == "关于 加强 养老服务 的建议"
    assert p.content == "内容\n第二行"
    assert p.proposer == PROPOSER
    assert p.category == "民政"
    assert p.main_unit == "市民政局"
    assert p.co_units == [
        "市财政局",
        "市卫健委",
        "市人社局",
        "市医保局",
        "市教育局",
        "市残联",
        "市民政局",
    ]
    assert p.time == "2024-01-05"
    assert p.year == 2024  # derived from time
    assert p.extra == {"附件数": "2"}
    assert p.text == "关于 加强 养老服务 的建议\n内容\n第二行"


@pytest.mark.parametrize(
    ("header", "column"),
    [
        ("ID", "id"),
        (" Id ", "id"),
        ("\ufeffid", "id"),
        ("TITLE", "title"),
        ("Main Unit", "main_unit"),
        ("co-units", "co_units"),
        ("编号", "id"),
        ("留言编号", "id"),
        ("留言主题", "title"),
        ("留言详情", "content"),
        ("一级分类", "category"),
        ("承办单位", "main_unit"),
        ("会办单位", "co_units"),
        ("届次年份", "year"),
        ("留言时间", "time"),
        ("提案者", "proposer"),
        ("备注", None),
    ],
)
def test_canonical_column(header: str, column: str | None) -> None:
    assert canonical_column(header) == column


def test_upper_case_english_headers(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in.csv", "ID,Title,CONTENT,Year\n7,标题,正文,2021\n")
    [p] = read_proposals(path)
    assert (p.id, p.title, p.content, p.year) == ("7", "标题", "正文", 2021)


def test_year_column_wins_over_time(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in.csv", "id,title,year,time\n1,甲,2025年,2024/12/20 10:00\n")
    [p] = read_proposals(path)
    assert p.year == 2025
    assert p.time == "2024-12-20 10:00:00"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-05", ("2024-01-05", 2024)),
        ("2024/1/5", ("2024-01-05", 2024)),
        ("2024.1.5", ("2024-01-05", 2024)),
        ("2024年1月5日", ("2024-01-05", 2024)),
        ("2024年1月5日 8:05", ("2024-01-05 08:05:00", 2024)),
        ("2024年1月5日10时30分", ("2024-01-05 10:30:00", 2024)),
        ("2024/1/5 10:30:15", ("2024-01-05 10:30:15", 2024)),
        ("2024-01-05T10:30:15", ("2024-01-05 10:30:15", 2024)),
        ("２０２４－０１－０５", ("2024-01-05", 2024)),
        (dt.datetime(2024, 1, 5), ("2024-01-05", 2024)),
        (dt.datetime(2024, 1, 5, 9, 1, 2), ("2024-01-05 09:01:02", 2024)),
        (dt.date(2023, 2, 1), ("2023-02-01", 2023)),
    ],
)
def test_parse_time_accepts(value: object, expected: tuple[str, int]) -> None:
    assert parse_time(value) == expected


@pytest.mark.parametrize("value", ["2024-02-30", "昨天", "45296", "2024/13/1", "1/5/2024"])
def test_parse_time_rejects(value: str) -> None:
    with pytest.raises(ValueError):
        parse_time(value)


def test_title_rows_above_the_header_are_skipped_in_xlsx(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "in.xlsx",
        [
            ["2024年提案汇总表"],
            [],
            ["提案号", "案由", "提交时间"],
            [1, "甲", dt.datetime(2024, 3, 1)],
        ],
    )
    [p] = read_proposals(path)
    assert (p.id, p.title, p.time, p.year) == ("1", "甲", "2024-03-01", 2024)
    headers, rows = read_table(path)  # generic: the first non-empty row is the header
    assert headers[0] == "2024年提案汇总表"


def test_xlsx_prefers_a_sheet_named_like_proposals(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    first = wb.active
    assert first is not None
    first.append(["说明"])
    first.append(["本表由系统导出"])
    sheet = wb.create_sheet("2024年提案")
    sheet.append(["id", "title"])
    sheet.append([None, None])  # fully empty rows are skipped
    sheet.append([5.0, "标题"])
    wb.save(tmp_path / "in.xlsx")
    [p] = read_proposals(tmp_path / "in.xlsx")
    assert (p.id, p.title) == ("5", "标题")


def test_xlsx_row_numbers_are_sheet_rows(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "in.xlsx", [["id", "title"], [1, "甲"], [], [1, "乙"]])
    error = read_error(path)
    assert [(i.row, i.column) for i in error.issues] == [(4, "id")]
    assert "第 2 行已有" in error.issues[0].message


def test_jsonl_co_units_list_or_string_and_nested_extra(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    lines = [
        {"id": 1, "title": "甲", "co_units": ["市财政局", " 市教育局 "], "year": 2024},
        {"id": "2", "content": "乙", "co_units": "市财政局；市教育局", "extra": {"备注": "x"}},
    ]
    path.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines), encoding="utf-8")
    first, second = read_proposals(path)
    assert first.co_units == second.co_units == ["市财政局", "市教育局"]
    assert first.year == 2024 and second.year is None
    assert second.extra == {"备注": "x"}


# ---------------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("suffix", [".csv", ".xlsx", ".jsonl", ".tsv"])
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"out{suffix}"
    original = sample_proposals()
    write_proposals(path, original)
    assert read_proposals(path) == original
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_round_trip_of_what_was_read(tmp_path: Path) -> None:
    source = write_csv(
        tmp_path / "in.csv",
        "编号,标题,正文,协办单位,留言时间,点赞\n1,甲,内容_x000D_\n下一行,"
        "a局、b局,2020/1/2 3:04:05,9\n",
    )
    first = read_proposals(source)
    for suffix in (".csv", ".xlsx", ".jsonl"):
        write_proposals(tmp_path / f"copy{suffix}", first)
        assert read_proposals(tmp_path / f"copy{suffix}") == first


def test_csv_is_written_with_bom_for_excel(tmp_path: Path) -> None:
    write_proposals(tmp_path / "out.csv", sample_proposals())
    data = (tmp_path / "out.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbfid,year,title,content,proposer,category,main_unit")
    assert b"'=SUM(A1:A3)" in data  # formula-like text is guarded against CSV injection


def test_xlsx_text_starting_with_equals_is_not_written_as_formula(tmp_path: Path) -> None:
    write_proposals(tmp_path / "out.xlsx", sample_proposals())
    wb = openpyxl.load_workbook(tmp_path / "out.xlsx")
    assert wb.sheetnames == ["提案"]
    cells = [c for row in wb["提案"].iter_rows() for c in row]
    assert cells and all(c.data_type != "f" for c in cells)


def test_write_is_atomic_and_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    write_proposals(path, sample_proposals()[:1])
    before = path.read_bytes()

    def broken() -> list[Proposal]:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_proposals(path, (p for p in broken()))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


def test_write_rejects_bad_targets(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="不支持的文件类型"):
        write_proposals(tmp_path / "out.txt", [])
    with pytest.raises(RecordError, match="不存在"):
        write_proposals(tmp_path / "missing" / "out.csv", [])
    bad = Proposal(id="1", title="甲", content="", extra={"标题": "x"})
    with pytest.raises(RecordError, match="不能写出"):
        write_proposals(tmp_path / "out.csv", [bad])


# ---------------------------------------------------------------------------------------------
# Validation


def test_missing_columns_name_file_column_and_headers(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in.csv", "编号,备注\n1,x\n")
    error = read_error(path)
    text = str(error)
    assert str(path) in text
    assert "缺少必需的案由列" in text and "title" in text
    assert "编号、备注" in text
    assert [i.column for i in error.issues] == ["title"]


def test_missing_header_row_does_not_echo_the_first_row(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in.csv", f"1,关于加强的建议,{PROPOSER}\n2,其他,李四\n")
    text = str(read_error(path))
    assert "是否缺少表头行" in text
    assert PROPOSER not in text


def test_all_row_problems_are_collected(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "in.csv",
        "id,title,content,year,time\n"
        "1,甲,,2024,\n"
        ",乙,,,\n"  # row 3: empty id
        "3,,,,\n"  # row 4: no title or content
        "1,丙,,,\n"  # row 5: duplicate of row 2
        "5,丁,,二〇二四,\n"  # row 6: bad year
        "6,戊,,,2024年13月1日\n"  # row 7: bad time
        "7,己,,2024.5,\n",  # row 8: not an integer
    )
    error = read_error(path)
    found = [(i.row, i.column) for i in error.issues]
    assert found == [(3, "id"), (4, None), (5, "id"), (6, "year"), (7, "time"), (8, "year")]
    text = str(error)
    assert f"{path}:5:id: 提案号 '1' 重复（第 2 行已有）" in text
    assert "案由和内容都为空" in text
    assert "'2024年13月1日'" in text  # date-like bad values are quoted to help fix them
    assert "'二〇二四'" not in text  # free text is not quoted: it may be personal data


def test_error_lists_are_capped(tmp_path: Path) -> None:
    body = "".join(f"{i},,\n" for i in range(150))
    error = read_error(write_csv(tmp_path / "in.csv", "id,title,content\n" + body))
    assert len(error.issues) == 100
    assert str(error).endswith("……另有 50 处未列出")
    assert str(error).count("\n") == 101


def test_empty_and_header_only_files(tmp_path: Path) -> None:
    for name, data in [("empty.csv", ""), ("blank.csv", "\n\n \n"), ("empty.jsonl", "\n")]:
        assert "empty" in str(read_error(write_csv(tmp_path / name, data)))
    assert "没有数据行" in str(read_error(write_csv(tmp_path / "h.csv", "id,title\n")))
    assert "没有数据行" in str(read_error(write_xlsx(tmp_path / "h.xlsx", [["id", "title"]])))
    assert "empty" in str(read_error(write_xlsx(tmp_path / "e.xlsx", [])))


def test_max_rows(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in.csv", "id,title\n" + "".join(f"{i},t\n" for i in range(30)))
    assert len(read_proposals(path, max_rows=30)) == 30
    assert "数据超过 29 行" in str(read_error(path, max_rows=29))


def test_duplicate_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in.csv", "id,标题,title\n1,甲,乙\n")
    assert "都表示案由（title）" in str(read_error(path))


# ---------------------------------------------------------------------------------------------
# Formulas


def test_xlsx_formula_and_error_cells_are_named(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "f.xlsx",
        [["id", "title", "类别"], [1, '=CONCAT("a","b")', "教育"], [2, "乙", "#N/A"]],
    )
    error = read_error(path)
    assert [(i.row, i.column) for i in error.issues] == [(2, "title"), (3, "类别")]
    assert "单元格 B2 是公式" in error.issues[0].message
    assert "单元格 C3 含有 Excel 错误值 #N/A" in error.issues[1].message
    with pytest.raises(RecordError, match="单元格 B2 是公式"):
        read_table(path)


@pytest.mark.parametrize(
    "value", ["=SUM(A1:A3)", "=A1", "=$B$2", "+A1", "-SUM(1)", "@SUM(A1)", "=cmd|' /C calc'!A0"]
)
def test_csv_formula_like_values_are_errors(tmp_path: Path, value: str) -> None:
    path = tmp_path / "in.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(
            [["id", "title", "main_unit"], ["1", value, "局"], ["2", "甲", value]]
        )
    error = read_error(path)
    assert [(i.row, i.column) for i in error.issues] == [(2, "title"), (3, "main_unit")]
    assert "电子表格公式" in error.issues[0].message


@pytest.mark.parametrize("value", ["+86 138 0000 0000", "-加强管理", "=", "= 见附件", "@所有人"])
def test_csv_ordinary_text_is_not_a_formula(tmp_path: Path, value: str) -> None:
    path = write_csv(tmp_path / "in.csv", f'id,title\n1,"{value}"\n')
    [p] = read_proposals(path)
    assert p.title == value


# ---------------------------------------------------------------------------------------------
# Hostile input and privacy


def test_length_limits_name_row_and_column_without_dumping_text(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "in.csv",
        "id,title,content,proposer,备注\n"
        f"1,{'题' * 301},短,{PROPOSER},x\n"
        f"2,短,{'文' * 30_001},{PROPOSER},x\n"
        f"3,短,短,{PROPOSER * 700},{'注' * 2001}\n"
        f"4,{'题' * 300},{'文' * 30_000},{PROPOSER},{'注' * 2000}\n",
    )
    error = read_error(path)
    assert [(i.row, i.column) for i in error.issues] == [
        (2, "title"),
        (3, "content"),
        (4, "proposer"),
        (4, "备注"),
    ]
    text = str(error)
    assert "有 301 个字符，超过 300 个字符的上限" in text
    assert "文" * 21 not in text and "注" * 21 not in text
    assert PROPOSER not in text


def test_hostile_strings_are_normalised(tmp_path: Path) -> None:
    records = [
        {
            "id": "x1",
            "title": "<script>alert('x')</script>",
            "content": "\u202e倒序\u200f\x00\x1b[31m红",
        },
        {"id": "x2", "title": "\u200b", "content": "正文\t\t\t尾\r\n\r\n\r\n\r\n末"},
    ]
    path = tmp_path / "h.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    first, second = read_proposals(path)
    assert first.title == "<script>alert('x')</script>"
    assert first.content == "倒序[31m红"
    assert (second.title, second.content) == ("", "正文 尾\n\n末")


def test_jsonl_bad_lines_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(
        '{"id": 1, "title": "甲"}\n\n{"id": 2, "title": \n[1, 2]\n{"id": 3, "title": {"a": 1}}\n',
        encoding="utf-8",
    )
    error = read_error(path)
    assert [(i.row, i.column) for i in error.issues] == [(3, None), (4, None), (5, "title")]
    assert "不是有效的 JSON" in error.issues[0].message
    assert "应是一个 JSON 对象，这一行是数组" in error.issues[1].message


def test_proposer_never_in_repr_or_errors(tmp_path: Path) -> None:
    p = Proposal(id="1", title="甲", content="乙", proposer=PROPOSER)
    assert PROPOSER not in repr(p) and PROPOSER not in str(p)
    assert p.to_dict()["proposer"] == PROPOSER
    path = write_csv(
        tmp_path / "in.csv",
        "id,title,proposer,year,time\n"
        f"1,,{PROPOSER},{PROPOSER},{PROPOSER}\n"
        f"1,=SUM(A1),{PROPOSER},2024,\n",
    )
    error = read_error(path)
    assert len(error.issues) >= 4
    assert PROPOSER not in str(error) and PROPOSER not in repr(error.issues)
    # Even a proposer value that equals an id is masked in that row's messages.
    path = write_csv(
        tmp_path / "in2.csv", f"id,title,proposer\n{PROPOSER},甲,\n{PROPOSER},乙,{PROPOSER}\n"
    )
    assert PROPOSER not in str(read_error(path))
