"""Proposal records and the CSV / XLSX / JSONL tables they come in.

The table formats and column names are DESIGN.md's "Proposal record" contract. Reading is
all-or-nothing: every problem in a file is collected into one :class:`RecordError`, and no
partial list is ever returned, so nothing is half-imported.

Privacy: the proposer's value is personal data. It is excluded from ``repr(Proposal)`` and no
error message ever quotes it (nor any cell value other than short prefixes of titles and
contents, ids, years and times).

Spreadsheet formulas. A formula's computed value is not stored reliably in files written by
other tools, so formula cells in XLSX (``data_type == "f"``) are errors. In CSV a value is
treated as a formula, and is an error in the title, content, category and unit columns, when it
starts with ``=`` followed by a function call (``=SUM(``), a cell reference (``=A1``, ``=$B$2``)
or a DDE call (``=cmd|``), or starts with ``+``, ``-`` or ``@`` followed by one of those (Excel
reads ``+A1`` and ``@SUM(`` as formulas too). Ordinary text such as ``+86 138…``, ``-加强…``
or ``=`` alone is not affected. :func:`write_proposals` protects CSV values that would look like
a formula with a leading apostrophe (the usual CSV-injection guard), and the reader removes that
one apostrophe again, so written files read back unchanged.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.text import normalize_label, normalize_text

__all__ = [
    "CANONICAL_COLUMNS",
    "COLUMN_ALIASES",
    "CELL_MAX_CHARS",
    "CONTENT_MAX_CHARS",
    "TITLE_MAX_CHARS",
    "Proposal",
    "RecordError",
    "RecordIssue",
    "canonical_column",
    "normalize_header",
    "parse_time",
    "read_proposals",
    "read_table",
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
_MAX_ISSUES = 100
_PREFIX_CHARS = 20
# Title rows ("2024年提案汇总表") above the real header are common in office exports.
_HEADER_SEARCH_ROWS = 10
_YEAR_RANGE = (1900, 2100)

_CO_UNIT_SEPARATORS = re.compile(r"[、，,;；\n]")
_FORMULA = re.compile(
    r"^[=+\-@]\s*[=+\-]?\s*"
    r"(?:[A-Za-z_][A-Za-z0-9_.]*\s*\(|\$?[A-Za-z]{1,3}\$?[0-9]+(?![0-9A-Za-z])|[A-Za-z0-9_]+\|)"
)
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


@dataclass(frozen=True)
class RecordIssue:
    """One problem in an input file.

    ``row`` is the row as the user sees it: the spreadsheet row for CSV/XLSX (the header is
    row 1, so the first data row is 2) and the line number for JSONL; None for file-level
    problems. ``column`` is the column's name as in the file (or canonical name), or None.
    """

    file: str
    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        parts = [self.file]
        if self.row is not None:
            parts.append(str(self.row))
        if self.column is not None:
            parts.append(self.column)
        return f"{':'.join(parts)}: {self.message}"


class RecordError(ValueError):
    """Every problem found in an input (at most 100 are kept); ``str()`` lists them."""

    def __init__(self, issues: list[RecordIssue], more: int = 0) -> None:
        self.issues: list[RecordIssue] = list(issues[:_MAX_ISSUES])
        self.more = more + max(0, len(issues) - _MAX_ISSUES)
        super().__init__(self._describe())

    def __reduce__(self) -> tuple[Any, ...]:
        return (RecordError, (self.issues, self.more))

    def _describe(self) -> str:
        total = len(self.issues) + self.more
        lines = [f"{total} problem{'s' if total != 1 else ''} found in the input:"]
        lines += [str(issue) for issue in self.issues]
        if self.more:
            lines.append(f"... and {self.more} more")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self._describe()


class _Issues:
    """Collects issues for one file, keeping the first 100 and counting the rest."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.kept: list[RecordIssue] = []
        self.more = 0
        # The current row's proposer value: masked out of any message as a last line of
        # defence (a shifted column can put a name where a date or year should be).
        self.redact = ""

    def add(self, row: int | None, column: str | None, message: str) -> None:
        if self.redact:
            message = message.replace(self.redact, "***")
        if len(self.kept) < _MAX_ISSUES:
            self.kept.append(RecordIssue(self.file, row, column, message))
        else:
            self.more += 1

    def __bool__(self) -> bool:
        return bool(self.kept)

    def error(self) -> RecordError:
        return RecordError(self.kept, self.more)

    def fail(self, message: str, row: int | None = None, column: str | None = None) -> RecordError:
        """Add a fatal issue and return the error to raise."""
        self.add(row, column, message)
        return self.error()


# --------------------------------------------------------------------------------------------
# Headers


def normalize_header(header: object) -> str:
    """A header cell as text: BOMs, control characters and surrounding whitespace removed, NFKC."""
    return normalize_text("" if header is None else str(header))


def canonical_column(header: str) -> str | None:
    """The canonical column a header stands for (``"案由"`` → ``"title"``), or None.

    English names match case-insensitively and ignore spaces, ``_`` and ``-``
    (``"Main Unit"`` → ``"main_unit"``).
    """
    return _ALIAS_TO_COLUMN.get(_alias_key(normalize_header(header)))


# --------------------------------------------------------------------------------------------
# Raw tables


@dataclass(frozen=True)
class _FormulaCell:
    coordinate: str


@dataclass(frozen=True)
class _ErrorCell:
    coordinate: str
    value: str


@dataclass
class _Table:
    file: str
    kind: str  # "csv", "xlsx" or "jsonl"
    headers: list[str]
    rows: list[tuple[int, dict[str, Any]]]


_KINDS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
_SUPPORTED = ".csv, .tsv, .xlsx, .jsonl"
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def _kind_of(path: Path, issues: _Issues) -> str:
    suffix = path.suffix.lower()
    if suffix == ".xls":
        raise issues.fail(
            "old Excel .xls files are not supported; open it in Excel and save as .xlsx or CSV"
        )
    if suffix not in _KINDS:
        raise issues.fail(f"unsupported file type {suffix or '(none)'!r}; use {_SUPPORTED}")
    return _KINDS[suffix]


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list):
        return all(_is_empty(v) for v in value)
    return False


def _decode(data: bytes, issues: _Issues) -> str:
    """Decode text: UTF-8 (BOM optional), UTF-16 with BOM, then GB18030."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise issues.fail(f"invalid UTF-16 text at byte offset {exc.start}") from None
    if data.startswith(_ZIP_MAGIC):
        raise issues.fail("this is a zip archive (an .xlsx or .docx?), not a text table")
    if data.startswith(_OLE_MAGIC):
        raise issues.fail("this is an old Office file (.xls or .doc?), not a text table")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise issues.fail(f"binary data (a NUL byte at byte offset {nul}), not a text table")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = exc.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        # A file whose first part is valid multi-byte UTF-8 is UTF-8 with a damaged byte:
        # GB18030 would "decode" it into plausible-looking garbage, so report it instead.
        # (Real GB18030 text almost never forms several valid UTF-8 sequences by chance.)
        prefix = data[:bad].decode("utf-8-sig")
        non_ascii = len(prefix) - len(prefix.encode("ascii", "ignore"))
        if non_ascii < 4:
            try:
                return data.decode("gb18030")
            except UnicodeDecodeError:
                pass
        raise issues.fail(
            f"cannot decode the file as UTF-8 (invalid byte 0x{data[bad]:02x} at byte offset "
            f"{bad}) or GB18030; save it as 'CSV UTF-8'"
        ) from None


def _read_bytes(path: Path, issues: _Issues) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise issues.fail("file not found") from None
    except IsADirectoryError:
        raise issues.fail("is a directory, not a file") from None
    except OSError as exc:
        raise issues.fail(f"cannot read the file ({exc.strerror or type(exc).__name__})") from None


def _read_grid_csv(path: Path, issues: _Issues, limit: int) -> list[tuple[int, list[Any]]]:
    text = _decode(_read_bytes(path, issues), issues)
    first_line = text.split("\n", 1)[0]
    tabbed = path.suffix.lower() == ".tsv" or ("\t" in first_line and "," not in first_line)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if tabbed else ",")
    grid: list[tuple[int, list[Any]]] = []
    row = 0
    try:
        for row, cells in enumerate(reader, start=1):
            if any(c.strip() for c in cells):
                grid.append((row, cells))
                if len(grid) > limit:
                    break
    except csv.Error as exc:
        raise issues.fail(f"malformed CSV ({exc})", row=row + 1) from None
    return grid


def _xlsx_problem(path: Path) -> str:
    """Explain why a file named .xlsx is not a readable workbook."""
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError:
        head = b""
    if head.startswith(_OLE_MAGIC):
        return "this is an old Office file (.xls, .doc, or a password-protected workbook)"
    if not head.startswith(_ZIP_MAGIC):
        return "this is not an Excel .xlsx file (not a zip archive)"
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError, EOFError):
        return "the .xlsx file is damaged or truncated"
    if "word/document.xml" in names:
        return "this is a Word document renamed to .xlsx"
    if "xl/workbook.xml" not in names:
        return "this zip archive is not an Excel workbook"
    return "the .xlsx file is damaged or truncated"


def _xlsx_value(cell: Any) -> Any:
    if cell.data_type == "f":
        return _FormulaCell(cell.coordinate)
    if cell.data_type == "e":
        return _ErrorCell(cell.coordinate, str(cell.value))
    return cell.value


def _read_grid_xlsx(path: Path, issues: _Issues, limit: int) -> list[tuple[int, list[Any]]]:
    if not path.exists():
        raise issues.fail("file not found")
    import openpyxl  # heavy; only needed for spreadsheets

    grid: list[tuple[int, list[Any]]] = []
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=False)
        try:
            sheets = wb.worksheets
            if not sheets:
                raise issues.fail("the workbook has no worksheet")
            ws = next((s for s in sheets if "提案" in s.title), sheets[0])
            ws.reset_dimensions()  # trust the cells, not the (often wrong) stored dimensions
            for row, cells in enumerate(ws.iter_rows(), start=1):
                values = [_xlsx_value(c) for c in cells]
                if not all(_is_empty(v) for v in values):
                    grid.append((row, values))
                    if len(grid) > limit:
                        break
        finally:
            wb.close()
    except RecordError:
        raise
    except Exception:  # openpyxl and zipfile raise many types for damaged files
        raise issues.fail(_xlsx_problem(path)) from None
    return grid


def _grid_to_table(
    grid: list[tuple[int, list[Any]]],
    file: str,
    kind: str,
    issues: _Issues,
    header_pick: Callable[[list[str]], bool] | None,
) -> _Table:
    if not grid:
        raise issues.fail("the file is empty")
    header_at = 0
    if header_pick is not None:
        for i, (_, cells) in enumerate(grid[:_HEADER_SEARCH_ROWS]):
            if header_pick([_header_text(c) for c in cells]):
                header_at = i
                break
    header_row, header_cells = grid[header_at]
    body = grid[header_at + 1 :]
    width = max([len(header_cells)] + [len(cells) for _, cells in body])
    names: list[str | None] = []
    seen: dict[str, int] = {}
    for i in range(width):
        name = _header_text(header_cells[i]) if i < len(header_cells) else ""
        if not name:
            if not any(i < len(cells) and not _is_empty(cells[i]) for _, cells in body):
                names.append(None)  # an unnamed, empty column: Excel's trailing blanks
                continue
            if kind == "csv" and i >= len(header_cells):
                names.append(None)  # reported per row below: more fields than the header
                continue
            name = f"column_{i + 1}"
        if name in seen:
            issues.add(
                header_row,
                name,
                f"column {name!r} appears twice (columns {seen[name]} and {i + 1})",
            )
        seen[name] = i + 1
        names.append(name)
    rows: list[tuple[int, dict[str, Any]]] = []
    for row, cells in body:
        overflow = cells[len(header_cells) :] if kind == "csv" else []
        if any(c.strip() for c in overflow):
            issues.add(
                row,
                None,
                f"row has {len(cells)} fields but the header has {len(header_cells)}"
                " (an unquoted comma?)",
            )
        rows.append(
            (row, {n: (cells[i] if i < len(cells) else None) for i, n in enumerate(names) if n})
        )
    return _Table(file, kind, [n for n in names if n], rows)


def _header_text(value: Any) -> str:
    if isinstance(value, _FormulaCell | _ErrorCell):
        return ""
    return normalize_header(_cell_text(value))


def _read_jsonl(path: Path, issues: _Issues, limit: int) -> _Table:
    text = _decode(_read_bytes(path, issues), issues)
    headers: dict[str, None] = {}
    rows: list[tuple[int, dict[str, Any]]] = []
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            issues.add(line_no, None, f"not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(obj, dict):
            issues.add(line_no, None, f"expected a JSON object, got {type(obj).__name__}")
            continue
        record = {normalize_header(k): v for k, v in obj.items()}
        headers.update(dict.fromkeys(record))
        rows.append((line_no, record))
        if len(rows) > limit:
            break
    if not rows and not issues:
        raise issues.fail("the file is empty")
    return _Table(str(path), "jsonl", list(headers), rows)


def _load_table(
    path: str | Path, max_rows: int, header_pick: Callable[[list[str]], bool] | None = None
) -> tuple[_Table, _Issues]:
    """Read any supported file into a table; fatal problems raise at once."""
    path = Path(path)
    issues = _Issues(str(path))
    if max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, got {max_rows}")
    kind = _kind_of(path, issues)
    if kind == "jsonl":
        table = _read_jsonl(path, issues, max_rows)
    else:
        # Room for the header and a few title rows above it.
        limit = max_rows + _HEADER_SEARCH_ROWS + 1
        reader = _read_grid_csv if kind == "csv" else _read_grid_xlsx
        table = _grid_to_table(reader(path, issues, limit), str(path), kind, issues, header_pick)
    if len(table.rows) > max_rows:
        raise issues.fail(f"more than {max_rows} data rows; split the file or raise max_rows")
    if not table.rows and not issues:
        raise issues.fail("the file has a header but no data rows")
    return table, issues


def _cell_text(value: Any) -> str:
    """Any cell value as text (lists joined with 、); raises TypeError for JSON objects."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return _format_datetime(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list):
        return "、".join(_cell_text(v) for v in value)
    if isinstance(value, dict):
        raise TypeError("expected a text value, got an object")
    return str(value)


def _unescape_csv(value: str) -> str:
    """Undo the apostrophe that :func:`write_proposals` puts before formula-like CSV values."""
    if value.startswith("'") and _FORMULA.match(value.lstrip("'")):
        return value[1:]
    return value


def _escape_csv(value: str) -> str:
    return "'" + value if _FORMULA.match(value.lstrip("'")) else value


def read_table(
    path: str | Path, *, max_rows: int = 100_000
) -> tuple[list[str], list[dict[str, str]]]:
    """Read a CSV/TSV, XLSX or JSONL file as raw text rows.

    Returns ``(headers, rows)``: headers are normalised (:func:`normalize_header`), rows map
    each header to the cell's text ("" when empty). Values are not normalised; pass them
    through :func:`model.text.normalize_text`. The header is the first non-empty row; empty
    rows are skipped. Raises :class:`RecordError` for unreadable files, formula or error cells
    (XLSX), JSON objects nested in a JSONL field, an empty file or more than ``max_rows`` rows.
    """
    table, issues = _load_table(path, max_rows)
    rows: list[dict[str, str]] = []
    for row, record in table.rows:
        out: dict[str, str] = {}
        for name in table.headers:
            value = record.get(name)
            if isinstance(value, _FormulaCell):
                issues.add(row, name, _formula_message(value))
            elif isinstance(value, _ErrorCell):
                issues.add(row, name, _error_cell_message(value))
            else:
                try:
                    text = _cell_text(value)
                except TypeError as exc:
                    issues.add(row, name, str(exc))
                    continue
                out[name] = _unescape_csv(text) if table.kind == "csv" else text
        rows.append(out)
    if issues:
        raise issues.error()
    return table.headers, rows


def _formula_message(cell: _FormulaCell) -> str:
    return (
        f"cell {cell.coordinate} is a formula; its value is not stored reliably. "
        "Copy the column and paste it back as values"
    )


def _error_cell_message(cell: _ErrorCell) -> str:
    return f"cell {cell.coordinate} holds the Excel error {cell.value}"


# --------------------------------------------------------------------------------------------
# Field parsing

_DATE_TIME = re.compile(
    r"^(\d{4})\s*(?:[-/.]|年)\s*(\d{1,2})\s*(?:[-/.]|月)\s*(\d{1,2})\s*日?"
    r"(?:(?:\s*|T)(\d{1,2})\s*[:：时]\s*(\d{1,2})\s*(?:[:：分]\s*(\d{1,2})\s*秒?)?\s*分?)?$"
)


def _format_datetime(value: dt.datetime) -> str:
    # openpyxl returns date-formatted cells as midnight datetimes: show them as dates.
    if value.time() == dt.time(0) and value.tzinfo is None:
        return value.date().isoformat()
    return value.isoformat(sep=" ")


def parse_time(value: Any) -> tuple[str, int]:
    """Parse a submission time into ``(iso_string, year)``; raises ValueError if impossible.

    Accepts ``2024-01-05``, ``2024/1/5``, ``2024.1.5``, ``2024年1月5日``, each optionally with
    a time (``10:30``, ``10:30:00``, ``10时30分``), ISO 8601 strings, and datetime/date
    objects (Excel cells). Dates come back as ``YYYY-MM-DD``, times as ``YYYY-MM-DD HH:MM:SS``.
    """
    if isinstance(value, dt.datetime):
        return _format_datetime(value), value.year
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
    return _format_datetime(parsed), parsed.year


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
    text = normalize_text(_cell_text(value)) if not isinstance(value, dict) else "{...}"
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

    def __init__(self, table: _Table, columns: dict[str, str], issues: _Issues) -> None:
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
        if isinstance(value, _FormulaCell):
            self.issues.add(row, header, _formula_message(value))
            return ""
        if isinstance(value, _ErrorCell):
            self.issues.add(row, header, _error_cell_message(value))
            return ""
        try:
            raw = _cell_text(value)
        except TypeError as exc:
            self.issues.add(row, header, str(exc))
            return ""
        if self.table.kind == "csv":
            if column in _FORMULA_CHECKED and _FORMULA.match(raw.lstrip()):
                self.issues.add(
                    row,
                    header,
                    "the value looks like a spreadsheet formula (starts with =, +, - or @ and a "
                    "function or cell reference); store the text, not a formula",
                )
                return ""
            raw = _unescape_csv(raw)
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
        if header and not _is_empty(value):
            if isinstance(value, _FormulaCell | _ErrorCell):
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
        if header and not _is_empty(value):
            if isinstance(value, _FormulaCell | _ErrorCell):
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


def _map_columns(table: _Table, issues: _Issues) -> tuple[dict[str, str], list[str]]:
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
    table, issues = _load_table(path, max_rows, header_pick=_looks_like_proposal_header)
    columns, extra_headers = _map_columns(table, issues)
    if "id" not in columns or not ({"title", "content"} & columns.keys()):
        raise issues.error()
    reader = _RowReader(table, columns, issues)
    first_row_of: dict[str, int] = {}
    proposals: list[Proposal] = []
    for row, record in table.rows:
        if all(_is_empty(v) for v in record.values()):
            continue  # a JSONL object with only empty fields, like a blank spreadsheet row
        proposer = reader.text(row, record, "proposer")
        issues.redact = proposer
        pid = reader.text(row, record, "id")
        title = reader.text(row, record, "title")
        content = reader.text(row, record, "content")
        if not pid:
            # A non-empty id that came back "" was already reported (formula, too long, ...).
            if _is_empty(record.get(columns["id"])):
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
            and all(_is_empty(record.get(columns.get(c, ""))) for c in ("title", "content"))
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
    issues = _Issues(str(path))
    kind = _kind_of(path, issues)
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
                ["" if c is None else _escape_csv(c) if isinstance(c, str) else c for c in cells]
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
