"""Hostile workbooks: zip bombs, sheets of empty rows and over-wide rows are refused quickly."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import openpyxl
import pytest

from model import tables
from model.tables import RecordError, read_table

_HEADER = (
    '<row r="1"><c r="A1" t="inlineStr"><is><t>id</t></is></c>'
    '<c r="B1" t="inlineStr"><is><t>title</t></is></c></row>'
    '<row r="2"><c r="A2" t="inlineStr"><is><t>1</t></is></c>'
    '<c r="B2" t="inlineStr"><is><t>关于加强养老服务的建议</t></is></c></row>'
)
_SHEET_HEAD = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
)
_SHEET_TAIL = b"</sheetData></worksheet>"


def _template(tmp_path: Path) -> Path:
    wb = openpyxl.Workbook()
    wb.active.title = "提案"
    wb.active.append(["id", "title"])
    path = tmp_path / "template.xlsx"
    wb.save(path)
    return path


def crafted_xlsx(
    tmp_path: Path, name: str, body: bytes, repeat: bytes = b"", times: int = 0
) -> Path:
    """A real workbook whose first sheet is ``body`` then ``repeat`` × ``times``, streamed."""
    template = _template(tmp_path)
    out = tmp_path / name
    with zipfile.ZipFile(template) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename != "xl/worksheets/sheet1.xml":
                dst.writestr(info, src.read(info.filename))
                continue
            with dst.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as fh:
                fh.write(_SHEET_HEAD + body)
                chunk = repeat * 65536
                for _ in range(times // 65536):
                    fh.write(chunk)
                fh.write(repeat * (times % 65536))
                fh.write(_SHEET_TAIL)
    return out


def _error(path: Path) -> RecordError:
    with pytest.raises(RecordError) as info:
        read_table(path)
    return info.value


def test_the_crafted_workbook_reads_when_small(tmp_path: Path) -> None:
    path = crafted_xlsx(tmp_path, "ok.xlsx", _HEADER.encode(), b"<row/>", 100)
    assert read_table(path) == (["id", "title"], [{"id": "1", "title": "关于加强养老服务的建议"}])


def test_a_sheet_expanding_past_the_size_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    # About 210 MB of empty <row/> elements in a file of a few hundred KB.
    path = crafted_xlsx(tmp_path, "bomb.xlsx", _HEADER.encode(), b"<row/>", 35 * 1024 * 1024)
    assert path.stat().st_size < 2 * 1024 * 1024
    started = time.perf_counter()
    error = _error(path)
    assert time.perf_counter() - started < 2.0  # the directory is read, not the XML
    [issue] = error.issues
    assert "超过 200 MB 的上限" in issue.message and "拒绝读取" in issue.message


def test_an_over_compressed_member_is_refused(tmp_path: Path) -> None:
    # 12 MB that compress about a thousand times: below the size limit, above the ratio.
    path = crafted_xlsx(tmp_path, "ratio.xlsx", _HEADER.encode(), b"<row/>", 2 * 1024 * 1024)
    started = time.perf_counter()
    [issue] = _error(path).issues
    assert time.perf_counter() - started < 2.0
    assert "压缩比异常" in issue.message and "xl/worksheets/sheet1.xml" in issue.message


def test_empty_rows_count_against_the_row_cap(tmp_path: Path) -> None:
    # One row far down the sheet: openpyxl walks every row in between as an empty row.
    far = f'<row r="{tables.XLSX_MAX_ROWS + 5}"/>'.encode()
    path = crafted_xlsx(tmp_path, "far.xlsx", _HEADER.encode() + far)
    [issue] = _error(path).issues
    assert f"工作表超过 {tables.XLSX_MAX_ROWS} 行（空行也计算在内）" in issue.message


def test_rows_wider_than_the_column_cap_are_refused(tmp_path: Path) -> None:
    wide = "".join(
        f'<c r="{openpyxl.utils.get_column_letter(i)}3" t="inlineStr"><is><t>x</t></is></c>'
        for i in range(1, tables.MAX_COLUMNS + 3)
    )
    path = crafted_xlsx(tmp_path, "wide.xlsx", (_HEADER + f'<row r="3">{wide}</row>').encode())
    [issue] = _error(path).issues
    assert issue.row == 3 and f"超过 {tables.MAX_COLUMNS} 列" in issue.message


def test_a_csv_header_wider_than_the_cap_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{i}" for i in range(60)) + "\n" + ",".join("1" * 60) + "\n")
    [issue] = _error(path).issues
    assert "超过 50 列的上限" in issue.message
