"""Exports: the year's 交办 list as XLSX, and reviewed decisions as training data.

Every cell goes through the one formula rule of :mod:`model.formulas`: in the XLSX, text a
spreadsheet could run (``=``, ``+``, ``-``, ``@``, tab or CR first, also after spaces or in
full-width form) keeps its text and gets the ``quotePrefix`` style, so ``=HYPERLINK(...)`` shows
as typed and never runs; the training CSV gets a leading apostrophe (written by
``model.records.write_proposals``).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from model.formulas import protect_xlsx_cell
from service.models import Proposal
from service.review import views

ASSIGNMENT_HEADER = ("提案号", "案由", "类别", "主办单位", "协办单位", "并案组", "审核状态")
STATUS_TEXT = {"reviewed": "已审核", "pending": "待审核"}


def assignment_rows(session: Session, year: int) -> list[list[Any]]:
    """One row per proposal of the year: current (decided, else imported) labels."""
    props = list(
        session.scalars(select(Proposal).where(Proposal.year == year).order_by(Proposal.pid))
    )
    rows = []
    for v in views(session, props):
        c = v.current
        rows.append(
            [
                v.pid,
                v.title,
                c.get("category") or "",
                c.get("main_unit") or "",
                "、".join(c.get("co_units") or []),
                c.get("merge_group") or "",
                STATUS_TEXT[v.status],
            ]
        )
    return rows


def assignments_xlsx(session: Session, year: int) -> bytes:
    """The 交办 list as an XLSX workbook (one sheet), formula-like cells neutralised."""
    import openpyxl
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = f"{year}年交办清单"
    ws.append(list(ASSIGNMENT_HEADER))
    for row in assignment_rows(session, year):
        ws.append([ILLEGAL_CHARACTERS_RE.sub("", c) if isinstance(c, str) else c for c in row])
        for cell in ws[ws.max_row]:
            protect_xlsx_cell(cell)
    for col, width in zip("ABCDEFG", (14, 50, 14, 24, 36, 16, 10), strict=True):
        ws.column_dimensions[col].width = width
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def training_records(session: Session, year: int) -> list[Any]:
    """Proposals with reviewer-confirmed labels only, as ``model.records.Proposal``.

    Labels the import brought but no reviewer confirmed are left out; a proposal without any
    confirmed label is not exported. The proposer is never exported.
    """
    from model.records import Proposal as Record

    props = list(
        session.scalars(select(Proposal).where(Proposal.year == year).order_by(Proposal.pid))
    )
    out = []
    for p, v in zip(props, views(session, props), strict=True):
        decided = v.decided & {"category", "main_unit", "co_units"}
        if not decided:
            continue
        out.append(
            Record(
                id=p.pid,
                year=p.year,
                title=p.title,
                content=p.content,
                category=v.current["category"] if "category" in decided else None,
                main_unit=v.current["main_unit"] if "main_unit" in decided else None,
                co_units=list(v.current["co_units"] or []) if "co_units" in decided else [],
                time=p.time,
            )
        )
    return out


def training_file(session: Session, year: int, fmt: str, folder: Path) -> Path:
    """Write the training export (``csv`` or ``jsonl``) with ``model.records.write_proposals``."""
    from model.records import write_proposals

    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"unknown format {fmt!r}; use csv or jsonl")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"training_{year}.{fmt}"
    write_proposals(path, training_records(session, year))
    return path
