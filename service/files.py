"""Private files and folders: the data folder holds names and password hashes.

Folders are made 0700 and files 0600 whatever the process umask, and existing ones are
tightened at start-up (when this user owns them), so nobody else on the machine can read the
database, the uploads or the secret key.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("tian.service.files")

DIR_MODE = 0o700
FILE_MODE = 0o600


def _tighten(path: Path, mode: int) -> None:
    try:
        info = path.stat()
        if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & ~mode:
            path.chmod(mode)
    except PermissionError:
        log.warning("cannot make %s private (not the owner)", path)


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as 0700; tighten it when it exists."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    _tighten(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty as 0600 when missing (before anyone writes to it); tighten it."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        os.close(fd)
    except FileExistsError:
        _tighten(path, FILE_MODE)
    return path
