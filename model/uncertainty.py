"""How unsure the model is about each proposal: the "review these first" ordering.

Reviewers' time is best spent where the model is least sure (small margin between its two best
labels, high entropy) and where two models disagree (the transformer and the baseline), because
those corrections teach the next model most. Pure functions over probability arrays, so the
service and the active-learning benchmark share them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from model.heads import SINGLE_LABEL_HEADS

__all__ = ["disagreement", "margin_uncertainty", "review_order", "review_scores"]


def margin_uncertainty(probs: np.ndarray) -> np.ndarray:
    """1 − (best − second best probability) per row: 0 = sure, 1 = a tie (or one label only: 0)."""
    p = np.asarray(probs, dtype=float)
    if p.ndim != 2:
        raise ValueError(f"probabilities must be a 2-D array (rows × labels), got shape {p.shape}")
    if p.shape[1] < 2:
        return np.zeros(p.shape[0])
    top2 = -np.sort(-p, axis=1)[:, :2]
    return 1.0 - (top2[:, 0] - top2[:, 1])


def disagreement(
    probs_a: np.ndarray,
    probs_b: np.ndarray,
    labels_a: Sequence[str] | None = None,
    labels_b: Sequence[str] | None = None,
) -> np.ndarray:
    """1.0 where the two models' top labels differ, else 0.0.

    With label lists the top labels are compared by name (two models rarely share a label
    order); without them both arrays must use the same columns.
    """
    a, b = np.asarray(probs_a), np.asarray(probs_b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"the two models scored different numbers of rows: {a.shape[0]} and {b.shape[0]}"
        )
    top_a, top_b = a.argmax(axis=1), b.argmax(axis=1)
    if labels_a is not None and labels_b is not None:
        names_a = np.array(labels_a, dtype=object)[top_a]
        names_b = np.array(labels_b, dtype=object)[top_b]
        return (names_a != names_b).astype(float)
    if a.shape[1] != b.shape[1]:
        raise ValueError("without label lists the two models must have the same columns")
    return (top_a != top_b).astype(float)


def review_scores(
    probs_by_head: Mapping[str, np.ndarray],
    other_probs: Mapping[str, np.ndarray] | None = None,
    *,
    labels: Mapping[str, Sequence[str]] | None = None,
    other_labels: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, np.ndarray]:
    """Per-row "uncertainty" (mean margin uncertainty over the single-label heads),
    "disagreement" (share of heads whose top label differs from the other model's) and
    "score" (their mean when another model is given, else the uncertainty)."""
    heads = [h for h in SINGLE_LABEL_HEADS if h in probs_by_head]
    if not heads:
        raise ValueError(
            f"no single-label head in the probabilities (need one of {SINGLE_LABEL_HEADS})"
        )
    n = np.asarray(probs_by_head[heads[0]]).shape[0]
    uncertainty = np.mean([margin_uncertainty(probs_by_head[h]) for h in heads], axis=0)
    out = {"uncertainty": uncertainty, "disagreement": np.zeros(n), "score": uncertainty}
    if other_probs:
        shared = [h for h in heads if h in other_probs]
        if shared:
            out["disagreement"] = np.mean(
                [
                    disagreement(
                        probs_by_head[h],
                        other_probs[h],
                        labels.get(h) if labels else None,
                        other_labels.get(h) if other_labels else None,
                    )
                    for h in shared
                ],
                axis=0,
            )
            # Disagreement and uncertainty weigh the same: a confident pair of models that
            # disagree is as worth a look as one unsure model.
            out["score"] = (uncertainty + out["disagreement"]) / 2
    return out


def review_order(
    probs_by_head: Mapping[str, np.ndarray],
    other_probs: Mapping[str, np.ndarray] | None = None,
    *,
    labels: Mapping[str, Sequence[str]] | None = None,
    other_labels: Mapping[str, Sequence[str]] | None = None,
) -> np.ndarray:
    """Row indices, the one most worth a reviewer's time first (ties keep input order).

    Args:
        probs_by_head: calibrated probabilities per head (rows × labels), e.g. from
            `classifier.predict_proba`; co-units are ignored.
        other_probs: a second model's probabilities for the same rows (e.g. the baseline next
            to the transformer), to rank disagreements first.
        labels, other_labels: each model's label list per head, needed when the two models
            order their labels differently (they usually do).
    """
    score = review_scores(probs_by_head, other_probs, labels=labels, other_labels=other_labels)
    return np.argsort(-score["score"], kind="stable")
