"""How sure the model is about a proposal and whether a person still has to look, given what
reviewers already decided.

The suggestion's "review" block (contract 1: ``{"confidence", "flag", "target_accuracy",
"reasons"}``) is used when the model wrote one. Older suggestions fall back to the product of
the category and main-unit top scores, and to the heads' abstain flags. A head a reviewer has
decided no longer needs a look, so a reviewed proposal is never 需人工判断.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

JOINT_HEADS = ("category", "main_unit")
# Reason codes of the review block that name one head; any other reason (below_target, ...)
# concerns the suggestion as a whole.
REASON_HEAD = {
    "category_uncertain": "category",
    "main_unit_uncertain": "main_unit",
    "co_units_uncertain": "co_units",
}
REASON_TEXT = {
    "category_uncertain": "类别不确定",
    "main_unit_uncertain": "主办单位不确定",
    "co_units_uncertain": "协办单位不确定",
    "below_target": "联合置信度低于目标准确率所需",
}


def joint_confidence(suggestion: Mapping[str, Any] | None) -> float | None:
    """Calibrated probability that every head's top suggestion is right, or None."""
    if not suggestion:
        return None
    review = suggestion.get("review")
    if isinstance(review, dict) and isinstance(review.get("confidence"), int | float):
        return float(review["confidence"])
    scores = [float(suggestion[h][0]["score"]) for h in JOINT_HEADS if suggestion.get(h)]
    if not scores:
        return None
    out = 1.0
    for s in scores:
        out *= s
    return out


def open_flags(suggestion: Mapping[str, Any] | None, decided: Collection[str]) -> list[str]:
    """Reasons a person should still look at the suggestion (codes), given decided fields."""
    if not suggestion:
        return []
    undecided = [h for h in JOINT_HEADS if h not in decided]
    if not undecided:
        return []
    review = suggestion.get("review")
    if isinstance(review, dict) and "flag" in review:
        if not review.get("flag"):
            return []
        reasons = [str(r) for r in review.get("reasons") or []] or ["below_target"]
        return [r for r in reasons if REASON_HEAD.get(r, undecided[0]) not in decided]
    return [
        f"{head}_uncertain"
        for head, info in (suggestion.get("abstain") or {}).items()
        if isinstance(info, dict) and info.get("flag") and head not in decided
    ]


def reason_text(codes: Collection[str]) -> str:
    """The reasons in Chinese, joined for a tooltip."""
    return "；".join(REASON_TEXT.get(c, c) for c in codes)
