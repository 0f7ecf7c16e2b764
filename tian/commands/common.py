"""Helpers shared by the subcommands: reading inputs, choosing years, writing outputs safely."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tian.errors import UserError


def read_inputs(paths: Sequence[str], years: Sequence[int] | None = None) -> list[Any]:
    """Read one or more proposal tables; keep only `years` when given. Errors name the file."""
    from model.records import read_proposals

    proposals = []
    origin: dict[tuple[int | None, str], str] = {}
    for path in paths:
        if not Path(path).is_file():
            raise UserError(f"{path}: no such file")
        for p in read_proposals(path):
            key = (p.year, p.id)
            if key in origin:
                raise UserError(
                    f"id {p.id} (year {p.year}) appears in both {origin[key]} and {path}"
                )
            origin[key] = path
            proposals.append(p)
    if years:
        wanted = set(years)
        proposals = [p for p in proposals if p.year in wanted]
        if not proposals:
            raise UserError(
                f"no rows for year(s) {', '.join(map(str, years))} in {', '.join(paths)}"
            )
    if not proposals:
        raise UserError(f"no rows in {', '.join(paths)}")
    return proposals


def write_jsonl(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write one JSON object a line, atomically: a failure leaves any earlier file untouched."""
    from model.atomic import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        # Rows are streamed: a prediction run need not hold all of its output in memory.
        with tmp.open("w", encoding="utf-8", newline="\n") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")

    return atomic_write(path, write)


def require_bundle(folder: str) -> Path:
    path = Path(folder)
    if not (path / "manifest.json").is_file():
        raise UserError(
            f"{folder} is not a model bundle (no manifest.json); train one with `tian train`"
        )
    return path
