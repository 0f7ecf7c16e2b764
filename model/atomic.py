"""Atomic writes: a reader sees the old file (or folder) or the new one, never half of either.

Every file the project writes in place goes through here, so that all of them fail the same
way: the new content is written to a temporary file in the same folder (a rename is atomic
only within one file system), flushed to disk, and renamed over the target. On any failure
the temporary file is removed and the old file is left exactly as it was; nothing is ever
deleted before its replacement is in place.

File modes: a new file gets the mode a plain ``open(path, "w")`` would give it (0644 under
the usual umask 022) and a replaced file keeps its mode, unless the caller asks for
``private=True`` (0600: secrets, personal data). Folders are built with
:func:`staging_folder` and swapped in with :func:`replace_folder`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "replace_folder",
    "staging_folder",
]

_PRIVATE_FILE = 0o600
_PRIVATE_FOLDER = 0o700


def _temp_name(path: Path, suffix: str) -> Path:
    # Hidden, in the target's folder, and unguessable so two writers never share one.
    return path.with_name(f".{path.name}.{secrets.token_hex(6)}{suffix}")


def _create_temp(path: Path, private: bool) -> Path:
    """Create an empty temporary file beside ``path`` with the mode the target should get.

    Opening with O_CREAT | O_EXCL and mode 0666 lets the kernel apply the umask, exactly as
    a plain open would (mkstemp would make it 0600 and reading the umask is not thread-safe).
    """
    mode = _PRIVATE_FILE if private else 0o666
    for _ in range(100):
        tmp = _temp_name(path, ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            continue
        os.close(fd)
        if not private:
            with contextlib.suppress(FileNotFoundError):
                # A replaced file keeps its mode, as it would when opened for writing.
                os.chmod(tmp, path.stat().st_mode & 0o7777)
        return tmp
    raise FileExistsError(f"could not create a temporary file beside {path}")


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every platform allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(
    path: str | Path, write: Callable[[Path], object], *, private: bool = False
) -> Path:
    """Write ``path`` atomically with ``write(tmp)``, which fills the temporary file ``tmp``.

    For writers that need a path of their own (a spreadsheet library, a CSV writer with its
    own encoding). The folder must exist. Returns ``path``.

    Raises:
        Whatever ``write`` raises; the temporary file is removed and any old file is intact.
    """
    path = Path(path)
    tmp = _create_temp(path, private)
    try:
        write(tmp)
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
    return path


def atomic_write_bytes(path: str | Path, data: bytes, *, private: bool = False) -> Path:
    """Replace ``path`` with ``data`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data), private=private)


def atomic_write_text(
    path: str | Path, text: str, *, encoding: str = "utf-8", private: bool = False
) -> Path:
    """Replace ``path`` with ``text`` atomically; newlines are written as given."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding=encoding, newline="") as fh:
            fh.write(text)

    return atomic_write(path, write, private=private)


def atomic_write_json(
    path: str | Path,
    data: Any,
    *,
    indent: int | None = 2,
    default: Callable[[Any], Any] | None = None,
    private: bool = False,
) -> Path:
    """Replace ``path`` with ``data`` as UTF-8 JSON (Chinese kept readable), ending in a newline.

    The data is serialised before anything touches the disk, so a value that is not JSON
    (a ``TypeError`` from ``default``) leaves no trace at all.
    """
    text = json.dumps(data, ensure_ascii=False, indent=indent, default=default) + "\n"
    return atomic_write_text(path, text, private=private)


@contextlib.contextmanager
def staging_folder(target: str | Path, *, private: bool = False) -> Iterator[Path]:
    """Yield an empty folder beside ``target``; on success it replaces ``target`` as a whole.

    Use as ``with staging_folder(out) as tmp: write files into tmp``. When the block raises,
    the staging folder is removed and ``target`` is untouched; when it completes, the folder
    is swapped in with :func:`replace_folder`. The folder gets the mode a plain mkdir would.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.parent))
    try:
        if not private:
            # mkdtemp makes the folder 0700; a plain mkdir honours the umask instead.
            umask = _umask()
            os.chmod(staging, 0o777 & ~umask)
        yield staging
        replace_folder(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _umask() -> int:
    """The process umask, read without changing it where the platform allows."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    umask = os.umask(0o022)  # fallback: briefly set, then restore
    os.umask(umask)
    return umask


def replace_folder(staging: str | Path, target: str | Path) -> None:
    """Put the complete folder ``staging`` in place of ``target`` (which may not exist yet).

    The old folder is renamed aside, the new one renamed in, and only then is the old one
    deleted. If moving the new one in fails, the old one is put back and the error raised;
    ``staging`` is then left for the caller to remove (:func:`staging_folder` does).
    """
    staging, target = Path(staging), Path(target)
    if not staging.is_dir():
        raise NotADirectoryError(f"staging folder {staging} does not exist")
    old: Path | None = None
    if target.exists() or target.is_symlink():
        old = _temp_name(target, ".old")
        os.replace(target, old)
    try:
        os.replace(staging, target)
    except BaseException:
        if old is not None:
            # If something took the place meanwhile the old folder stays aside, never deleted.
            with contextlib.suppress(OSError):
                os.replace(old, target)
        raise
    _fsync_folder(target.parent)
    if old is not None:
        # The new folder is in place; a failure to delete the old one only leaves litter.
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
