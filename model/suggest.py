"""Turn a classifier's probabilities into the suggestions reviewers see.

One suggestion per proposal, in the `tian predict` format of DESIGN.md:

    {"id": ..., "category": [{"label", "score"}, ...], "main_unit": [...], "co_units": [...],
     "abstain": {"category": {...}, "main_unit": {...}}}

Lists are best first; scores are calibrated probabilities. Co-units are only those that clear
the bundle's calibrated cut (model.co_units; none is common). For each single-label head the
abstain entry holds the conformal prediction set ("the right label is in this set with
probability `coverage`") and `flag`: true when that set holds more than one label, i.e. the
model cannot single out one answer at the promised coverage.

Every suggestion also carries the "review" block (contract 1): the calibrated joint confidence
that every head's top suggestion is right, and `flag`: true when a person should look because
that confidence is below the bundle's threshold for its target accuracy (see model.selective).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NotRequired, TypedDict

import numpy as np

from model.bundle import Classifier
from model.calibration import prediction_sets
from model.co_units import chosen_co_units
from model.heads import SINGLE_LABEL_HEADS
from model.selective import review_block


class Ranked(TypedDict):
    """One suggested label and its calibrated probability."""

    label: str
    score: float


class HeadAbstain(TypedDict, total=False):
    """A head's abstain entry: the conformal set for single-label heads, the cut for co-units."""

    flag: bool
    prediction_set: list[str]
    coverage: float
    suggested_above: float


class Suggestion(TypedDict):
    """One proposal's suggestion, the `tian predict` row of DESIGN.md (a plain JSON object).

    A TypedDict, not a class of its own, so that every reader of stored suggestions and of
    `tian predict` output keeps working; ``service.schemas.SuggestionOut`` mirrors it for the
    API's schema. ``review`` is :func:`model.selective.review_block`'s block (plus
    ``near_repeat_of`` where the model knows past proposals); ``why`` is added by the service.
    """

    id: str
    category: list[Ranked]
    main_unit: list[Ranked]
    co_units: list[Ranked]
    abstain: dict[str, HeadAbstain]
    review: dict[str, Any]
    why: NotRequired[dict[str, Any]]


def ranked(probs: np.ndarray, labels: Sequence[str], top_k: int) -> list[Ranked]:
    """The ``top_k`` labels by probability, best first."""
    order = np.argsort(-probs)[:top_k]
    return [{"label": labels[i], "score": round(float(probs[i]), 4)} for i in order]


def suggest(
    classifier: Classifier,
    ids: Sequence[str],
    texts: Sequence[str],
    *,
    top_k: int = 3,
    progress: bool = False,
) -> list[Suggestion]:
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
    out: list[Suggestion] = []
    for i, pid in enumerate(ids):
        heads: dict[str, list[Ranked]] = {}
        abstain: dict[str, HeadAbstain] = {}
        for head in SINGLE_LABEL_HEADS:
            if head not in probs:
                heads[head] = []
                continue
            labels = classifier.labels[head]
            heads[head] = ranked(probs[head][i], labels, top_k)
            members = [labels[j] for j in sets[head][i]]
            abstain[head] = {
                "flag": len(members) > 1,
                "prediction_set": members,
                "coverage": classifier.calibration.heads[head].coverage,
            }
        co_units: list[Ranked] = []
        if "co_units" in probs:
            co_labels = classifier.labels["co_units"]
            main = heads["main_unit"][0]["label"] if heads.get("main_unit") else None
            chosen = chosen_co_units(
                probs["co_units"][i : i + 1],
                co_threshold,
                [co_labels.index(main) if main in co_labels else -1],
                top_k,
            )[0]
            p_co = probs["co_units"][i]
            co_units = [
                {"label": co_labels[j], "score": round(float(p_co[j]), 4)}
                for j in np.argsort(-p_co)
                if chosen[j]
            ]
            abstain["co_units"] = {"suggested_above": co_threshold}
        review_row = review_block(
            review, probs, i, {h: a["flag"] for h, a in abstain.items() if "flag" in a}
        )
        if repeats is not None and repeats[i] is not None:
            review_row["near_repeat_of"] = repeats[i]
        row: Suggestion = {
            "id": pid,
            "category": heads.get("category", []),
            "main_unit": heads.get("main_unit", []),
            "co_units": co_units,
            "abstain": abstain,
            "review": review_row,
        }
        out.append(row)
    return out


def _near_repeats(classifier: Classifier, texts: Sequence[str]) -> list[Any] | None:
    """Ids of the past proposals that each text nearly repeats, where the model knows them."""
    finder = getattr(classifier, "repeat_ids", None)
    return finder(list(texts)) if callable(finder) else None
