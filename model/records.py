"""Proposal records: the :class:`Proposal` type, reading tables into validated records, writing.

The table formats and column names are DESIGN.md's "Proposal record" contract; the raw file
reading (decoding, CSV/XLSX/JSONL, formula cells) lives in :mod:`model.tables`. Reading is
all-or-nothing: every problem in a file is collected into one
:class:`model.tables.RecordError`, and no partial list is ever returned, so nothing is
half-imported.

Privacy: the proposer's value is personal data. It is excluded from ``repr(Proposal)`` and no
error message ever quotes it (nor any cell value other than short prefixes of titles and
contents, ids, years and times).

Spreadsheet formulas (see :mod:`model.tables` for the rule) are errors in the title, content,
category and unit columns of a CSV. :func:`write_proposals` protects CSV values that would look
like a formula with a leading apostrophe, and the reader removes that one apostrophe again, so
written files read back unchanged.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.tables import (
    ErrorCell,
    FormulaCell,
    IssueLog,
    Table,
    cell_text,
    error_cell_message,
    escape_csv,
    format_datetime,
    formula_message,
    is_empty,
    load_table,
    looks_like_formula,
    normalize_header,
    read_table,
    table_kind,
    unescape_csv,
)
from model.text import normalize_label, normalize_text

__all__ = [
    "CANONICAL_COLUMNS",
    "COLUMN_ALIASES",
    "CELL_MAX_CHARS",
    "CONTENT_MAX_CHARS",
    "TITLE_MAX_CHARS",
    "Proposal",
    "canonical_column",
    "parse_time",
    "read_proposals",
    "read_table",  # re-exported from model.tables for older callers
    "write_proposals",
]

COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("提案号", "编号", "留言编号"),
    "year": ("年度", "届次年份"),
    "title": ("案由", "标题", "题目", "留言主题"),
    "content": ("内容", "正文", "提案内容", "留言详情"),
    "proposer": ("提案人", "提案者"),
    "category": ("类别", "分类", "一级标签", "一级分类"),
    "main_unit": ("主办单位", "承办单位"),
    "co_units": ("协办单位", "会办单位"),
    "time": ("提交时间", "留言时间"),
}
CANONICAL_COLUMNS: tuple[str, ...] = tuple(COLUMN_ALIASES)

TITLE_MAX_CHARS = 300
CONTENT_MAX_CHARS = 30_000
CELL_MAX_CHARS = 2_000
_PREFIX_CHARS = 20
_YEAR_RANGE = (1900, 2100)

_CO_UNIT_SEPARATORS = re.compile(r"[、，,;；\n]")
_FORMULA_CHECKED = ("title", "content", "category", "main_unit", "co_units")


def _alias_key(header: str) -> str:
    return re.sub(r"[\s_\-]+", "", header.lower())


_ALIAS_TO_COLUMN: dict[str, str] = {
    _alias_key(name): column
    for column, aliases in COLUMN_ALIASES.items()
    for name in (column, *aliases)
}


# --------------------------------------------------------------------------------------------
# Public data types


@dataclass
class Proposal:
    """One proposal (提案) as read from a table; text fields are already normalised."""

    id: str
    title: str
    content: str
    year: int | None = None
    proposer: str | None = field(default=None, repr=False)  # personal data: never shown
    category: str | None = None
    main_unit: str | None = None
    co_units: list[str] = field(default_factory=list)
    time: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """Title and content joined by a newline (whichever of them are present)."""
        return "\n".join(part for part in (self.title, self.content) if part)

    def to_dict(self) -> dict[str, Any]:
        """All fields as a plain dict (copies of the list and dict), ``extra`` nested."""
        return {
            "id": self.id,
            "year": self.year,
            "title": self.title,
            "content": self.content,
            "proposer": self.proposer,
            "category": self.category,
            "main_unit": self.main_unit,
            "co_units": list(self.co_units),
            "time": self.time,
            "extra": dict(self.extra),
        }


# --------------------------------------------------------------------------------------------
# Headers


def canonical_column(header: str) -> str | None:
    """The canonical column a header stands for (``"案由"`` → ``"title"``), or None.

    English names match case-insensitively and ignore spaces, ``_`` and ``-``
    (``"Main Unit"`` → ``"main_unit"``).
    """
    return _ALIAS_TO_COLUMN.get(_alias_key(normalize_header(header)))


# --------------------------------------------------------------------------------------------
# Field parsing

_DATE_TIME = re.compile(
    r"^(\d{4})\s*(?:[-/.]|年)\s*(\d{1,2})\s*(?:[-/.]|月)\s*(\d{1,2})\s*日?"
    r"(?:(?:\s*|T)(\d{1,2})\s*[:：时]\s*(\d{1,2})\s*(?:[:：分]\s*(\d{1,2})\s*秒?)?\s*分?)?$"
)


def parse_time(value: Any) -> tuple[str, int]:
    """Parse a submission time into ``(iso_string, year)``; raises ValueError if impossible.

    Accepts ``2024-01-05``, ``2024/1/5``, ``2024.1.5``, ``2024年1月5日``, each optionally with
    a time (``10:30``, ``10:30:00``, ``10时30分``), ISO 8601 strings, and datetime/date
    objects (Excel cells). Dates come back as ``YYYY-MM-DD``, times as ``YYYY-MM-DD HH:MM:SS``.
    """
    if isinstance(value, dt.datetime):
        return format_datetime(value), value.year
    if isinstance(value, dt.date):
        return value.isoformat(), value.year
    if not isinstance(value, str):
        raise ValueError("not a date")
    text = normalize_text(value)
    match = _DATE_TIME.match(text)
    if match:
        y, mo, d, h, mi, s = (int(g) if g else None for g in match.groups())
        assert y is not None and mo is not None and d is not None
        if h is None:
            return dt.date(y, mo, d).isoformat(), y
        stamp = dt.datetime(y, mo, d, h, mi or 0, s or 0)
        return stamp.isoformat(sep=" "), y
    parsed = dt.datetime.fromisoformat(text)
    return format_datetime(parsed), parsed.year


def _parse_year(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int):
        year = value
    elif isinstance(value, float) and value.is_integer():
        year = int(value)
    elif isinstance(value, str):
        match = re.fullmatch(r"(\d{4})(?:\.0+)?\s*年?", normalize_text(value))
        if not match:
            raise ValueError
        year = int(match.group(1))
    else:
        raise ValueError
    if not _YEAR_RANGE[0] <= year <= _YEAR_RANGE[1]:
        raise ValueError
    return year


def _short(value: Any) -> str:
    text = normalize_text(cell_text(value)) if not isinstance(value, dict) else "{...}"
    return text if len(text) <= _PREFIX_CHARS else text[:_PREFIX_CHARS] + "…"


_DATELIKE = re.compile(r"[0-9\s\-/.:：T年月日时分秒]*")


def _quoted_if_datelike(value: Any) -> str:
    """Quote a bad year/time only if it is made of digits and date marks: never free text."""
    text = _short(value)
    return repr(text) if _DATELIKE.fullmatch(text) else "the value"


def _looks_like_proposal_header(headers: list[str]) -> bool:
    return any(canonical_column(h) == "id" for h in headers)


# --------------------------------------------------------------------------------------------
# Proposals


class _RowReader:
    """Turns one table row into a Proposal, reporting problems instead of raising."""

    def __init__(self, table: Table, columns: dict[str, str], issues: IssueLog) -> None:
        self.table = table
        self.columns = columns  # canonical name -> header as in the file
        self.issues = issues

    def text(self, row: int, record: dict[str, Any], column: str, *, label: bool = False) -> str:
        """A canonical column's value, normalised and checked ("" when absent or bad)."""
        header = self.columns.get(column)
        if header is None:
            return ""
        return self.cell(row, header, record.get(header), column, label=label)

    def cell(self, row: int, header: str, value: Any, column: str, *, label: bool = False) -> str:
        if isinstance(value, FormulaCell):
            self.issues.add(row, header, formula_message(value))
            return ""
        if isinstance(value, ErrorCell):
            self.issues.add(row, header, error_cell_message(value))
            return ""
        try:
            raw = cell_text(value)
        except TypeError as exc:
            self.issues.add(row, header, str(exc))
            return ""
        if self.table.kind == "csv":
            if column in _FORMULA_CHECKED and looks_like_formula(raw.lstrip()):
                self.issues.add(
                    row,
                    header,
                    "the value looks like a spreadsheet formula (starts with =, +, - or @ and a "
                    "function or cell reference); store the text, not a formula",
                )
                return ""
            raw = unescape_csv(raw)
        text = normalize_label(raw) if label else normalize_text(raw)
        limit = {"title": TITLE_MAX_CHARS, "content": CONTENT_MAX_CHARS}.get(column, CELL_MAX_CHARS)
        if len(text) > limit:
            # Quote a short prefix of a title or content to help find it; nothing else.
            shown = f" ({_short(text)!r})" if column in ("title", "content") else ""
            self.issues.add(
                row, header, f"{len(text)} characters is too long (limit {limit}){shown}"
            )
            return ""
        return text

    def co_units(self, row: int, record: dict[str, Any]) -> list[str]:
        header = self.columns.get("co_units")
        if header is None:
            return []
        value = record.get(header)
        parts = value if isinstance(value, list) else [value]
        units: list[str] = []
        for part in parts:
            text = self.cell(row, header, part, "co_units", label=False)
            for unit in _CO_UNIT_SEPARATORS.split(text):
                unit = normalize_label(unit)
                if unit and unit not in units:
                    units.append(unit)
        return units

    def year_and_time(self, row: int, record: dict[str, Any]) -> tuple[int | None, str | None]:
        year: int | None = None
        time: str | None = None
        time_year: int | None = None
        header = self.columns.get("time")
        value = record.get(header) if header else None
        if header and not is_empty(value):
            if isinstance(value, FormulaCell | ErrorCell):
                self.cell(row, header, value, "time")
            else:
                try:
                    time, time_year = parse_time(value)
                except (ValueError, TypeError):
                    self.issues.add(
                        row,
                        header,
                        f"cannot read {_quoted_if_datelike(value)} as a date "
                        "(use 2024-01-05, 2024/1/5 or 2024年1月5日, optionally with a time)",
                    )
        header = self.columns.get("year")
        value = record.get(header) if header else None
        if header and not is_empty(value):
            if isinstance(value, FormulaCell | ErrorCell):
                self.cell(row, header, value, "year")
            else:
                try:
                    year = _parse_year(value)
                except ValueError:
                    self.issues.add(
                        row,
                        header,
                        f"{_quoted_if_datelike(value)} is not a year (an integer from "
                        f"{_YEAR_RANGE[0]} to {_YEAR_RANGE[1]})",
                    )
        return (year if year is not None else time_year), time

    def extra(self, row: int, record: dict[str, Any], extra_headers: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for header in extra_headers:
            value = record.get(header)
            if header == "extra" and isinstance(value, dict) and self.table.kind == "jsonl":
                # Proposal.to_dict() nests extras; accept that shape back.
                for key, inner in value.items():
                    name = normalize_header(key)
                    text = self.cell(row, f"extra.{name}", inner, "extra")
                    if text:
                        out[name] = text
                continue
            text = self.cell(row, header, value, header)
            if text:
                out[header] = text
        return out


def _map_columns(table: Table, issues: IssueLog) -> tuple[dict[str, str], list[str]]:
    """Map canonical columns to the file's headers; the rest are extra columns."""
    columns: dict[str, str] = {}
    extras: list[str] = []
    for header in table.headers:
        column = canonical_column(header)
        if column is None:
            extras.append(header)
        elif column in columns:
            issues.add(
                None,
                header,
                f"columns {columns[column]!r} and {header!r} both mean {column!r}; keep one",
            )
        else:
            columns[column] = header
    missing = []
    if "id" not in columns:
        missing.append("id")
    if "title" not in columns and "content" not in columns:
        missing.append("title")
    if missing:
        if columns:
            found = "headers found: " + ", ".join(repr(h) for h in table.headers)
        else:
            # No header is recognised: the first row may be data (names included), so the
            # values are not echoed.
            found = (
                f"none of the {len(table.headers)} headers in the first row is recognised; "
                "is the header row missing?"
            )
        for column in missing:
            wanted = ", ".join((column, *COLUMN_ALIASES[column]))
            if column == "title":
                wanted += "; or content: " + ", ".join(("content", *COLUMN_ALIASES["content"]))
            issues.add(None, column, f"missing required column ({wanted}); {found}")
    return columns, extras


def read_proposals(path: str | Path, *, max_rows: int = 100_000) -> list[Proposal]:
    """Read proposals from a CSV/TSV, XLSX or JSONL file (see DESIGN.md "Proposal record").

    Headers may be the canonical names or their Chinese aliases; other columns are kept in
    ``Proposal.extra``. In XLSX the sheet whose name contains 提案 is read, else the first
    sheet; the header may sit below a few title rows. All text is normalised
    (:func:`model.text.normalize_text`; category and units with
    :func:`model.text.normalize_label`). ``year`` is taken from ``time`` where absent.

    Raises:
        RecordError: listing every problem found (missing columns, empty or duplicate ids,
            rows without title and content, bad years or times, formula cells, over-long
            cells, undecodable or non-table files, empty files, more than ``max_rows`` rows).
            Nothing is returned unless the whole file is valid.
    """
    table, issues = load_table(path, max_rows, header_pick=_looks_like_proposal_header)
    columns, extra_headers = _map_columns(table, issues)
    if "id" not in columns or not ({"title", "content"} & columns.keys()):
        raise issues.error()
    reader = _RowReader(table, columns, issues)
    first_row_of: dict[str, int] = {}
    proposals: list[Proposal] = []
    for row, record in table.rows:
        if all(is_empty(v) for v in record.values()):
            continue  # a JSONL object with only empty fields, like a blank spreadsheet row
        proposer = reader.text(row, record, "proposer")
        issues.redact = proposer
        pid = reader.text(row, record, "id")
        title = reader.text(row, record, "title")
        content = reader.text(row, record, "content")
        if not pid:
            # A non-empty id that came back "" was already reported (formula, too long, ...).
            if is_empty(record.get(columns["id"])):
                issues.add(row, columns["id"], "the id is empty")
        elif pid in first_row_of:
            issues.add(
                row, columns["id"], f"duplicate id {pid!r} (also on row {first_row_of[pid]})"
            )
        else:
            first_row_of[pid] = row
        if (
            not title
            and not content
            and all(is_empty(record.get(columns.get(c, ""))) for c in ("title", "content"))
        ):
            issues.add(row, None, "both title and content are empty")
        year, time = reader.year_and_time(row, record)
        proposals.append(
            Proposal(
                id=pid,
                title=title,
                content=content,
                year=year,
                proposer=proposer or None,
                category=reader.text(row, record, "category", label=True) or None,
                main_unit=reader.text(row, record, "main_unit", label=True) or None,
                co_units=reader.co_units(row, record),
                time=time,
                extra=reader.extra(row, record, extra_headers),
            )
        )
    issues.redact = ""
    if issues:
        raise issues.error()
    if not proposals:
        raise issues.fail("the file has a header but no data rows")
    return proposals


# --------------------------------------------------------------------------------------------
# Writing


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, then rename over ``path``."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        # mkstemp creates the file private (0600); give it ordinary permissions.
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _proposal_cells(p: Proposal, extra_keys: list[str]) -> list[str | int | None]:
    return [
        p.id,
        p.year,
        p.title,
        p.content,
        p.proposer,
        p.category,
        p.main_unit,
        "、".join(p.co_units),
        p.time,
        *(p.extra.get(k) for k in extra_keys),
    ]


def write_proposals(path: str | Path, proposals: Iterable[Proposal]) -> None:
    """Write proposals as .csv (UTF-8 with BOM, for Excel), .xlsx or .jsonl, by extension.

    Columns are the canonical names, then every extra field in order of first appearance;
    co_units are joined with 、 (a list in JSONL). The file is written atomically, so a
    failure leaves any previous file untouched. Reading the result back with
    :func:`read_proposals` gives the same records (for records that are themselves valid:
    unique ids, normalised text, unit names without separators).

    Raises:
        RecordError: unsupported extension, missing folder, or an extra field whose name
            would be read back as a canonical column.
    """
    path = Path(path)
    issues = IssueLog(str(path))
    kind = table_kind(path, issues)
    if not path.parent.is_dir():
        raise issues.fail(f"the folder {str(path.parent)!r} does not exist")
    items = list(proposals)
    extra_keys = list(dict.fromkeys(k for p in items for k in p.extra))
    for key in extra_keys:
        if canonical_column(key) is not None or normalize_header(key) != key or not key:
            issues.add(None, key, "this extra field name cannot be written (reserved or empty)")
    if issues:
        raise issues.error()
    header = [*CANONICAL_COLUMNS, *extra_keys]
    if kind == "csv":
        _atomic_write(path, lambda tmp: _write_csv(tmp, header, items, extra_keys, path))
    elif kind == "xlsx":
        _atomic_write(path, lambda tmp: _write_xlsx(tmp, header, items, extra_keys))
    else:
        _atomic_write(path, lambda tmp: _write_jsonl(tmp, items))


def _write_csv(
    tmp: Path, header: list[str], items: list[Proposal], extra_keys: list[str], final: Path
) -> None:
    tabbed = final.suffix.lower() == ".tsv"
    with tmp.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t" if tabbed else ",")
        writer.writerow(header)
        for p in items:
            cells = _proposal_cells(p, extra_keys)
            writer.writerow(
                ["" if c is None else escape_csv(c) if isinstance(c, str) else c for c in cells]
            )


def _write_xlsx(tmp: Path, header: list[str], items: list[Proposal], extra_keys: list[str]) -> None:
    import openpyxl
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("提案")

    def cell(value: str | int | None) -> WriteOnlyCell:
        if isinstance(value, str):
            value = ILLEGAL_CHARACTERS_RE.sub("", value)
        c = WriteOnlyCell(ws, value=value)
        if isinstance(value, str) and value.startswith("="):
            c.data_type = "s"  # text that starts with "=", not a formula
        return c

    ws.append([cell(h) for h in header])
    for p in items:
        ws.append([cell(v) for v in _proposal_cells(p, extra_keys)])
    wb.save(tmp)


def _write_jsonl(tmp: Path, items: list[Proposal]) -> None:
    with tmp.open("w", encoding="utf-8", newline="\n") as fh:
        for p in items:
            record = p.to_dict()
            record.update(record.pop("extra"))  # extras as top-level keys, like any input file
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
