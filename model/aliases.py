"""Unit renames, merges and splits: map old handling-unit names to the current ones.

Government units are reorganised every few years (卫生和计划生育委员会 → 卫生健康委员会,
乡村振兴局 merged into 农业农村局). The office keeps a small CSV of such changes:

    old_name,current_name,since,note
    市卫生和计划生育委员会,市卫生健康委员会,2019,机构改革：更名

Applying it to old years lets them still teach the model the current names. Chains are followed
(扶贫开发办公室 → 乡村振兴局 → 农业农村局). An old name listed with two or more current names is
a split: there is no way to know which successor a proposal belongs to, so such names are left
as they are and reported, never mapped silently. Chinese headers (原名称, 现名称, 起始年份, 备注)
are accepted too.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from model.records import Proposal
from model.text import normalize_label

__all__ = ["DEFAULT_ALIASES", "AliasError", "AliasMap", "AliasReport", "load_aliases"]

DEFAULT_ALIASES = Path(__file__).resolve().parent.parent / "data" / "unit_aliases.csv"

_HEADERS = {
    "old_name": ("old_name", "原名称", "旧名称"),
    "current_name": ("current_name", "现名称", "新名称"),
    "since": ("since", "起始年份", "年份"),
    "note": ("note", "备注", "说明"),
}


class AliasError(ValueError):
    """A bad alias file; the message names the file, the row and what is wrong."""


@dataclass(frozen=True)
class AliasReport:
    """What applying the map changed: renamed names with counts, rows holding a split name."""

    renamed: dict[str, int] = field(default_factory=dict)
    split_rows: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "renamed": dict(self.renamed),
            "split": {
                name: {"rows": len(ids), "ids": ids[:20]} for name, ids in self.split_rows.items()
            },
        }


@dataclass
class AliasMap:
    """Old unit name → current name (after following chains), plus the split names.

    Attributes:
        direct: each old name's listed successor (only names with exactly one).
        splits: old names listed with several successors, each with those successors.
        since: the year each change took effect, where given.
        source: the file it came from, and its SHA-256 (recorded in bundle manifests).
    """

    direct: dict[str, str] = field(default_factory=dict)
    splits: dict[str, list[str]] = field(default_factory=dict)
    since: dict[str, int] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)

    def canonical(self, name: str) -> str:
        """The current name for `name`: itself when it is current, unknown or a split."""
        seen = [name]
        while name in self.direct:
            name = self.direct[name]
            if name in seen:  # cannot happen after load's check; guards hand-built maps
                raise AliasError(f"alias cycle: {' → '.join([*seen, name])}")
            seen.append(name)
        return name

    def is_split(self, name: str) -> bool:
        return name in self.splits

    @property
    def current_names(self) -> set[str]:
        """Names the map says exist today (the ends of its chains and split successors)."""
        ends = {self.canonical(n) for n in self.direct.values()}
        return ends | {n for successors in self.splits.values() for n in successors}

    def status(self, name: str, known: Iterable[str] = ()) -> str:
        """'split', 'alias' (mapped to a current name), 'current' (in `known` or the map's
        current names) or 'unknown' (a name nobody has told tian about)."""
        if name in self.splits:
            return "split"
        if name in self.direct:
            return "alias"
        if name in set(known) or name in self.current_names:
            return "current"
        return "unknown"

    def apply(self, proposals: Sequence[Proposal]) -> tuple[list[Proposal], AliasReport]:
        """Copies of `proposals` with main and co-handling units mapped to current names.

        Co-units are de-duplicated after mapping (two old units merged into one) and a co-unit
        equal to the main unit is dropped. Split names stay and their rows are reported.
        """
        renamed: Counter[str] = Counter()
        split_rows: dict[str, list[str]] = {}

        def map_name(name: str, pid: str) -> str:
            if name in self.splits:
                split_rows.setdefault(name, []).append(pid)
                return name
            new = self.canonical(name)
            if new in self.splits:  # the chain ends in a split: map as far as is certain
                split_rows.setdefault(new, []).append(pid)
            if new != name:
                renamed[name] += 1
            return new

        out = []
        for p in proposals:
            main = map_name(p.main_unit, p.id) if p.main_unit else p.main_unit
            co = list(dict.fromkeys(map_name(u, p.id) for u in p.co_units))
            co = [u for u in co if u != main]
            out.append(replace(p, main_unit=main, co_units=co))
        return out, AliasReport(dict(renamed.most_common()), split_rows)

    def to_manifest(self) -> dict[str, Any]:
        """A short record for a bundle's manifest: which map, and its size."""
        return {**self.source, "aliases": len(self.direct), "splits": len(self.splits)}


def load_aliases(path: str | Path | None = None) -> AliasMap:
    """Read an alias CSV (default: the shipped `data/unit_aliases.csv`).

    Raises:
        AliasError: missing columns, empty names, a name mapped to itself, a bad year, the same
            line twice, or a cycle (A → B → A); the message names the file and row.
    """
    path = Path(path) if path is not None else DEFAULT_ALIASES
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise AliasError(f"{path}: alias file not found") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AliasError(f"{path}: not UTF-8 text ({exc})") from exc
    reader = csv.reader(text.splitlines())
    header = [h.strip().lower() for h in next(reader, [])]
    cols: dict[str, int] = {}
    for key, names in _HEADERS.items():
        for i, h in enumerate(header):
            if h in names:
                cols[key] = i
    missing = [k for k in ("old_name", "current_name") if k not in cols]
    if missing:
        raise AliasError(f"{path}: missing column(s) {', '.join(missing)} (header: {header})")

    successors: dict[str, list[str]] = {}
    since: dict[str, int] = {}
    for row_no, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        cell = {k: (row[i].strip() if i < len(row) else "") for k, i in cols.items()}
        old, new = normalize_label(cell["old_name"]), normalize_label(cell["current_name"])
        where = f"{path}, row {row_no}"
        if not old or not new:
            raise AliasError(f"{where}: old_name and current_name must both be filled in")
        if old == new:
            raise AliasError(f"{where}: {old} is mapped to itself")
        if new in successors.get(old, []):
            raise AliasError(f"{where}: {old} → {new} is listed twice")
        successors.setdefault(old, []).append(new)
        year = cell.get("since", "")
        if year:
            if not year.isdigit() or not 1900 <= int(year) <= 2100:
                raise AliasError(f"{where}, column since: {year!r} is not a year")
            since[old] = int(year)

    aliases = AliasMap(
        direct={o: s[0] for o, s in successors.items() if len(s) == 1},
        splits={o: s for o, s in successors.items() if len(s) > 1},
        since=since,
        source={"file": str(path), "sha256": hashlib.sha256(raw).hexdigest()},
    )
    for name in aliases.direct:
        chain = [name]
        while chain[-1] in aliases.direct:
            nxt = aliases.direct[chain[-1]]
            if nxt in chain:
                raise AliasError(f"{path}: alias cycle {' → '.join([*chain, nxt])}")
            chain.append(nxt)
    return aliases
