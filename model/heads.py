"""The three prediction heads and how each reads its target from a proposal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from model.records import Proposal

SINGLE_LABEL_HEADS: tuple[str, ...] = ("category", "main_unit")
MULTI_LABEL_HEADS: tuple[str, ...] = ("co_units",)
HEADS: tuple[str, ...] = SINGLE_LABEL_HEADS + MULTI_LABEL_HEADS


def single_targets(proposals: Sequence[Proposal], head: str) -> list[str | None]:
    """The label of a single-label head for each proposal; None where the row lacks it."""
    if head not in SINGLE_LABEL_HEADS:
        raise ValueError(f"{head!r} is not a single-label head")
    return [getattr(p, head) or None for p in proposals]


def multi_targets(proposals: Sequence[Proposal], head: str = "co_units") -> list[list[str]]:
    """The label list of a multi-label head for each proposal (empty where none)."""
    if head not in MULTI_LABEL_HEADS:
        raise ValueError(f"{head!r} is not a multi-label head")
    return [list(getattr(p, head) or []) for p in proposals]


def has_multi_labels(proposals: Sequence[Proposal]) -> list[bool]:
    """Which rows carry co-unit information at all.

    A row counts as labelled for co_units when it has a main unit: an office that records the
    main unit also records co-handling units (an empty list then means "none"). Rows without a
    main unit say nothing about co-units and are masked out of training and evaluation.
    """
    return [bool(p.main_unit) for p in proposals]
