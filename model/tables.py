"""Raw tables: reading CSV / TSV / XLSX / JSONL files into headers and rows of cells.

This is the layer below :mod:`model.records`: it decodes files (UTF-8 with or without BOM,
UTF-16 with BOM, GB18030), recognises non-table files (zip archives, old Office files, binary
data), finds the header row and turns every row into a dict keyed by normalised header. It
knows nothing of proposals; :func:`model.records.read_proposals` maps the columns and validates
the values. Problems are collected into one :class:`RecordError` (all-or-nothing), and no
message quotes a cell's value.

Spreadsheet formulas. A formula's computed value is not stored reliably in files written by
other tools, so formula cells in XLSX (``data_type == "f"``) are errors. In CSV a value is
treated as a formula (:func:`looks_like_formula`) when it starts with ``=`` followed by a
function call (``=SUM(``), a cell reference (``=A1``, ``=$B$2``) or a DDE call (``=cmd|``), or
starts with ``+``, ``-`` or ``@`` followed by one of those (Excel reads ``+A1`` and ``@SUM(`` as
formulas too). Ordinary text such as ``+86 138…``, ``-加强…`` or ``=`` alone is not affected.
Writers protect every CSV value a spreadsheet could run with a leading apostrophe (the wider
rule of :mod:`model.formulas`, through :func:`escape_csv`), and the reader removes that one
apostrophe again (:func:`unescape_csv`), so written files read back unchanged.

Hostile workbooks. An .xlsx is a zip archive, so a small upload can expand to gigabytes of XML
(a "zip bomb", or a sheet of a million empty ``<row/>`` elements). Before openpyxl sees the
file, :func:`check_xlsx_archive` reads the archive's directory and refuses a workbook whose
declared uncompressed size exceeds :data:`XLSX_MAX_UNCOMPRESSED` or one of whose large members
is compressed more than :data:`XLSX_MAX_RATIO` times; while reading, the sheet is streamed
(openpyxl ``read_only``) and capped at :data:`XLSX_MAX_ROWS` rows (empty rows count) and
:data:`MAX_COLUMNS` columns. Messages are Chinese: they are shown to reviewers as they are.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.text import normalize_text

__all__ = [
    "MAX_COLUMNS",
    "NO_DATA_ROWS",
    "XLSX_MAX_RATIO",
    "XLSX_MAX_ROWS",
    "XLSX_MAX_UNCOMPRESSED",
    "ErrorCell",
    "FormulaCell",
    "IssueLog",
    "RecordError",
    "RecordIssue",
    "Table",
    "cell_text",
    "check_xlsx_archive",
    "error_cell_message",
    "escape_csv",
    "format_datetime",
    "formula_message",
    "is_empty",
    "load_table",
    "looks_like_formula",
    "normalize_header",
    "read_table",
    "table_kind",
    "unescape_csv",
]

_MAX_ISSUES = 100
# Bounds on what one spreadsheet may cost to read (see the module docstring).
XLSX_MAX_UNCOMPRESSED = 200 * 1024 * 1024  # bytes, all members together
XLSX_MAX_RATIO = 100  # uncompressed / compressed, for members above _RATIO_MIN_BYTES
_RATIO_MIN_BYTES = 1024 * 1024  # tiny members compress well without being a threat
XLSX_MAX_ROWS = 200_000  # rows of the sheet, empty ones included
MAX_COLUMNS = 50  # columns holding a value
# Title rows ("2024年提案汇总表") above the real header are common in office exports.
_HEADER_SEARCH_ROWS = 10

_FORMULA = re.compile(
    r"^[=+\-@]\s*[=+\-]?\s*"
    r"(?:[A-Za-z_][A-Za-z0-9_.]*\s*\(|\$?[A-Za-z]{1,3}\$?[0-9]+(?![0-9A-Za-z])|[A-Za-z0-9_]+\|)"
)


# --------------------------------------------------------------------------------------------
# Problems


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
        lines = [f"输入中发现 {total} 处问题："]
        lines += [str(issue) for issue in self.issues]
        if self.more:
            lines.append(f"……另有 {self.more} 处未列出")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self._describe()


class IssueLog:
    """Collects issues for one file, keeping the first 100 and counting the rest."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.kept: list[RecordIssue] = []
        self.more = 0
        # The current row's personal values (proposer, phone, ...): masked out of any message
        # as a last line of defence (a shifted column can put a name where a year should be).
        self.redact: tuple[str, ...] = ()

    def add(self, row: int | None, column: str | None, message: str) -> None:
        for secret in self.redact:
            if secret:
                message = message.replace(secret, "***")
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
# Headers and cells


def normalize_header(header: object) -> str:
    """A header cell as text: BOMs, control characters and surrounding whitespace removed, NFKC."""
    return normalize_text("" if header is None else str(header))


@dataclass(frozen=True)
class FormulaCell:
    """An XLSX formula cell (its value is not trusted), by coordinate such as ``"C3"``."""

    coordinate: str


@dataclass(frozen=True)
class ErrorCell:
    """An XLSX cell holding an Excel error such as ``#REF!``."""

    coordinate: str
    value: str


@dataclass
class Table:
    """A file's data rows as ``(row number as the user sees it, {header: cell})``."""

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
_SUPPORTED = ".csv、.tsv、.xlsx 或 .jsonl"
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def table_kind(path: Path, issues: IssueLog) -> str:
    """``"csv"``, ``"xlsx"`` or ``"jsonl"`` from the extension; raises for other types."""
    suffix = path.suffix.lower()
    if suffix == ".xls":
        raise issues.fail("不支持旧版 Excel .xls 文件；请在 Excel 中另存为 .xlsx 或 CSV 后再上传")
    if suffix not in _KINDS:
        raise issues.fail(f"不支持的文件类型 {suffix or '（无扩展名）'!r}；请使用 {_SUPPORTED}")
    return _KINDS[suffix]


def is_empty(value: Any) -> bool:
    """Whether a cell is empty: None, blank text, or a list of empty values."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list):
        return all(is_empty(v) for v in value)
    return False


def _decode(data: bytes, issues: IssueLog) -> str:
    """Decode text: UTF-8 (BOM optional), UTF-16 with BOM, then GB18030."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise issues.fail(f"UTF-16 文本在第 {exc.start} 字节处无效") from None
    if data.startswith(_ZIP_MAGIC):
        raise issues.fail(
            "这是 zip 压缩包（.xlsx 或 .docx？），不是文本表格；Excel 文件请用 .xlsx 扩展名"
        )
    if data.startswith(_OLE_MAGIC):
        raise issues.fail("这是旧版 Office 文件（.xls 或 .doc？），不是文本表格")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise issues.fail(f"这是二进制数据（第 {nul} 字节处为 NUL），不是文本表格")
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
            f"无法按 UTF-8（第 {bad} 字节处有无效字节 0x{data[bad]:02x}）或 GB18030 解码；"
            "请在 Excel 中另存为“CSV UTF-8”"
        ) from None


def _read_bytes(path: Path, issues: IssueLog) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise issues.fail("找不到文件") from None
    except IsADirectoryError:
        raise issues.fail("这是文件夹，不是文件") from None
    except OSError as exc:
        raise issues.fail(f"无法读取文件（{exc.strerror or type(exc).__name__}）") from None


def _read_grid_csv(path: Path, issues: IssueLog, limit: int) -> list[tuple[int, list[Any]]]:
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
    except csv.Error:
        raise issues.fail("CSV 格式错误（可能有未闭合的引号）", row=row + 1) from None
    return grid


def _xlsx_problem(path: Path) -> str:
    """Explain why a file named .xlsx is not a readable workbook."""
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError:
        head = b""
    if head.startswith(_OLE_MAGIC):
        return "这是旧版 Office 文件（.xls、.doc 或设有打开密码的工作簿），不是 .xlsx"
    if not head.startswith(_ZIP_MAGIC):
        return "这不是 Excel .xlsx 文件（不是 zip 压缩包）"
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError, EOFError):
        return _DAMAGED
    if "word/document.xml" in names:
        return "这是改名为 .xlsx 的 Word 文档"
    if "xl/workbook.xml" not in names:
        return "这个 zip 压缩包不是 Excel 工作簿"
    return _DAMAGED


_DAMAGED = ".xlsx 文件已损坏或不完整"
_MB = 1024 * 1024


def check_xlsx_archive(path: Path, issues: IssueLog) -> None:
    """Refuse a workbook that would expand too far, before any XML is parsed.

    Reads only the zip directory: the declared uncompressed size of every member (zipfile
    never returns more bytes than a member declares, so the declaration is a real bound)
    and each large member's compression ratio. Raises :class:`RecordError` (Chinese message).
    """
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        raise issues.fail(_xlsx_problem(path)) from None
    total = sum(max(0, i.file_size) for i in infos)
    if total > XLSX_MAX_UNCOMPRESSED:
        raise issues.fail(
            f"工作簿解压后有 {total // _MB} MB，超过 {XLSX_MAX_UNCOMPRESSED // _MB} MB 的上限，"
            "拒绝读取；请删除多余的行、列和工作表，或另存为 CSV"
        )
    for info in infos:
        if info.file_size < _RATIO_MIN_BYTES:
            continue
        ratio = info.file_size / max(1, info.compress_size)
        if ratio > XLSX_MAX_RATIO:
            raise issues.fail(
                f"工作簿中的 {info.filename} 压缩比异常（{ratio:.0f} 倍，上限 {XLSX_MAX_RATIO} 倍），"
                "像是大量空行或“压缩炸弹”，拒绝读取；请删除多余的空行后另存"
            )


def _xlsx_value(cell: Any) -> Any:
    if cell.data_type == "f":
        return FormulaCell(cell.coordinate)
    if cell.data_type == "e":
        return ErrorCell(cell.coordinate, str(cell.value))
    return cell.value


def _read_grid_xlsx(path: Path, issues: IssueLog, limit: int) -> list[tuple[int, list[Any]]]:
    if not path.exists():
        raise issues.fail("找不到文件")
    check_xlsx_archive(path, issues)
    import openpyxl  # heavy; only needed for spreadsheets

    grid: list[tuple[int, list[Any]]] = []
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=False)
        try:
            sheets = wb.worksheets
            if not sheets:
                raise issues.fail("工作簿中没有工作表")
            ws = next((s for s in sheets if "提案" in s.title), sheets[0])
            ws.reset_dimensions()  # trust the cells, not the (often wrong) stored dimensions
            # Every row counts against the cap, empty ones too: a sheet of a million empty
            # <row/> elements costs time to walk even though it holds nothing.
            for row, cells in enumerate(ws.iter_rows(), start=1):
                if row > XLSX_MAX_ROWS:
                    raise issues.fail(
                        f"工作表超过 {XLSX_MAX_ROWS} 行（空行也计算在内）；"
                        "请删除表格下方多余的行，或拆分文件"
                    )
                values = [_xlsx_value(c) for c in cells[: MAX_COLUMNS + 1]]
                if len(cells) > MAX_COLUMNS and not all(
                    is_empty(_xlsx_value(c)) for c in cells[MAX_COLUMNS:]
                ):
                    raise issues.fail(f"超过 {MAX_COLUMNS} 列；请删除多余的列", row=row)
                values = values[:MAX_COLUMNS]
                if not all(is_empty(v) for v in values):
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
    issues: IssueLog,
    header_pick: Callable[[list[str]], bool] | None,
) -> Table:
    if not grid:
        raise issues.fail("文件是空的")
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
            if not any(i < len(cells) and not is_empty(cells[i]) for _, cells in body):
                names.append(None)  # an unnamed, empty column: Excel's trailing blanks
                continue
            if kind == "csv" and i >= len(header_cells):
                names.append(None)  # reported per row below: more fields than the header
                continue
            name = f"column_{i + 1}"
        if name in seen:
            issues.add(
                header_row, name, f"列“{name}”出现了两次（第 {seen[name]} 列和第 {i + 1} 列）"
            )
        seen[name] = i + 1
        names.append(name)
    if len(seen) > MAX_COLUMNS:
        raise issues.fail(f"表头有 {len(seen)} 列，超过 {MAX_COLUMNS} 列的上限", row=header_row)
    rows: list[tuple[int, dict[str, Any]]] = []
    for row, cells in body:
        overflow = cells[len(header_cells) :] if kind == "csv" else []
        if any(c.strip() for c in overflow):
            issues.add(
                row,
                None,
                f"该行有 {len(cells)} 个字段，而表头只有 {len(header_cells)} 列"
                "（是否有未加引号的逗号？）",
            )
        rows.append(
            (row, {n: (cells[i] if i < len(cells) else None) for i, n in enumerate(names) if n})
        )
    return Table(file, kind, [n for n in names if n], rows)


def _header_text(value: Any) -> str:
    if isinstance(value, FormulaCell | ErrorCell):
        return ""
    return normalize_header(cell_text(value))


def _read_jsonl(path: Path, issues: IssueLog, limit: int) -> Table:
    text = _decode(_read_bytes(path, issues), issues)
    headers: dict[str, None] = {}
    rows: list[tuple[int, dict[str, Any]]] = []
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            issues.add(line_no, None, f"不是有效的 JSON（第 {exc.colno} 个字符附近）")
            continue
        if not isinstance(obj, dict):
            kind = _JSON_KINDS.get(type(obj).__name__, type(obj).__name__)
            issues.add(line_no, None, f"每行应是一个 JSON 对象，这一行是{kind}")
            continue
        record = {normalize_header(k): v for k, v in obj.items()}
        headers.update(dict.fromkeys(record))
        rows.append((line_no, record))
        if len(rows) > limit:
            break
    if not rows and not issues:
        raise issues.fail("文件是空的")
    return Table(str(path), "jsonl", list(headers), rows)


_JSON_KINDS = {"list": "数组", "str": "字符串", "int": "数字", "float": "数字", "bool": "布尔值"}
_JSON_KINDS["NoneType"] = "null"


NO_DATA_ROWS = "文件只有表头，没有数据行"


def load_table(
    path: str | Path, max_rows: int, header_pick: Callable[[list[str]], bool] | None = None
) -> tuple[Table, IssueLog]:
    """Read any supported file into a table; fatal problems raise at once.

    ``header_pick`` tells whether a row of header texts is the header; the first of the first
    few non-empty rows it accepts is used (default: the first non-empty row). Non-fatal
    problems are left in the returned :class:`IssueLog` for the caller to raise.
    """
    path = Path(path)
    issues = IssueLog(str(path))
    if max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, got {max_rows}")  # a caller's bug
    kind = table_kind(path, issues)
    if kind == "jsonl":
        table = _read_jsonl(path, issues, max_rows)
    else:
        # Room for the header and a few title rows above it.
        limit = max_rows + _HEADER_SEARCH_ROWS + 1
        reader = _read_grid_csv if kind == "csv" else _read_grid_xlsx
        table = _grid_to_table(reader(path, issues, limit), str(path), kind, issues, header_pick)
    if len(table.rows) > max_rows:
        raise issues.fail(f"数据超过 {max_rows} 行；请拆分文件")
    if not table.rows and not issues:
        raise issues.fail(NO_DATA_ROWS)
    return table, issues


def cell_text(value: Any) -> str:
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
        return format_datetime(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list):
        return "、".join(cell_text(v) for v in value)
    if isinstance(value, dict):
        raise TypeError("应为文本，实际是一个 JSON 对象")
    return str(value)


def unescape_csv(value: str) -> str:
    """Undo the apostrophe that :func:`escape_csv` puts before formula-like CSV values."""
    from model.formulas import unneutralise

    return unneutralise(value)


def escape_csv(value: str) -> str:
    """Put an apostrophe before a CSV value a spreadsheet could run (:mod:`model.formulas`)."""
    from model.formulas import neutralise

    return neutralise(value)


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
    table, issues = load_table(path, max_rows)
    rows: list[dict[str, str]] = []
    for row, record in table.rows:
        out: dict[str, str] = {}
        for name in table.headers:
            value = record.get(name)
            if isinstance(value, FormulaCell):
                issues.add(row, name, formula_message(value))
            elif isinstance(value, ErrorCell):
                issues.add(row, name, error_cell_message(value))
            else:
                try:
                    text = cell_text(value)
                except TypeError as exc:
                    issues.add(row, name, str(exc))
                    continue
                out[name] = unescape_csv(text) if table.kind == "csv" else text
        rows.append(out)
    if issues:
        raise issues.error()
    return table.headers, rows


def formula_message(cell: FormulaCell) -> str:
    """The issue message for a formula cell."""
    return (
        f"单元格 {cell.coordinate} 是公式，文件中保存的计算结果不可靠；"
        "请复制该列并“选择性粘贴为数值”后再上传"
    )


def error_cell_message(cell: ErrorCell) -> str:
    """The issue message for an Excel error cell."""
    return f"单元格 {cell.coordinate} 含有 Excel 错误值 {cell.value}"


def format_datetime(value: dt.datetime) -> str:
    """A datetime as ISO text; a naive midnight as a plain date."""
    # openpyxl returns date-formatted cells as midnight datetimes: show them as dates.
    if value.time() == dt.time(0) and value.tzinfo is None:
        return value.date().isoformat()
    return value.isoformat(sep=" ")


def looks_like_formula(value: str) -> bool:
    """Whether a CSV value would be read as a formula by Excel (see the module docstring)."""
    return _FORMULA.match(value) is not None
