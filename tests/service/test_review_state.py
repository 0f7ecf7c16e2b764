"""Joint confidence and flags that follow what reviewers decided (contract 1 with fallback)."""

from __future__ import annotations

import pytest

from service.review import ProposalView
from service.review_state import joint_confidence, open_flags

OLD = {
    "category": [{"label": "教育科技", "score": 0.99}],
    "main_unit": [{"label": "市教育局", "score": 0.5}],
    "abstain": {"category": {"flag": False}, "main_unit": {"flag": True}},
}
NEW = {
    **OLD,
    "review": {
        "confidence": 0.42,
        "flag": True,
        "target_accuracy": 0.95,
        "reasons": ["main_unit_uncertain"],
    },
}


def view(suggestion: dict, decided: set[str], dup: float = 0.0, group: str | None = None):
    return ProposalView(
        row_id=1,
        year=2024,
        pid="X",
        title="t",
        current={"merge_group": group},
        decided=decided,
        suggestion=suggestion,
        suggestion_id=1,
        model_version="v",
        duplicate_score=dup,
    )


def test_joint_confidence_prefers_the_review_block() -> None:
    assert joint_confidence(OLD) == pytest.approx(0.495)
    assert joint_confidence(NEW) == 0.42
    assert joint_confidence(None) is None
    assert view(OLD, set()).confidence == pytest.approx(0.495)


def test_flags_clear_as_heads_are_decided() -> None:
    for s in (OLD, NEW):
        assert open_flags(s, set()) == ["main_unit_uncertain"]
        assert open_flags(s, {"category"}) == ["main_unit_uncertain"]
        assert open_flags(s, {"main_unit"}) == []
        v = view(s, set())
        assert v.abstain and v.needs_attention
        done = view(s, {"category", "main_unit"})
        assert done.status == "reviewed" and not done.abstain and not done.needs_attention
    below = {**OLD, "review": {"confidence": 0.3, "flag": True, "reasons": ["below_target"]}}
    assert open_flags(below, {"category"}) == ["below_target"]
    assert open_flags(below, {"category", "main_unit"}) == []


def test_duplicates_need_attention_until_merged_or_reviewed() -> None:
    calm = {**OLD, "abstain": {}}
    assert view(calm, set(), dup=0.9).needs_attention
    assert not view(calm, set(), dup=0.9, group="2024/X").needs_attention
    assert not view(calm, {"category", "main_unit"}, dup=0.9).needs_attention
