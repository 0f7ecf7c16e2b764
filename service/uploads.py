"""Uploaded files: saved to the data folder with a size limit, removed after use."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from fastapi import HTTPException, UploadFile

ALLOWED = {".csv", ".tsv", ".xlsx", ".xlsm", ".jsonl", ".txt"}


def safe_name(name: str | None) -> str:
    """The file's base name without folders or control characters (for messages and records)."""
    base = os.path.basename((name or "upload").replace("\\", "/"))
    return re.sub(r"[\x00-\x1f]", "", base)[:200] or "upload"


async def save_upload(upload: UploadFile, folder: Path, max_bytes: int) -> tuple[Path, str]:
    """Write an upload to a temporary file; 413 when larger than ``max_bytes``."""
    name = safe_name(upload.filename)
    suffix = Path(name).suffix.lower()
    if suffix not in ALLOWED:
        raise HTTPException(
            415, f"{name}: unsupported file type {suffix or '(none)'}; use .xlsx, .csv or .jsonl"
        )
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=suffix)
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := await upload.read(1 << 20):
                size += len(chunk)
                if size > max_bytes:
                    raise HTTPException(
                        413,
                        f"{name}: the file is larger than the {max_bytes // (1024 * 1024)} MB limit",
                    )
                out.write(chunk)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp), name
