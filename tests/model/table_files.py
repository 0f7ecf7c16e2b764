"""Write small CSV and XLSX files for the table and record reader tests."""

from __future__ import annotations

from pathlib import Path

import openpyxl


def write_csv(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def write_xlsx(path: Path, rows: list[list[object]], sheet: str = "Sheet1") -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = sheet
    for row in rows:
        ws.append(row)
    wb.save(path)
    return path
