"""Proposal records: the :class:`Proposal` type, reading tables into validated records, writing.

The table formats and column names are DESIGN.md's "Proposal record" contract; the raw file
reading (decoding, CSV/XLSX/JSONL, formula cells) lives in :mod:`model.tables`. Reading is
all-or-nothing: every problem in a file is collected into one
:class:`model.tables.RecordError`, and no partial list is ever returned, so nothing is
half-imported.

Privacy: the proposer's value is personal data, and so is every extra column whose header
looks like personal data (:func:`is_personal_header`: 提案人姓名, 电话, 手机, 身份证, 住址,
邮箱, ..., and English name/phone/email): those go to ``Proposal.personal``, never to
``Proposal.extra``, so they are kept only where the proposer is kept. Both are excluded from
``repr(Proposal)`` and no error message ever quotes them (nor any cell value other than short
prefixes of titles and contents, ids, years and times).

Limits. Ids, labels and titles are limited to what the service's database columns hold on
both SQLite and PostgreSQL (:data:`ID_MAX_CHARS`, :data:`LABEL_MAX_CHARS`; a test keeps them
in step with ``service.models``), and ids that would break a page's address (``/``,
backslash, ``? # %``, ``..``, control characters) are refused. Messages are Chinese: reviewers read them as they are.

Spreadsheet formulas (see :mod:`model.tables` for the rule) are errors in the title, content,
category and unit columns of a CSV. :func:`write_proposals` protects CSV values that would look
like a formula with a leading apostrophe, and the reader removes that one apostrophe again, so
written files read back unchanged.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.atomic import atomic_write
from model.tables import (
    NO_DATA_ROWS,
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
    table_kind,
    unescape_csv,
)
from model.text import normalize_label, normalize_text

__all__ = [
    "CANONICAL_COLUMNS",
    "COLUMN_ALIASES",
    "COLUMN_NAMES",
    "CELL_MAX_CHARS",
    "CONTENT_MAX_CHARS",
    "ID_MAX_CHARS",
    "LABEL_MAX_CHARS",
    "TITLE_MAX_CHARS",
    "Proposal",
    "canonical_column",
    "id_problem",
    "is_personal_header",
    "parse_time",
    "read_proposals",
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
# How messages name a canonical column when the file's own header is not at hand.
COLUMN_NAMES: dict[str, str] = {
    "id": "提案号",
    "year": "年度",
    "title": "案由",
    "content": "内容",
    "proposer": "提案人",
    "category": "类别",
    "main_unit": "主办单位",
    "co_units": "协办单位",
    "time": "提交时间",
}

TITLE_MAX_CHARS = 300
CONTENT_MAX_CHARS = 30_000
CELL_MAX_CHARS = 2_000
# The service stores ids in VARCHAR(100) and labels in VARCHAR(200) (service.models): longer
# values would fail on PostgreSQL and be stored silently on SQLite, so the reader refuses them.
ID_MAX_CHARS = 100
LABEL_MAX_CHARS = 200
_LIMITS = {
    "id": ID_MAX_CHARS,
    "title": TITLE_MAX_CHARS,
    "content": CONTENT_MAX_CHARS,
    "category": LABEL_MAX_CHARS,
    "main_unit": LABEL_MAX_CHARS,
}  # co-units: each unit is checked against LABEL_MAX_CHARS, the whole cell against CELL_MAX
# Characters that would change a page address built from the id (/proposals/2024/<id>).
_URL_UNSAFE = re.compile(r"[/\\?#%\x00-\x1f\x7f]|\.\.")
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

# Headers that hold personal data. Chinese: any header containing one of these; English: any
# word of the header (split on spaces, _ and -) or the whole header squeezed together.
_PERSONAL_ZH = (
    "提案人",
    "提案者",
    "委员",
    "联名",
    "附议",
    "姓名",
    "名字",
    "联系",
    "电话",
    "手机",
    "座机",
    "传真",
    "身份证",
    "证件",
    "住址",
    "地址",
    "邮箱",
    "邮件",
    "微信",
    "QQ",
    "签名",
    "性别",
    "出生",
    "年龄",
    "籍贯",
    "留言用户",
    "用户名",
)
_PERSONAL_EN = {
    "name",
    "names",
    "fullname",
    "firstname",
    "lastname",
    "surname",
    "proposer",
    "author",
    "contact",
    "phone",
    "telephone",
    "tel",
    "mobile",
    "cellphone",
    "fax",
    "email",
    "mail",
    "address",
    "idcard",
    "passport",
    "wechat",
    "birthday",
    "birthdate",
    "gender",
    "user",
    "username",
    "userid",
}


def is_personal_header(header: str) -> bool:
    """Whether a column with this header holds personal data (see the module docstring)."""
    # 委员会 (a committee) is an organisation, not a person: 专门委员会 stays visible.
    text = normalize_header(header).replace("委员会", "")
    if any(word in text.upper() if word == "QQ" else word in text for word in _PERSONAL_ZH):
        return True
    lowered = text.lower()
    words = {w for w in re.split(r"[^a-z0-9]+", lowered) if w}
    squeezed = re.sub(r"[^a-z0-9]+", "", lowered)
    return bool(words & _PERSONAL_EN) or squeezed in _PERSONAL_EN or "email" in squeezed


def id_problem(pid: str) -> str | None:
    """Why an id cannot be used (Chinese), or None when it can."""
    if _URL_UNSAFE.search(pid) or pid in (".", "..") or "\t" in pid or "\n" in pid:
        return (
            f"提案号 {pid!r} 含有不能用于网页地址的字符（/ \\ ? # % 、.. 或控制字符）；"
            "请只用文字、字母、数字、- 和 _"
        )
    return None


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
    # Extra columns that look like personal data (is_personal_header): never shown.
    personal: dict[str, str] = field(default_factory=dict, repr=False)

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
            "personal": dict(self.personal),
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
    return repr(text) if _DATELIKE.fullmatch(text) else "该值"


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
                    "内容像电子表格公式（以 =、+、- 或 @ 开头，后接函数或单元格引用）；"
                    "请保存为文本，不要保存公式",
                )
                return ""
            raw = unescape_csv(raw)
        text = normalize_label(raw) if label else normalize_text(raw)
        limit = _LIMITS.get(column, CELL_MAX_CHARS)
        if len(text) > limit:
            # Quote a short prefix of a title or content to help find it; nothing else.
            shown = f"（开头：{_short(text)!r}）" if column in ("title", "content") else ""
            self.issues.add(row, header, f"有 {len(text)} 个字符，超过 {limit} 个字符的上限{shown}")
            return ""
        if column == "id" and text:
            # The raw value: a tab or line break inside an id is refused, not silently changed.
            problem = id_problem(raw.strip())
            if problem:
                self.issues.add(row, header, problem)
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
                if len(unit) > LABEL_MAX_CHARS:
                    self.issues.add(
                        row,
                        header,
                        f"有一个单位名称长 {len(unit)} 个字符，超过 {LABEL_MAX_CHARS} 个字符的上限",
                    )
                elif unit and unit not in units:
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
                        f"无法把{_quoted_if_datelike(value)}读作日期"
                        "（请用 2024-01-05、2024/1/5 或 2024年1月5日，可带时间）",
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
                        f"{_quoted_if_datelike(value)}不是有效的年份"
                        f"（应为 {_YEAR_RANGE[0]} 到 {_YEAR_RANGE[1]} 之间的整数）",
                    )
        return (year if year is not None else time_year), time

    def extra(
        self, row: int, record: dict[str, Any], extra_headers: list[str]
    ) -> tuple[dict[str, str], dict[str, str]]:
        """The row's extra fields, split into ``(ordinary, personal)`` by header."""
        out: dict[str, str] = {}
        personal: dict[str, str] = {}
        for header in extra_headers:
            value = record.get(header)
            nested = header in ("extra", "personal") and self.table.kind == "jsonl"
            if nested and isinstance(value, dict):
                # Proposal.to_dict() nests extras and personal fields; accept that back.
                for key, inner in value.items():
                    name = normalize_header(key)
                    text = self.cell(row, f"{header}.{name}", inner, "extra")
                    if text:
                        private = header == "personal" or is_personal_header(name)
                        (personal if private else out)[name] = text
                continue
            text = self.cell(row, header, value, header)
            if text:
                (personal if is_personal_header(header) else out)[header] = text
        return out, personal

    def personal_values(self, record: dict[str, Any], extra_headers: list[str]) -> tuple[str, ...]:
        """The row's raw personal values, to mask out of any message about the row."""
        headers = [h for h in extra_headers if is_personal_header(h)]
        if "proposer" in self.columns:
            headers.append(self.columns["proposer"])
        values: list[str] = []
        for header in headers:
            value = record.get(header)
            if isinstance(value, str | int | float) and str(value).strip():
                values.append(str(value).strip())
        return tuple(values)


def _map_columns(
    table: Table, issues: IssueLog, require_title: bool = False
) -> tuple[dict[str, str], list[str]]:
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
                f"列“{columns[column]}”和“{header}”都表示{COLUMN_NAMES[column]}（{column}）；"
                "请只保留一列",
            )
        else:
            columns[column] = header
    missing = []
    if "id" not in columns:
        missing.append("id")
    if "title" not in columns and (require_title or "content" not in columns):
        missing.append("title")
    if missing:
        if columns:
            shown = [h for h in table.headers if not is_personal_header(h)]
            found = "文件中的表头：" + "、".join(shown)
        else:
            # No header is recognised: the first row may be data (names included), so the
            # values are not echoed.
            found = f"第一行的 {len(table.headers)} 个表头都无法识别；是否缺少表头行？"
        for column in missing:
            wanted = "、".join((*COLUMN_ALIASES[column], column))
            if column == "title" and not require_title:
                wanted += "；或内容列：" + "、".join((*COLUMN_ALIASES["content"], "content"))
            issues.add(
                None, column, f"缺少必需的{COLUMN_NAMES[column]}列（可用表头：{wanted}）；{found}"
            )
    return columns, extras


def read_proposals(
    path: str | Path, *, max_rows: int = 100_000, require_title: bool = False
) -> list[Proposal]:
    """Read proposals from a CSV/TSV, XLSX or JSONL file (see DESIGN.md "Proposal record").

    Headers may be the canonical names or their Chinese aliases; other columns are kept in
    ``Proposal.extra``, or in ``Proposal.personal`` when the header looks like personal data
    (:func:`is_personal_header`). With ``require_title`` (the service's imports) every row
    needs a 案由; otherwise a title or a content is enough. In XLSX the sheet whose name contains 提案 is read, else the first
    sheet; the header may sit below a few title rows. All text is normalised
    (:func:`model.text.normalize_text`; category and units with
    :func:`model.text.normalize_label`). ``year`` is taken from ``time`` where absent.

    Raises:
        RecordError: listing every problem found (missing columns, empty or duplicate ids,
            rows without title and content, bad years or times, formula cells, over-long
            cells, ids unusable in an address, undecodable or non-table files, empty files,
            more than ``max_rows`` rows, oversized or over-compressed workbooks).
            Nothing is returned unless the whole file is valid.
    """
    table, issues = load_table(path, max_rows, header_pick=_looks_like_proposal_header)
    columns, extra_headers = _map_columns(table, issues, require_title)
    if "id" not in columns or not ({"title", "content"} & columns.keys()):
        raise issues.error()
    if require_title and "title" not in columns:
        raise issues.error()
    reader = _RowReader(table, columns, issues)
    first_row_of: dict[str, int] = {}
    proposals: list[Proposal] = []
    for row, record in table.rows:
        if all(is_empty(v) for v in record.values()):
            continue  # a JSONL object with only empty fields, like a blank spreadsheet row
        issues.redact = reader.personal_values(record, extra_headers)
        proposer = reader.text(row, record, "proposer")
        pid = reader.text(row, record, "id")
        title = reader.text(row, record, "title")
        content = reader.text(row, record, "content")
        if not pid:
            # A non-empty id that came back "" was already reported (formula, too long, ...).
            if is_empty(record.get(columns["id"])):
                issues.add(row, columns["id"], "提案号为空")
        elif pid in first_row_of:
            issues.add(row, columns["id"], f"提案号 {pid!r} 重复（第 {first_row_of[pid]} 行已有）")
        else:
            first_row_of[pid] = row
        if (
            not title
            and not content
            and all(is_empty(record.get(columns.get(c, ""))) for c in ("title", "content"))
        ):
            issues.add(row, None, "案由和内容都为空")
        elif require_title and not title and is_empty(record.get(columns["title"])):
            issues.add(row, columns["title"], "案由为空（案由必填）")
        year, time = reader.year_and_time(row, record)
        extra, personal = reader.extra(row, record, extra_headers)
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
                extra=extra,
                personal=personal,
            )
        )
    issues.redact = ()
    if issues:
        raise issues.error()
    if not proposals:
        raise issues.fail(NO_DATA_ROWS)
    return proposals


# --------------------------------------------------------------------------------------------
# Writing


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
        *(p.extra[k] if k in p.extra else p.personal.get(k) for k in extra_keys),
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
        raise issues.fail(f"文件夹 {str(path.parent)!r} 不存在")
    items = list(proposals)
    # Personal fields are written too (a file written here is the data owner's own copy).
    extra_keys = list(dict.fromkeys(k for p in items for k in (*p.extra, *p.personal)))
    for key in extra_keys:
        if canonical_column(key) is not None or normalize_header(key) != key or not key:
            issues.add(None, key, "这个附加字段名不能写出（与标准列同名或为空）")
    if issues:
        raise issues.error()
    header = [*CANONICAL_COLUMNS, *extra_keys]
    if kind == "csv":
        atomic_write(path, lambda tmp: _write_csv(tmp, header, items, extra_keys, path))
    elif kind == "xlsx":
        atomic_write(path, lambda tmp: _write_xlsx(tmp, header, items, extra_keys))
    else:
        atomic_write(path, lambda tmp: _write_jsonl(tmp, items))


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

    from model.formulas import protect_xlsx_cell

    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("提案")

    def cell(value: str | int | None) -> WriteOnlyCell:
        if isinstance(value, str):
            value = ILLEGAL_CHARACTERS_RE.sub("", value)
        c = WriteOnlyCell(ws, value=value)
        protect_xlsx_cell(c)  # formula-like text stays text (quotePrefix, no apostrophe)
        return c

    ws.append([cell(h) for h in header])
    for p in items:
        ws.append([cell(v) for v in _proposal_cells(p, extra_keys)])
    wb.save(tmp)


def _write_jsonl(tmp: Path, items: list[Proposal]) -> None:
    with tmp.open("w", encoding="utf-8", newline="\n") as fh:
        for p in items:
            record = p.to_dict()
            # Extras and personal fields as top-level keys, like any input file.
            record.update(record.pop("extra"))
            record.update(record.pop("personal"))
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
