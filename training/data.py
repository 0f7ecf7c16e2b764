"""Training data: label summaries and splits (by year, or stratified)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.model_selection import train_test_split

from model.heads import HEADS, SINGLE_LABEL_HEADS, has_multi_labels, multi_targets, single_targets
from model.records import Proposal


def summarise(proposals: Sequence[Proposal]) -> dict[str, Any]:
    """Counts that go into a bundle's manifest: rows, years and label frequencies (no texts,
    no proposers)."""
    years = Counter(p.year for p in proposals if p.year is not None)
    summary: dict[str, Any] = {
        "rows": len(proposals),
        "years": {str(y): n for y, n in sorted(years.items())},
    }
    for head in SINGLE_LABEL_HEADS:
        counts = Counter(t for t in single_targets(proposals, head) if t)
        summary[head] = dict(counts.most_common())
    co = Counter(u for units in multi_targets(proposals) for u in units)
    summary["co_units"] = dict(co.most_common())
    summary["labelled_rows"] = {
        head: sum(1 for t in single_targets(proposals, head) if t) for head in SINGLE_LABEL_HEADS
    }
    summary["labelled_rows"]["co_units"] = sum(has_multi_labels(proposals))
    assert set(summary) >= set(HEADS)
    return summary


def split_by_year(
    proposals: Sequence[Proposal], test_years: Sequence[int] | None = None
) -> tuple[list[Proposal], list[Proposal]]:
    """Train on earlier years, test on the latest (or the given) years: how the model is used."""
    years = sorted({p.year for p in proposals if p.year is not None})
    if not years:
        raise ValueError("no proposal has a year, so a split by year is impossible")
    chosen = set(test_years) if test_years else {years[-1]}
    train = [p for p in proposals if p.year is not None and p.year not in chosen]
    test = [p for p in proposals if p.year in chosen]
    if not train or not test:
        raise ValueError(f"split by year left an empty side (years present: {years})")
    return train, test


def stratified_split(
    proposals: Sequence[Proposal], head: str, test_size: float, seed: int = 0
) -> tuple[list[Proposal], list[Proposal]]:
    """Stratified split on one head's labels; labels too rare to split go to the training side."""
    rows = [p for p in proposals if getattr(p, head)]
    counts = Counter(getattr(p, head) for p in rows)
    splittable = [p for p in rows if counts[getattr(p, head)] >= 2]
    rare = [p for p in rows if counts[getattr(p, head)] < 2]
    idx = np.arange(len(splittable))
    train_idx, test_idx = train_test_split(
        idx,
        test_size=test_size,
        random_state=seed,
        stratify=[getattr(p, head) for p in splittable],
    )
    return [splittable[i] for i in train_idx] + rare, [splittable[i] for i in test_idx]


def to_dataset(proposals: Sequence[Proposal]) -> Any:
    """The proposals as a Hugging Face `datasets.Dataset` (the training data pipeline's format).

    Columns: id, year, title, content, category, main_unit, co_units (a list), no proposer:
    personal data never enters training data.
    """
    from datasets import Dataset, Features, Value
    from datasets import Sequence as ListOf

    features = Features(
        {
            "id": Value("string"),
            "year": Value("int32"),
            "title": Value("string"),
            "content": Value("string"),
            "category": Value("string"),
            "main_unit": Value("string"),
            "co_units": ListOf(Value("string")),
        }
    )
    return Dataset.from_dict(
        {
            "id": [p.id for p in proposals],
            "year": [p.year for p in proposals],
            "title": [p.title or "" for p in proposals],
            "content": [p.content or "" for p in proposals],
            "category": [p.category for p in proposals],
            "main_unit": [p.main_unit for p in proposals],
            "co_units": [list(p.co_units or []) for p in proposals],
        },
        features=features,
    )
