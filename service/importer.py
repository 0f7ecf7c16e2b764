"""Import a year's proposals from an uploaded XLSX / CSV / JSONL file: all or nothing.

The file is parsed in a child process with a time and memory limit (:func:`parse_upload`,
:mod:`service.parse_worker`), so a hostile workbook is stopped there and never takes the
server down, and validated by :func:`model.records.read_proposals` (every bad row is listed,
案由 required, ids and labels within the database's column sizes). It is then written in one
database transaction. Rows already stored with identical content are skipped, so importing
the same file again changes nothing; a row whose id is already stored with different content
is an error unless the caller asks to update. A database error becomes a clean rejection
whose message and log line hold no values. Unknown category and unit names are warned about
(:mod:`service.import_checks`), not rejected. Every message a reviewer sees is Chinese; the
``code`` of each issue is a machine-readable English word.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy import update as sql_update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.import_checks import merge_known, stored_labels, unknown_labels
from service.models import ImportBatch, JobRecord, Proposal, utcnow

log = logging.getLogger("tian.service.import")

CHUNK = 200
PARSE_TIMEOUT_S = 120
PARSE_MEMORY_MB = 1024
_ROOT = Path(__file__).resolve().parents[1]  # where `python -m service.parse_worker` resolves

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class ImportIssue:
    """One problem; ``row`` is the spreadsheet row (header = 1) when known.

    ``column`` is the column as the file names it; ``message`` is Chinese; ``code`` is a
    machine-readable English word (``invalid``, ``year_missing``, ``changed``, ``conflict``,
    ``database``, ``too_large``).
    """

    row: int | None
    column: str | None
    message: str
    id: str | None = None
    code: str = "invalid"

    def to_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "column": self.column,
            "id": self.id,
            "code": self.code,
            "message": self.message,
        }


class ImportRejected(ValueError):
    """The file was refused; nothing was stored. ``issues`` lists every problem found.

    ``user_message`` (Chinese) is what a job shows; ``log`` is the line for the server log
    (counts and codes only, no values).
    """

    def __init__(self, file_name: str, issues: list[ImportIssue], more: int = 0) -> None:
        self.file_name = file_name
        self.issues = issues
        self.more = more
        total = len(issues) + more
        self.user_message = f"文件“{file_name}”未导入：发现 {total} 处问题，没有保存任何内容"
        codes = sorted({i.code for i in issues})
        self.log = f"{file_name}: rejected, {total} problem(s) ({', '.join(codes)}), nothing stored"
        super().__init__(self.log)


@dataclass
class ImportResult:
    """What an accepted import did."""

    file_name: str
    sha256: str
    rows: int
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    years: list[int] = field(default_factory=list)
    batch_id: int | None = None
    changed_ids: list[int] = field(default_factory=list)  # proposal row ids to (re)analyse
    warnings: list[dict[str, Any]] = field(default_factory=list)  # unknown labels

    def to_dict(self) -> dict[str, Any]:
        return {
            "file_name": self.file_name,
            "sha256": self.sha256,
            "rows": self.rows,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "years": self.years,
            "batch_id": self.batch_id,
            "warnings": self.warnings,
        }


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fields(p: Any) -> dict[str, Any]:
    return {
        "title": p.title or "",
        "content": p.content or "",
        "proposer": p.proposer,
        "category": p.category,
        "main_unit": p.main_unit,
        "co_units": list(p.co_units or []),
        "time": p.time,
        "extra": dict(p.extra or {}),
        "personal": dict(getattr(p, "personal", None) or {}),
    }


def _refused(file_name: str, message: str, code: str) -> ImportRejected:
    return ImportRejected(file_name, [ImportIssue(None, None, message, code=code)])


def parse_upload(
    path: Path,
    file_name: str,
    *,
    timeout_s: float = PARSE_TIMEOUT_S,
    memory_mb: int = PARSE_MEMORY_MB,
) -> list[Any]:
    """Read and validate a file in a child process; its proposals (``model.records.Proposal``).

    The child may use at most ``memory_mb`` of memory and ``timeout_s`` seconds; past either
    it is stopped and the file is rejected with a clear message.

    Raises:
        ImportRejected: every problem found, or the limit that stopped the reading.
    """
    from model.records import Proposal as Record

    out = path.parent / f"up-{os.getpid()}-{secrets.token_hex(8)}.json"
    command = [sys.executable, "-m", "service.parse_worker", str(path), str(out)]
    command += [str(memory_mb), str(int(timeout_s) + 5)]
    try:
        try:
            done = subprocess.run(
                command, cwd=_ROOT, capture_output=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            raise _refused(
                file_name,
                f"读取文件超过 {timeout_s:g} 秒，已停止读取；文件可能过大或含有大量空行，"
                "请拆分文件或另存为 CSV 后重试",
                "too_large",
            ) from None
        if done.returncode != 0 or not out.is_file():
            if done.returncode == 3 or done.returncode < 0:
                raise _refused(
                    file_name,
                    f"读取文件时超出 {memory_mb} MB 的内存上限或时间上限，已停止读取；"
                    "请拆分文件或另存为 CSV 后重试",
                    "too_large",
                )
            last = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            # The last line names the exception type; the traceback may quote the file.
            log.error("parsing %s failed: %s", file_name, last[0].split(":", 1)[0])
            raise RuntimeError("the parsing process failed")
        payload = json.loads(out.read_text(encoding="utf-8"))
    finally:
        out.unlink(missing_ok=True)
    if "issues" in payload:
        issues = [ImportIssue(i["row"], i["column"], i["message"]) for i in payload["issues"]]
        raise ImportRejected(file_name, issues, int(payload.get("more", 0)))
    return [Record(**record) for record in payload["records"]]


def read_upload(
    path: Path,
    file_name: str,
    default_year: int | None = None,
    *,
    timeout_s: float = PARSE_TIMEOUT_S,
    memory_mb: int = PARSE_MEMORY_MB,
) -> list[Any]:
    """Validate a file and return its proposals (``model.records.Proposal``), each with a year.

    Raises:
        ImportRejected: every problem found, with rows and columns as the user sees them.
    """
    records = parse_upload(path, file_name, timeout_s=timeout_s, memory_mb=memory_mb)
    missing = []
    for r in records:
        if r.year is None:
            if default_year is None:
                missing.append(
                    ImportIssue(
                        None,
                        "年度",
                        "没有年度：请在文件中加入“年度”列，或在导入页面选择年度",
                        r.id,
                        "year_missing",
                    )
                )
            else:
                r.year = default_year
    if missing:
        raise ImportRejected(file_name, missing[:100], max(0, len(missing) - 100))
    return records


def import_file(
    factory: sessionmaker[Session],
    path: Path,
    *,
    file_name: str,
    user_id: int,
    default_year: int | None = None,
    update: bool = False,
    progress: Progress | None = None,
    known_labels: Mapping[str, Iterable[str]] | None = None,
    timeout_s: float = PARSE_TIMEOUT_S,
    memory_mb: int = PARSE_MEMORY_MB,
    job_id: int | None = None,
) -> ImportResult:
    """Validate and store one file in a single transaction (see the module docstring).

    ``known_labels`` (the live model's label sets) and the names already stored are the
    names that unknown category and unit values are compared with. ``job_id``: the import's
    job, marked done in the same transaction, so a crash right after the commit can never
    report a stored file as interrupted.

    Raises:
        ImportRejected: the file has bad rows, clashes with stored proposals, or the database
            refused it; nothing stored.
    """
    report = progress or (lambda done, total, message: None)
    report(0, 0, "正在读取文件")
    sha = _file_sha256(path)
    records = read_upload(path, file_name, default_year, timeout_s=timeout_s, memory_mb=memory_mb)
    result = ImportResult(file_name=file_name, sha256=sha, rows=len(records))
    result.years = sorted({int(r.year) for r in records})
    report(0, len(records), "正在核对")

    try:
        with factory() as session, session.begin():
            result.warnings = unknown_labels(
                records, merge_known(known_labels, stored_labels(session))
            )
            existing = _existing(session, [(int(r.year), r.id) for r in records])
            to_add, to_update, issues = [], [], []
            for r in records:
                row = existing.get((int(r.year), r.id))
                if row is None:
                    to_add.append(r)
                elif _fields(row) == _fields(r):
                    result.unchanged += 1
                elif update:
                    to_update.append((row, r))
                else:
                    issues.append(
                        ImportIssue(
                            None,
                            None,
                            f"{r.year} 年的提案 {r.id} 已经导入过，但内容不同；"
                            "如要替换，请勾选“更新已导入但内容有变化的提案”",
                            r.id,
                            "changed",
                        )
                    )
            if issues:
                raise ImportRejected(file_name, issues[:100], max(0, len(issues) - 100))
            if not to_add and not to_update:
                report(len(records), len(records), "没有新内容")
                return result  # nothing changes: no batch is recorded either
            batch = ImportBatch(
                file_name=file_name[:255],
                sha256=sha,
                rows=len(records),
                added=len(to_add),
                updated=len(to_update),
                unchanged=result.unchanged,
                user_id=user_id,
            )
            session.add(batch)
            session.flush()
            done = result.unchanged
            for row, r in to_update:
                for key, value in _fields(r).items():
                    setattr(row, key, value)
                row.updated_at = utcnow()
                row.batch_id = batch.id
            done += len(to_update)
            new_rows = []
            for start in range(0, len(to_add), CHUNK):
                chunk = [
                    Proposal(year=int(r.year), pid=r.id, batch_id=batch.id, **_fields(r))
                    for r in to_add[start : start + CHUNK]
                ]
                session.add_all(chunk)
                session.flush()
                new_rows.extend(chunk)
                done += len(chunk)
                report(done, len(records), "正在写入")
            result.added, result.updated, result.batch_id = len(to_add), len(to_update), batch.id
            result.changed_ids = [p.id for p in new_rows] + [row.id for row, _ in to_update]
            if job_id is not None:
                # The job's outcome commits with the rows (JobRunner later adds its result).
                session.execute(
                    sql_update(JobRecord)
                    .where(JobRecord.id == job_id)
                    .values(
                        status="done",
                        message="导入完成",
                        done=len(records),
                        total=len(records),
                        finished_at=utcnow(),
                    )
                )
    except IntegrityError:
        # Another import stored some of these ids between our check and our insert.
        log.warning("import of %s: conflict with a concurrent import", file_name)
        raise _refused(
            file_name, "另一次导入刚刚保存了其中部分提案号，本文件没有导入；请稍后重试", "conflict"
        ) from None
    except DBAPIError as exc:
        # The reader's limits match the schema, so this is unexpected; the message of a
        # database error can quote values, so neither the user nor the log sees it.
        code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        log.warning(
            "import of %s refused by the database: %s (sqlstate %s), nothing stored",
            file_name,
            type(exc.orig).__name__,
            code,
        )
        raise _refused(
            file_name,
            "数据库拒绝保存这份文件，没有导入任何内容；请联系管理员查看服务器日志",
            "database",
        ) from None
    report(len(records), len(records), "导入完成")
    log.info(
        "imported %s: %d rows, %d added, %d updated, %d unchanged",
        file_name,
        result.rows,
        result.added,
        result.updated,
        result.unchanged,
    )
    return result


def _existing(session: Session, keys: list[tuple[int, str]]) -> dict[tuple[int, str], Proposal]:
    out: dict[tuple[int, str], Proposal] = {}
    for start in range(0, len(keys), 500):
        part = keys[start : start + 500]
        rows = session.scalars(
            select(Proposal).where(tuple_(Proposal.year, Proposal.pid).in_(part))
        )
        out.update({(p.year, p.pid): p for p in rows})
    return out
