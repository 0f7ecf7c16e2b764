"""Fit the topic-matching weights (`model.topics.TopicWeights`) on labelled topic answers.

Reads a folder with `proposals.csv`, `topics_<year>.csv` (topic_id,topic) and
`topic_answers.csv` (topic_id,id), as the demo in `data/demo` has. Every (proposal of that
year, topic) pair is labelled 1 when the topic lists the proposal among its answers.

Run by `tian fit topic-weights --demo data/demo` (tian/commands/fit.py), which also refits
the "no topic" cut-off for the new weights (training/topic_cutoff.py).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model.calibration import binary_calibration_error
from model.records import read_proposals
from training.dedup_scorer import cached_vectors

DEFAULT_C = 1.0  # inverse L2 strength: the demo has ~90 positive pairs, keep the fit smooth


@dataclass(frozen=True)
class TopicData:
    """The labelled (proposal, topic) matrix of one year.

    Attributes:
        proposal_ids: the year's proposal ids, row order.
        topic_ids: the year's topic ids, column order.
        features: (n_proposals, n_topics, len(model.topics.TOPIC_FEATURES)).
        truth: (n_proposals, n_topics) bool, True where the answer key pairs them.
    """

    proposal_ids: list[str]
    topic_ids: list[str]
    features: np.ndarray
    truth: np.ndarray


def load_topic_data(
    folder: Path | str, encoder: Any, cache: Path | None = None, *, year: int = 2024
) -> TopicData:
    """Encode the year's proposals and topics of `folder` and build the labelled matrix."""
    from model.topics import pair_features, read_topics

    folder = Path(folder)
    recs = [r for r in read_proposals(folder / "proposals.csv") if int(r.year or 0) == year]
    topics = read_topics(folder / f"topics_{year}.csv")
    answers: dict[str, set[str]] = defaultdict(set)
    with open(folder / "topic_answers.csv", encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            answers[row["id"].strip()].add(row["topic_id"].strip())
    ids = [str(r.id) for r in recs]
    texts = [r.text for r in recs]
    pvecs = cached_vectors(encoder, ids, texts, cache / "demo" if cache else None)
    tvecs = encoder.encode([t.topic for t in topics], kind="query")
    feats = pair_features(texts, pvecs, [t.topic for t in topics], tvecs)
    truth = np.array([[t.topic_id in answers.get(pid, set()) for t in topics] for pid in ids])
    return TopicData(ids, [t.topic_id for t in topics], feats, truth.astype(bool))


def fit_logistic(
    features: np.ndarray, truth: np.ndarray, *, c: float = DEFAULT_C
) -> tuple[np.ndarray, float]:
    """Logistic regression of `truth` on `features` (any leading shape, last axis features).

    Fitted on standardised features and folded back to raw-feature weights, so the shipped
    JSON applies to `model.topics.topic_features` directly. Returns (coef, intercept).
    """
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(features, dtype=np.float64).reshape(-1, features.shape[-1])
    y = np.asarray(truth, dtype=int).ravel()
    if y.min() == y.max():
        raise ValueError("topic answers need both answered and unanswered pairs to fit on")
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=c, max_iter=2000).fit((x - mean) / scale, y)
    coef = model.coef_[0] / scale
    intercept = float(model.intercept_[0] - np.sum(model.coef_[0] * mean / scale))
    return coef, intercept


def apply_logistic(features: np.ndarray, coef: np.ndarray, intercept: float) -> np.ndarray:
    """Probabilities of a fitted `fit_logistic` over `features` (same leading shape)."""
    z = np.asarray(features, dtype=np.float64) @ np.asarray(coef) + intercept
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -50, 50))))


def fit_topic_weights(data: TopicData, *, c: float = DEFAULT_C) -> tuple[Any, dict[str, float]]:
    """Fit `model.topics.TopicWeights` on a labelled matrix; also its in-sample figures.

    The threshold is left at 0.5: the "no topic" cut-off depends on the weights and is
    fitted afterwards by `training.topic_cutoff.fit_cutoff`.
    """
    from model.topics import TopicWeights

    coef, intercept = fit_logistic(data.features, data.truth, c=c)
    weights = TopicWeights(
        coef=tuple(round(float(x), 4) for x in coef),
        intercept=round(intercept, 4),
        threshold=0.5,
        info={
            "fitted_on": f"{len(data.proposal_ids)} proposals x {len(data.topic_ids)} topics",
            "fitted_by": "tian fit topic-weights --demo data/demo",
        },
    )
    y = data.truth
    probs = apply_logistic(data.features, np.asarray(weights.coef), weights.intercept)
    answered = np.flatnonzero(y.any(axis=1))
    top = np.argsort(-probs, axis=1)
    figures = {
        "positives": int(y.sum()),
        "recall@1": float(np.mean([y[i, top[i, 0]] for i in answered])),
        "recall@5": float(np.mean([y[i, top[i, :5]].any() for i in answered])),
        "ece": binary_calibration_error(probs.ravel(), y.ravel().astype(int), n_bins=10),
    }
    return weights, figures
