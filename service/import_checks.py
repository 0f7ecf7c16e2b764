"""Warnings about an accepted import: category and unit names that nobody knows yet.

A new name is often a typo or an old name (环保 for 生态环境), so the reviewer is told, with
the nearest known name, but the file is still imported: government reorganisations bring
real new names too. Known names are the live model's label sets and the values already
stored in the database.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import Proposal

HEADS = ("category", "main_unit", "co_units")
_NAMES = {"category": "类别", "main_unit": "主办单位", "co_units": "协办单位"}
_UNIT_HEADS = ("main_unit", "co_units")
MAX_WARNINGS = 50


def stored_labels(session: Session) -> dict[str, set[str]]:
    """Category and unit names already in the database (units: main and co-units together)."""
    categories: set[str] = set()
    units: set[str] = set()
    for category, main_unit, co_units in session.execute(
        select(Proposal.category, Proposal.main_unit, Proposal.co_units)
    ):
        if category:
            categories.add(category)
        if main_unit:
            units.add(main_unit)
        units.update(u for u in co_units or [] if isinstance(u, str))
    return {"category": categories, "main_unit": set(units), "co_units": set(units)}


def merge_known(*sources: Mapping[str, Iterable[str]] | None) -> dict[str, set[str]]:
    """Union of label sets per head; a unit known as main unit is known as co-unit too."""
    known: dict[str, set[str]] = {head: set() for head in HEADS}
    for source in sources:
        for head, labels in (source or {}).items():
            if head in known:
                known[head].update(labels)
    units = known["main_unit"] | known["co_units"]
    known["main_unit"], known["co_units"] = units, set(units)
    return known


def unknown_labels(records: Sequence[Any], known: Mapping[str, set[str]]) -> list[dict[str, Any]]:
    """One warning per unknown name (heads with no known names are not checked).

    Each warning: ``{"code", "column", "value", "count", "ids", "nearest", "message"}``, the
    message in Chinese for the import page.
    """
    seen: dict[tuple[str, str], list[str]] = {}
    for r in records:
        values = {
            "category": [r.category] if r.category else [],
            "main_unit": [r.main_unit] if r.main_unit else [],
            "co_units": list(r.co_units or []),
        }
        for head, labels in values.items():
            if not known.get(head):
                continue
            for label in labels:
                if label not in known[head]:
                    seen.setdefault((head, label), []).append(str(r.id))
    warnings = []
    for (head, label), ids in list(seen.items())[:MAX_WARNINGS]:
        close = difflib.get_close_matches(label, sorted(known[head]), n=1, cutoff=0.4)
        nearest = close[0] if close else None
        shown = "、".join(ids[:5]) + (f" 等 {len(ids)} 件" if len(ids) > 5 else "")
        message = f"{_NAMES[head]}“{label}”不是已知的名称（{shown}）"
        message += f"，是否应为“{nearest}”？" if nearest else "；请确认是否为新名称。"
        warnings.append(
            {
                "code": "unknown_label",
                "column": head,
                "value": label,
                "count": len(ids),
                "ids": ids[:20],
                "nearest": nearest,
                "message": message,
            }
        )
    return warnings
