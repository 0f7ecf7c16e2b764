"""model.atomic: a failed write or swap leaves the old file or folder exactly as it was."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from model import atomic
from model.atomic import (
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    replace_folder,
    staging_folder,
)


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_writes_text_bytes_and_json(tmp_path: Path) -> None:
    atomic_write_text(tmp_path / "a.txt", "提案\r\n")
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    atomic_write_json(tmp_path / "c.json", {"类别": "经济", "n": 1})
    assert (tmp_path / "a.txt").read_bytes() == "提案\r\n".encode()
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    expected = '{\n  "类别": "经济",\n  "n": 1\n}\n'
    assert (tmp_path / "c.json").read_text(encoding="utf-8") == expected
    assert _names(tmp_path) == ["a.txt", "b.bin", "c.json"]


def test_modes_follow_a_plain_open_unless_private(tmp_path: Path) -> None:
    atomic_write_text(tmp_path / "plain.txt", "x")
    atomic_write_text(tmp_path / "secret.txt", "x", private=True)
    assert _mode(tmp_path / "plain.txt") == 0o644
    assert _mode(tmp_path / "secret.txt") == 0o600
    # A replaced file keeps the mode it had, as opening it for writing would.
    (tmp_path / "shared.txt").write_text("old")
    os.chmod(tmp_path / "shared.txt", 0o664)
    atomic_write_text(tmp_path / "shared.txt", "new")
    assert _mode(tmp_path / "shared.txt") == 0o664


def test_failure_while_writing_keeps_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "data.csv"
    target.write_text("old", encoding="utf-8")

    def half_then_fail(tmp: Path) -> None:
        tmp.write_text("half", encoding="utf-8")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_text(encoding="utf-8") == "old"
    assert _names(tmp_path) == ["data.csv"]


def test_failed_rename_keeps_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "report.json"
    target.write_text("old", encoding="utf-8")

    def refuse(src: object, dst: object) -> None:
        raise PermissionError("read-only")

    monkeypatch.setattr(atomic.os, "replace", refuse)
    with pytest.raises(PermissionError):
        atomic_write_json(target, {"new": True})
    assert target.read_text(encoding="utf-8") == "old"
    assert _names(tmp_path) == ["report.json"]


def test_json_that_cannot_be_serialised_touches_nothing(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(TypeError):
        atomic_write_json(target, {"bad": object()})
    assert target.read_text(encoding="utf-8") == "old"
    assert _names(tmp_path) == ["x.json"]


def _folder(path: Path, content: str) -> Path:
    path.mkdir()
    (path / "weights.bin").write_text(content, encoding="utf-8")
    return path


def test_replace_folder_swaps_and_deletes_the_old_one_after(tmp_path: Path) -> None:
    target = _folder(tmp_path / "bundle", "old")
    staging = _folder(tmp_path / ".bundle.staging", "new")
    replace_folder(staging, target)
    assert (target / "weights.bin").read_text(encoding="utf-8") == "new"
    assert _names(tmp_path) == ["bundle"]
    # A target that does not exist yet is simply created.
    replace_folder(_folder(tmp_path / ".other.staging", "first"), tmp_path / "other")
    assert (tmp_path / "other" / "weights.bin").read_text(encoding="utf-8") == "first"


def test_failed_swap_puts_the_old_folder_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = _folder(tmp_path / "bundle", "old")
    staging = _folder(tmp_path / ".bundle.staging", "new")
    real_replace = os.replace

    def fail_moving_the_new_one_in(src: str | Path, dst: str | Path) -> None:
        if Path(src) == staging:
            raise OSError("cross-device link")
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", fail_moving_the_new_one_in)
    with pytest.raises(OSError, match="cross-device"):
        replace_folder(staging, target)
    assert (target / "weights.bin").read_text(encoding="utf-8") == "old"
    # The staging folder is the caller's to remove; nothing else is left behind.
    assert _names(tmp_path) == [".bundle.staging", "bundle"]


def test_staging_folder_replaces_on_success_and_cleans_up_on_failure(tmp_path: Path) -> None:
    target = _folder(tmp_path / "index", "old")
    with pytest.raises(RuntimeError), staging_folder(target) as tmp:
        (tmp / "weights.bin").write_text("half", encoding="utf-8")
        raise RuntimeError("encoder crashed")
    assert (target / "weights.bin").read_text(encoding="utf-8") == "old"
    assert _names(tmp_path) == ["index"]

    with staging_folder(target) as tmp:
        (tmp / "weights.bin").write_text("new", encoding="utf-8")
    assert (target / "weights.bin").read_text(encoding="utf-8") == "new"
    assert _mode(target) == 0o755
    assert _names(tmp_path) == ["index"]
