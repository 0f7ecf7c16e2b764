"""Fit the topic-matching weights (`model.topics.TopicWeights`) on labelled topic answers.

Reads a folder with `proposals.csv`, `topics_<year>.csv` (topic_id,topic) and
`topic_answers.csv` (topic_id,id), as the demo in `data/demo` has. Every (proposal of that
year, topic) pair is labelled 1 when the topic lists the proposal among its answers.

Usage:
    python -m training.topic_weights --demo data/demo --cache .cache/topics
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from model.calibration import binary_calibration_error
from model.records import read_proposals
from training.dedup_scorer import cached_vectors


def fit_topic_weights(
    folder: Path | str, encoder: Any, cache: Path | None = None, *, year: int = 2024
) -> tuple[Any, dict[str, float]]:
    """Fit `model.topics.TopicWeights` on the demo topics.

    Reads `topics_<year>.csv` (topic_id,topic) and `topic_answers.csv` (topic_id,id) from
    the demo folder. Every (proposal of that year, topic) pair is labelled: 1 when the topic
    lists the proposal among its answers. The logistic regression is fitted on standardised
    features and folded back to raw-feature weights. Returns the weights and in-sample
    figures.
    """
    from sklearn.linear_model import LogisticRegression

    from model.topics import TopicWeights, lexical_similarity, topic_features

    folder = Path(folder)
    recs = [r for r in read_proposals(folder / "proposals.csv") if int(r.year or 0) == year]
    with open(folder / f"topics_{year}.csv", encoding="utf-8-sig", newline="") as fh:
        topics: list[dict[str, Any]] = [dict(row) for row in csv.DictReader(fh)]
    answers: dict[str, list[str]] = defaultdict(list)
    with open(folder / "topic_answers.csv", encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            answers[row["topic_id"]].append(row["id"])
    for t in topics:
        t["answered_by"] = answers.get(t["topic_id"], [])
    ids = [str(r.id) for r in recs]
    texts = [r.text for r in recs]
    pvecs = cached_vectors(encoder, ids, texts, cache / "demo" if cache else None)
    tvecs = encoder.encode([t["topic"] for t in topics], kind="query")
    feats = topic_features(pvecs @ tvecs.T, lexical_similarity(texts, [t["topic"] for t in topics]))
    pos = {pid: i for i, pid in enumerate(ids)}
    y = np.zeros(feats.shape[:2], dtype=int)
    for j, t in enumerate(topics):
        for pid in t.get("answered_by") or []:
            if pid in pos:
                y[pos[pid], j] = 1
    x2, y2 = feats.reshape(-1, feats.shape[-1]), y.ravel()
    mean, scale = x2.mean(axis=0), x2.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=1.0, max_iter=2000).fit((x2 - mean) / scale, y2)
    coef = model.coef_[0] / scale
    intercept = float(model.intercept_[0] - np.sum(model.coef_[0] * mean / scale))
    weights = TopicWeights(
        coef=tuple(round(float(c), 4) for c in coef),
        intercept=round(intercept, 4),
        threshold=0.5,
        info={"fitted_on": f"demo topics_{year}: {len(ids)} proposals x {len(topics)} topics"},
    )
    probs = 1 / (1 + np.exp(-(x2 @ coef + intercept)))
    answered = y.sum(axis=1) > 0
    top = np.argsort(-probs.reshape(y.shape), axis=1)
    r1 = float(np.mean([y[i, top[i, 0]] for i in np.flatnonzero(answered)]))
    r5 = float(np.mean([y[i, top[i, :5]].any() for i in np.flatnonzero(answered)]))
    figures = {
        "positives": int(y.sum()),
        "recall@1": r1,
        "recall@5": r5,
        "ece": binary_calibration_error(probs, y2, n_bins=10),
    }
    return weights, figures


def main(argv: Sequence[str] | None = None) -> int:
    """Fit the weights on the demo topics and print them with in-sample figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path, required=True, help="folder with the topic files")
    parser.add_argument("--cache", type=Path, help="folder for cached vectors")
    parser.add_argument("--base-model", default=None, help="encoder (default e5-small)")
    parser.add_argument("--year", type=int, default=2024)
    args = parser.parse_args(argv)

    from model.encoder import load_encoder

    weights, figures = fit_topic_weights(
        args.demo, load_encoder(args.base_model), args.cache, year=args.year
    )
    print(json.dumps(figures))  # noqa: T201
    print(f"DEFAULT_WEIGHTS = {weights!r}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
