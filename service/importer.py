"""Import a year's proposals from an uploaded XLSX / CSV / JSONL file: all or nothing.

The file is validated by :func:`model.records.read_proposals` (every bad row is listed), then
written in one database transaction. Rows already stored with identical content are skipped,
so importing the same file again changes nothing; a row whose id is already stored with
different content is an error unless the caller asks to update.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from service.models import ImportBatch, Proposal, utcnow

log = logging.getLogger("tian.service.import")

CHUNK = 200
_COMPARED = ("title", "content", "proposer", "category", "main_unit", "co_units", "time", "extra")

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class ImportIssue:
    """One row-level problem; ``row`` is the spreadsheet row (header = 1) when known."""

    row: int | None
    column: str | None
    message: str
    id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "id": self.id, "message": self.message}


class ImportRejected(ValueError):
    """The file was refused; nothing was stored. ``issues`` lists every problem found."""

    def __init__(self, file_name: str, issues: list[ImportIssue], more: int = 0) -> None:
        self.file_name = file_name
        self.issues = issues
        self.more = more
        total = len(issues) + more
        super().__init__(f"{file_name}: {total} problem{'s' if total != 1 else ''}; nothing stored")


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
    }


def read_upload(path: Path, file_name: str, default_year: int | None = None) -> list[Any]:
    """Validate a file and return its proposals (``model.records.Proposal``), each with a year.

    Raises:
        ImportRejected: every problem found, with rows and columns as the user sees them.
    """
    from model.records import read_proposals
    from model.tables import RecordError

    try:
        records = read_proposals(path)
    except RecordError as exc:
        issues = [ImportIssue(i.row, i.column, i.message) for i in exc.issues]
        raise ImportRejected(file_name, issues, exc.more) from None
    missing = []
    for r in records:
        if r.year is None:
            if default_year is None:
                missing.append(
                    ImportIssue(None, "year", "no year: add a 年度 column or choose a year", r.id)
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
) -> ImportResult:
    """Validate and store one file in a single transaction (see the module docstring).

    Raises:
        ImportRejected: the file has bad rows or clashes with stored proposals; nothing stored.
    """
    report = progress or (lambda done, total, message: None)
    report(0, 0, "正在读取文件")
    sha = _file_sha256(path)
    records = read_upload(path, file_name, default_year)
    result = ImportResult(file_name=file_name, sha256=sha, rows=len(records))
    result.years = sorted({int(r.year) for r in records})
    report(0, len(records), "正在核对")

    try:
        with factory() as session, session.begin():
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
                            f"proposal {r.id} of {r.year} is already stored with different "
                            "content; choose 'update existing' to replace it",
                            r.id,
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
    except IntegrityError:
        # Another import stored some of these ids between our check and our insert.
        raise ImportRejected(
            file_name,
            [ImportIssue(None, "id", "another import stored some of these ids just now; retry")],
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
