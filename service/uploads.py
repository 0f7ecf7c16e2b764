"""Uploaded files: saved privately to the data folder with a size limit, removed after use.

An upload may hold personal data (a 提案人 column), so it lives only as long as its import:
the import job removes it, and :func:`clean_uploads` removes at start-up whatever a crashed
process left behind. Each file's name carries the id of the process that saved it, so several
workers sharing one data folder never remove each other's files.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from pathlib import Path

from fastapi import HTTPException, UploadFile

from service.files import FILE_MODE, private_dir

log = logging.getLogger("tian.service.uploads")

ALLOWED = {".csv", ".tsv", ".xlsx", ".xlsm", ".jsonl", ".txt"}
_NAME = re.compile(r"^up-(\d+)-[0-9a-f]+\.[a-z]+$")


def safe_name(name: str | None) -> str:
    """The file's base name without folders or control characters (for messages and records)."""
    base = os.path.basename((name or "upload").replace("\\", "/"))
    return re.sub(r"[\x00-\x1f\x7f]", "", base)[:200] or "upload"


async def save_upload(upload: UploadFile, folder: Path, max_bytes: int) -> tuple[Path, str]:
    """Write an upload to a private (0600) file; 415 for other types, 413 past ``max_bytes``."""
    name = safe_name(upload.filename)
    suffix = Path(name).suffix.lower()
    if suffix not in ALLOWED:
        raise HTTPException(
            415,
            f"{name}：不支持的文件类型 {suffix or '（无扩展名）'}；请上传 .xlsx、.csv 或 .jsonl 文件",
        )
    private_dir(folder)
    path = folder / f"up-{os.getpid()}-{secrets.token_hex(8)}{suffix}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := await upload.read(1 << 20):
                size += len(chunk)
                if size > max_bytes:
                    raise HTTPException(
                        413, f"{name}：文件超过 {max_bytes // (1024 * 1024)} MB 的上限"
                    )
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, name


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process has just started: nothing in the folder is its own yet
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_uploads(folder: Path) -> int:
    """Remove uploads left by processes that are gone (call at start-up); returns how many.

    Files of a live process (another worker) are kept; anything else in the folder that is
    not a live worker's upload (older tempfile names included) is removed.
    """
    if not folder.is_dir():
        return 0
    removed = 0
    for path in folder.iterdir():
        if not path.is_file():
            continue
        match = _NAME.match(path.name)
        if match and _alive(int(match.group(1))):
            continue
        try:
            path.unlink()
            removed += 1
        except OSError as exc:
            log.warning("cannot remove a stale upload (%s)", type(exc).__name__)
    if removed:
        log.info("removed %d upload(s) left by a stopped process", removed)
    return removed
