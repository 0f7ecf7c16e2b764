"""Turn a classifier's probabilities into the suggestions reviewers see.

One suggestion per proposal, in the `tian predict` format of DESIGN.md:

    {"id": ..., "category": [{"label", "score"}, ...], "main_unit": [...], "co_units": [...],
     "abstain": {"category": {...}, "main_unit": {...}}}

Lists are best first; scores are calibrated probabilities. For each single-label head the
abstain entry holds the conformal prediction set ("the right label is in this set with
probability `coverage`") and `flag`: true when that set holds more than one label, i.e. the
model cannot single out one answer at the promised coverage.

Every suggestion also carries the "review" block (contract 1): the calibrated joint confidence
that every head's top suggestion is right, and `flag`: true when a person should look because
that confidence is below the bundle's threshold for its target accuracy (see model.selective).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from model.bundle import Classifier
from model.calibration import prediction_sets
from model.heads import SINGLE_LABEL_HEADS
from model.selective import review_block


def ranked(probs: np.ndarray, labels: Sequence[str], top_k: int) -> list[dict[str, Any]]:
    order = np.argsort(-probs)[:top_k]
    return [{"label": labels[i], "score": round(float(probs[i]), 4)} for i in order]


def suggest(
    classifier: Classifier,
    ids: Sequence[str],
    texts: Sequence[str],
    *,
    top_k: int = 3,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Suggestions for each text, in input order."""
    if len(ids) != len(texts):
        raise ValueError("ids and texts differ in length")
    probs = classifier.predict_proba(list(texts), progress=progress)
    sets = {
        head: prediction_sets(probs[head], classifier.calibration.heads[head].threshold)
        for head in SINGLE_LABEL_HEADS
        if head in probs
    }
    co_threshold = classifier.calibration.co_unit_threshold
    review = classifier.calibration.review
    repeats = _near_repeats(classifier, texts)
    out = []
    for i, pid in enumerate(ids):
        row: dict[str, Any] = {"id": pid}
        abstain: dict[str, Any] = {}
        for head in SINGLE_LABEL_HEADS:
            if head not in probs:
                row[head] = []
                continue
            labels = classifier.labels[head]
            row[head] = ranked(probs[head][i], labels, top_k)
            members = [labels[j] for j in sets[head][i]]
            abstain[head] = {
                "flag": len(members) > 1,
                "prediction_set": members,
                "coverage": classifier.calibration.heads[head].coverage,
            }
        if "co_units" in probs:
            co = ranked(probs["co_units"][i], classifier.labels["co_units"], top_k)
            main = row["main_unit"][0]["label"] if row.get("main_unit") else None
            row["co_units"] = [c for c in co if c["label"] != main]
            abstain["co_units"] = {"suggested_above": co_threshold}
        else:
            row["co_units"] = []
        row["abstain"] = abstain
        row["review"] = review_block(
            review, probs, i, {h: a["flag"] for h, a in abstain.items() if "flag" in a}
        )
        if repeats is not None and repeats[i] is not None:
            row["review"]["near_repeat_of"] = repeats[i]
        out.append(row)
    return out


def _near_repeats(classifier: Classifier, texts: Sequence[str]) -> list[Any] | None:
    """Ids of the past proposals that each text nearly repeats, where the model knows them."""
    finder = getattr(classifier, "repeat_ids", None)
    return finder(list(texts)) if callable(finder) else None
