"""Tests for model.tables: decoding files and reading CSV / XLSX / JSONL as raw tables."""

from __future__ import annotations

import pickle
import random
import zipfile
from pathlib import Path

import pytest
from table_files import write_csv, write_xlsx

from model.tables import (
    RecordError,
    RecordIssue,
    escape_csv,
    looks_like_formula,
    read_table,
    unescape_csv,
)


def read_error(path: Path, **kwargs: int) -> RecordError:
    with pytest.raises(RecordError) as info:
        read_table(path, **kwargs)
    return info.value


# ---------------------------------------------------------------------------------------------
# Reading


def test_read_table_returns_raw_text(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "topics.csv", "\ufeff topic_id ,题目\nT1, 题目一 \n\nT2,题目二\n")
    headers, rows = read_table(path)
    assert headers == ["topic_id", "题目"]
    assert rows == [{"topic_id": "T1", "题目": " 题目一 "}, {"topic_id": "T2", "题目": "题目二"}]


def test_read_table_jsonl_union_of_keys(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"a": 1, "b": ["x", "y"]}\n\n{"c": null}\n', encoding="utf-8")
    headers, rows = read_table(path)
    assert headers == ["a", "b", "c"]
    assert rows == [{"a": "1", "b": "x、y", "c": ""}, {"a": "", "b": "", "c": ""}]


def test_gb18030_input(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "gb.csv", "提案号,案由,类别\n1,关于加强垃圾分类的建议,环境保护\n", "gb18030"
    )
    headers, rows = read_table(path)
    assert headers == ["提案号", "案由", "类别"]
    assert rows == [{"提案号": "1", "案由": "关于加强垃圾分类的建议", "类别": "环境保护"}]


def test_utf16_input(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "u16.csv", "\ufeffid\ttitle\n1\t标题\n", "utf-16-le")
    assert read_table(path) == (["id", "title"], [{"id": "1", "title": "标题"}])


def test_record_issue_format() -> None:
    assert str(RecordIssue("a.csv", 3, "title", "bad")) == "a.csv:3:title: bad"
    assert str(RecordIssue("a.csv", None, None, "bad")) == "a.csv: bad"
    error = pickle.loads(pickle.dumps(RecordError([RecordIssue("a.csv", 2, None, "x")])))
    assert error.issues == [RecordIssue("a.csv", 2, None, "x")]


def test_missing_file_and_unsupported_types(tmp_path: Path) -> None:
    assert "找不到文件" in str(read_error(tmp_path / "nope.csv"))
    assert "找不到文件" in str(read_error(tmp_path / "nope.xlsx"))
    assert "不支持的文件类型 '.docx'" in str(read_error(tmp_path / "x.docx"))
    assert "另存为 .xlsx" in str(read_error(tmp_path / "x.xls"))


def test_csv_with_too_many_fields(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in.csv", "id,title\n1,甲,乙\n")
    assert "该行有 3 个字段，而表头只有 2 列" in str(read_error(path))


# ---------------------------------------------------------------------------------------------
# Unreadable files


def test_undecodable_bytes_name_the_offset(tmp_path: Path) -> None:
    data = "id,title\n1,关于加强养老服务的建议\n".encode() + b"2,\xff\xfe\n"
    path = tmp_path / "bad.csv"
    path.write_bytes(data)
    text = str(read_error(path))
    offset = data.index(b"\xff")
    assert f"第 {offset} 字节" in text and str(path) in text


def test_binary_junk(tmp_path: Path) -> None:
    rng = random.Random(0)
    for i in range(5):
        path = tmp_path / f"junk{i}.csv"
        path.write_bytes(bytes(rng.randrange(256) for _ in range(2000)))
        error = read_error(path)
        assert str(path) in str(error) and len(error.issues) == 1


@pytest.mark.parametrize("suffix", [".xlsx", ".csv", ".jsonl"])
def test_random_bytes_never_leak_a_raw_traceback(tmp_path: Path, suffix: str) -> None:
    rng = random.Random(1)
    path = tmp_path / f"junk{suffix}"
    path.write_bytes(b"PK\x03\x04" + bytes(rng.randrange(256) for _ in range(500)))
    assert read_error(path).issues


def test_broken_xlsx_files(tmp_path: Path) -> None:
    good = write_xlsx(
        tmp_path / "good.xlsx", [["id", "title"], *[[i, "甲" * 50] for i in range(200)]]
    )
    data = good.read_bytes()
    (tmp_path / "cut.xlsx").write_bytes(data[: len(data) // 2])
    assert "已损坏或不完整" in str(read_error(tmp_path / "cut.xlsx"))
    (tmp_path / "text.xlsx").write_text("id,title\n1,甲\n", encoding="utf-8")
    assert "不是 zip 压缩包" in str(read_error(tmp_path / "text.xlsx"))
    (tmp_path / "old.xlsx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600)
    assert "旧版 Office 文件" in str(read_error(tmp_path / "old.xlsx"))
    with zipfile.ZipFile(tmp_path / "doc.xlsx", "w") as zf:
        zf.writestr("word/document.xml", "<w:document/>")
        zf.writestr("[Content_Types].xml", "<Types/>")
    assert "Word 文档" in str(read_error(tmp_path / "doc.xlsx"))
    (tmp_path / "zip.csv").write_bytes(data)
    assert "zip 压缩包" in str(read_error(tmp_path / "zip.csv"))


# ---------------------------------------------------------------------------------------------
# The formula rule


@pytest.mark.parametrize(
    "value", ["=SUM(A1:A3)", "=A1", "=$B$2", "+A1", "-SUM(1)", "@SUM(A1)", "=cmd|' /C calc'!A0"]
)
def test_formula_like_values(value: str) -> None:
    assert looks_like_formula(value)
    assert escape_csv(value) == "'" + value
    assert unescape_csv(escape_csv(value)) == value


@pytest.mark.parametrize("value", ["+86 138 0000 0000", "-加强管理", "=", "= 见附件", "@所有人"])
def test_ordinary_text_is_not_a_formula(value: str) -> None:
    # The reader takes these as text; writers still protect them (model.formulas: any
    # leading = + - @), and the reader removes that apostrophe again.
    assert not looks_like_formula(value)
    assert unescape_csv(value) == value
    assert escape_csv(value) == "'" + value and unescape_csv(escape_csv(value)) == value


def test_csv_formula_values_are_unescaped_by_read_table(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in.csv", "a,b\n'=A1,'plain\n")
    assert read_table(path)[1] == [{"a": "=A1", "b": "'plain"}]
