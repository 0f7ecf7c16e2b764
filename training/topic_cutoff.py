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

The fitted value is written into `model/topic_calibration.json` (with the weights it belongs
to and the figures measured here), which `model.topics` loads as its defaults.

    python -m training.topic_cutoff --demo data/demo [--year 2024] [--out model/topic_calibration.json]
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
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


def cutoff_figures(scores: np.ndarray, truth: np.ndarray, cutoff: float) -> dict[str, Any]:
    """Detection figures at one cut-off.

    Args:
        scores: (n_proposals, n_topics) calibrated scores, 0 where a topic is not among the
            proposal's ranked topics.
        truth: same shape, True where the answer key says the proposal answers the topic.
        cutoff: score at or above which a ranked topic counts as answered.

    Returns:
        ``topics_without_proposal`` / ``proposals_without_topic``: predicted and true counts,
        precision and recall; ``pairs``: precision and recall of (proposal, topic) answers.
    """
    hits = scores >= cutoff
    out: dict[str, Any] = {"cutoff": round(float(cutoff), 4)}
    for name, pred, real in (
        ("topics_without_proposal", ~hits.any(axis=0), ~truth.any(axis=0)),
        ("proposals_without_topic", ~hits.any(axis=1), ~truth.any(axis=1)),
    ):
        p, r = _pr(pred, real)
        out[name] = {
            "predicted": int(pred.sum()),
            "true": int(real.sum()),
            "precision": round(p, 4),
            "recall": round(r, 4),
            "f1": round(_f1(p, r), 4),
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


def top_k_scores(probs: np.ndarray, k: int = TOP_K) -> np.ndarray:
    """Keep each row's k best scores (what the service stores), zero elsewhere."""
    probs = np.asarray(probs, dtype=np.float64)
    out = np.zeros_like(probs)
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    rows = np.arange(len(probs))[:, None]
    out[rows, order] = probs[rows, order]
    return out


def demo_scores(folder: Path, encoder: Any, year: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Scores (top-k kept) and the answer-key matrix of the demo year; also the topic count."""
    from model.records import read_proposals
    from model.topics import DEFAULT_WEIGHTS, lexical_similarity, read_topics, topic_features

    recs = [p for p in read_proposals(folder / "proposals.csv") if p.year == year]
    topics = read_topics(folder / f"topics_{year}.csv")
    answers: dict[str, set[str]] = defaultdict(set)
    with open(folder / "topic_answers.csv", encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            answers[row["id"]].add(row["topic_id"])
    texts = [p.text for p in recs]
    pv = encoder.encode(texts, kind="passage")
    tv = encoder.encode([t.topic for t in topics], kind="query")
    feats = topic_features(pv @ tv.T, lexical_similarity(texts, [t.topic for t in topics]))
    z = feats @ np.asarray(DEFAULT_WEIGHTS.coef) + DEFAULT_WEIGHTS.intercept
    probs = 1 / (1 + np.exp(-np.clip(z, -50, 50)))
    truth = np.array(
        [[t.topic_id in answers.get(p.id, set()) for t in topics] for p in recs], dtype=bool
    )
    return top_k_scores(probs), truth, len(topics)


def main(argv: Sequence[str] | None = None) -> int:
    """Fit the cut-off on the demo answer key and write it next to the topic weights."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path, required=True, help="demo folder (data/demo)")
    parser.add_argument("--year", type=int, default=2024)
    parser.add_argument("--base-model", default=None, help="encoder (default e5-small)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).parent.parent / "model" / "topic_calibration.json",
    )
    args = parser.parse_args(argv)
    for name in ("proposals.csv", f"topics_{args.year}.csv", "topic_answers.csv"):
        if not (args.demo / name).is_file():
            parser.error(f"{args.demo / name}: no such file")

    from model.encoder import load_encoder
    from model.topics import DEFAULT_WEIGHTS

    scores, truth, n_topics = demo_scores(args.demo, load_encoder(args.base_model), args.year)
    fitted = fit_cutoff(scores, truth)
    at_half = cutoff_figures(scores, truth, 0.5)
    data = {
        "coef": list(DEFAULT_WEIGHTS.coef),
        "intercept": DEFAULT_WEIGHTS.intercept,
        "threshold": fitted["cutoff"],
        "info": {
            **{k: v for k, v in DEFAULT_WEIGHTS.info.items() if k not in ("cutoff",)},
            "cutoff": {
                "fitted_by": "python -m training.topic_cutoff --demo data/demo",
                "fitted_on": f"demo {args.year}: {truth.shape[0]} proposals x {n_topics} topics, "
                f"top {TOP_K} per proposal, answer key topic_answers.csv (in-sample)",
                "objective": "F1 of topics without a proposal, then of proposals without a topic",
                "at_fitted": fitted,
                "at_0.5": at_half,
            },
        },
    }
    # Atomic: the weights file is read when model.topics is imported; never leave half of one.
    atomic_write_json(args.out, data)
    print(json.dumps({"fitted": fitted, "at_0.5": at_half}, ensure_ascii=False, indent=2))  # noqa: T201
    print(f"wrote {args.out}")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
