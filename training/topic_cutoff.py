"""Fit the "no topic" cut-off of topic matching on labelled data (an answer key).

A proposal answers a reference topic when the topic is among its ranked topics with a
calibrated score at or above the cut-off; a topic no proposal answers is reported as "无提案回应"
and a proposal that answers none as "未对应任何题目". The logistic weights rank topics well but
their 0.5 point is far too strict for the coverage question (on the demo it reported 28 topics
without a proposal where the answer key has 13), so the cut-off is fitted separately:

- candidates are the midpoints between consecutive distinct scores;
- the chosen one maximises the F1 of detecting topics without a proposal (the figure the
  coverage page leads with), ties broken by the F1 of detecting proposals without a topic,
  then by the lower cut-off.

Whether a proposal answers no topic at all is decided apart from that cut-off, by how far its
best topic stands out (`model.topics.standout_margin`): no single pair-score cut-off serves
both questions (on the demo the one fitted for topics found 2 of the 7 proposals without a
topic). `fit_margin_cutoff` picks the margin below which a proposal is flagged, maximising
the F1 of detecting proposals without a topic, ties broken by the lower margin.

Both values are written into `model/topic_calibration.json` (with the weights they belong
to, the in-sample figures and out-of-fold figures from `out_of_fold_figures`), which
`model.topics` loads as its defaults. Run by `tian fit topic-cutoff --demo data/demo`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from model.atomic import atomic_write_json

TOP_K = 5  # the service stores each proposal's five best topics


def _f1(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def _pr(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    hit = int((pred & truth).sum())
    return (hit / pred.sum() if pred.sum() else 0.0, hit / truth.sum() if truth.sum() else 0.0)


def detection_figures(pred: np.ndarray, real: np.ndarray) -> dict[str, Any]:
    """Predicted and true counts, precision, recall and F1 of one boolean detection."""
    pred, real = np.asarray(pred, dtype=bool), np.asarray(real, dtype=bool)
    p, r = _pr(pred, real)
    return {
        "predicted": int(pred.sum()),
        "true": int(real.sum()),
        "precision": round(p, 4),
        "recall": round(r, 4),
        "f1": round(_f1(p, r), 4),
    }


def cutoff_figures(
    scores: np.ndarray, truth: np.ndarray, cutoff: float, no_topic: np.ndarray | None = None
) -> dict[str, Any]:
    """Detection figures at one cut-off.

    Args:
        scores: (n_proposals, n_topics) calibrated scores, 0 where a topic is not among the
            proposal's ranked topics.
        truth: same shape, True where the answer key says the proposal answers the topic.
        cutoff: score at or above which a ranked topic counts as answered.
        no_topic: (n_proposals,) the proposals flagged as answering no topic; by default
            those with no ranked topic at or above `cutoff`.

    Returns:
        ``topics_without_proposal`` / ``proposals_without_topic``: predicted and true counts,
        precision and recall; ``pairs``: precision and recall of (proposal, topic) answers.
    """
    hits = scores >= cutoff
    flagged = ~hits.any(axis=1) if no_topic is None else np.asarray(no_topic, dtype=bool)
    out: dict[str, Any] = {
        "cutoff": round(float(cutoff), 4),
        "topics_without_proposal": detection_figures(~hits.any(axis=0), ~truth.any(axis=0)),
        "proposals_without_topic": detection_figures(flagged, ~truth.any(axis=1)),
    }
    p, r = _pr(hits, truth)
    out["pairs"] = {"precision": round(p, 4), "recall": round(r, 4)}
    return out


def fit_cutoff(scores: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """The cut-off that best separates "no proposal" topics (see the module docstring), with
    its figures."""
    scores, truth = np.asarray(scores, dtype=np.float64), np.asarray(truth, dtype=bool)
    if scores.shape != truth.shape or scores.ndim != 2:
        raise ValueError("scores and truth must be matrices of the same shape")
    values = np.unique(scores[scores > 0])
    if values.size == 0:
        raise ValueError("no positive scores to fit a cut-off on")
    candidates = np.concatenate([(values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]])
    best: tuple[tuple[float, float, float], dict[str, Any]] | None = None
    for c in candidates:
        fig = cutoff_figures(scores, truth, float(c))
        key = (fig["topics_without_proposal"]["f1"], fig["proposals_without_topic"]["f1"], -c)
        if best is None or key > best[0]:
            best = (key, fig)
    assert best is not None
    return best[1]


def fit_margin_cutoff(margins: np.ndarray, answered: np.ndarray) -> dict[str, Any]:
    """The `standout_margin` below which a proposal is flagged as answering no topic.

    Args:
        margins: (n_proposals,) `model.topics.standout_margin` of each proposal.
        answered: (n_proposals,) True where the answer key gives the proposal a topic.

    Returns:
        ``cutoff`` (flag where margin < cutoff) and ``proposals_without_topic`` figures there.
    """
    margins = np.asarray(margins, dtype=np.float64)
    real = ~np.asarray(answered, dtype=bool)
    if margins.shape != real.shape or margins.ndim != 1:
        raise ValueError("margins and answered must be vectors of the same length")
    if not real.any() or real.all():
        raise ValueError("need proposals both with and without a topic to fit a margin on")
    values = np.unique(margins[np.isfinite(margins)])
    if values.size < 2:
        raise ValueError("need at least two distinct margins to fit a margin cut-off on")
    best: tuple[tuple[float, float], dict[str, Any]] | None = None
    for mid in (values[:-1] + values[1:]) / 2:
        c = round(float(mid), 4)  # the value shipped, so the figures are the shipped ones
        fig = detection_figures(margins < c, real)
        key = (fig["f1"], -c)
        if c > 0 and (best is None or key > best[0]):
            best = (key, {"cutoff": c, "proposals_without_topic": fig})
    if best is None:
        raise ValueError("margins too close to zero to fit a margin cut-off on")
    return best[1]


def data_margins(data: Any) -> np.ndarray:
    """`standout_margin` of every proposal of a `training.topic_weights.TopicData`."""
    from model.topics import TOPIC_FEATURES, standout_margin

    return standout_margin(np.asarray(data.features)[..., TOPIC_FEATURES.index("cosine")])


def top_k_scores(probs: np.ndarray, k: int = TOP_K) -> np.ndarray:
    """Keep each row's k best scores (what the service stores), zero elsewhere."""
    probs = np.asarray(probs, dtype=np.float64)
    out = np.zeros_like(probs)
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    rows = np.arange(len(probs))[:, None]
    out[rows, order] = probs[rows, order]
    return out


def out_of_fold_figures(data: Any, *, folds: int = 5, seed: int = 0) -> dict[str, Any]:
    """Detection figures where no proposal's own answers were seen in fitting.

    Grouped K-fold over proposals: for each fold, the logistic weights, the cut-off and the
    no-topic margin are fitted on the other folds' proposals (all their topic pairs) and
    applied to the held-out proposals' top-k scores and margins. The held-out decisions are
    pooled, on which the topic-level ("no proposal") and proposal-level ("no topic") figures
    are measured as `cutoff_figures` does. Margins standardise over the whole batch without
    its labels, as `match_topics` does over the year it is given. The demo key is small
    (7 proposals without a topic): expect several points of noise between seeds.
    """
    from training.topic_weights import apply_logistic, fit_logistic

    truth = np.asarray(data.truth, dtype=bool)
    n = truth.shape[0]
    if n < folds:
        raise ValueError(f"need at least {folds} proposals for {folds}-fold figures, got {n}")
    margins = data_margins(data)
    order = np.random.RandomState(seed).permutation(n)
    hits = np.zeros(truth.shape, dtype=np.float64)
    no_topic = np.zeros(n, dtype=bool)
    for f in range(folds):
        test = np.sort(order[f::folds])
        train = np.setdiff1d(np.arange(n), test)
        coef, intercept = fit_logistic(data.features[train], truth[train])
        cut = fit_cutoff(
            top_k_scores(apply_logistic(data.features[train], coef, intercept)), truth[train]
        )["cutoff"]
        held = top_k_scores(apply_logistic(data.features[test], coef, intercept))
        hits[test] = held >= cut
        answered = truth[train].any(axis=1)
        if answered.all():  # no proposal without a topic to learn from: flag none
            continue
        margin_cut = fit_margin_cutoff(margins[train], answered)["cutoff"]
        no_topic[test] = margins[test] < margin_cut
    fig = cutoff_figures(hits, truth, 0.5, no_topic)
    fig.pop("cutoff")
    return {"folds": folds, "seed": seed, **fig}


def calibration_json(
    weights: Any, data: Any, *, seeds: Sequence[int] = (0, 1, 2, 3, 4)
) -> dict[str, Any]:
    """The `model/topic_calibration.json` content for `weights`: the cut-off and the no-topic
    margin fitted on `data` (in-sample), their figures, the figures at 0.5 and out-of-fold
    figures for a few seeds.

    ``proposals_without_topic`` figures are those of the shipped rule (the margin); the pair
    cut-off's own, for comparison, are kept as ``proposals_without_topic_by_cutoff``.
    """
    from training.topic_weights import apply_logistic

    probs = apply_logistic(data.features, np.asarray(weights.coef), weights.intercept)
    scores, truth = top_k_scores(probs), np.asarray(data.truth, dtype=bool)
    fitted = fit_cutoff(scores, truth)
    margins = data_margins(data)
    n_p, n_t = truth.shape
    fitted_on = (
        f"{n_p} proposals x {n_t} topics, top {TOP_K} per proposal, "
        "answer key topic_answers.csv (in-sample)"
    )
    if truth.any(axis=1).all():
        # Nothing to fit a margin on: keep the cut-off rule for `no_topic`.
        margin: dict[str, Any] = {"cutoff": None, "note": "every proposal answers a topic"}
        no_topic = None
    else:
        margin = fit_margin_cutoff(margins, truth.any(axis=1))
        no_topic = margins < margin["cutoff"]
    at_fitted = cutoff_figures(scores, truth, fitted["cutoff"], no_topic)
    at_fitted["proposals_without_topic_by_cutoff"] = fitted["proposals_without_topic"]
    return {
        "coef": [float(c) for c in weights.coef],
        "intercept": float(weights.intercept),
        "threshold": fitted["cutoff"],
        **({"no_topic_margin": margin["cutoff"]} if no_topic is not None else {}),
        "info": {
            **{k: v for k, v in weights.info.items() if k not in ("cutoff", "no_topic")},
            "cutoff": {
                "fitted_by": "tian fit topic-cutoff --demo data/demo",
                "fitted_on": fitted_on,
                "objective": "F1 of topics without a proposal, then of proposals without a topic",
                "at_fitted": at_fitted,
                "at_0.5": cutoff_figures(scores, truth, 0.5),
                "out_of_fold": [out_of_fold_figures(data, seed=s) for s in seeds],
            },
            "no_topic": {
                "fitted_by": "tian fit topic-cutoff --demo data/demo",
                "fitted_on": fitted_on,
                "rule": "no_topic when standout_margin < no_topic_margin",
                "objective": "F1 of proposals without a topic, then the lower margin",
                "at_fitted": margin,
            },
        },
    }


def write_calibration(path: Path, content: dict[str, Any]) -> None:
    """Write the calibration JSON atomically: `model.topics` reads it at import time, so a
    half-written file would break every import."""
    atomic_write_json(path, content)
