"""Reference-topic matching on real data (Teddy 2020), against lexical baselines.

Two topic lists:
- small: the seven teams' hot-issue descriptions (`hot_issue_assignments.csv`, those with a
  description). A message's gold topics are every description some team gave its issue;
  a hit at k means one of them is in the top k.
- large: the 390 third-level names of `taxonomy.csv`. The messages (a seeded sample of
  `messages_labeled.csv`) only carry a first-level label, so what we can measure is
  whether a top-k third-level topic sits under the message's first-level category
  ("parent hit"); it says nothing about the right third-level topic.

Methods: char TF-IDF cosine (1-2-grams), BM25 over characters and bigrams, raw e5 cosine
(topics as `query:`, messages as `passage:`), the previous matcher (its four features and
weights, kept below as `PREVIOUS` so old and new are measured in the same run), and
`model.topics.match_topics` with the shipped weights (fitted on the demo topics only: Teddy
is never seen in fitting). Every message has a gold topic, so the share flagged `no_topic`
(printed for the shipped margin rule and for the cut-off rule used before it) is a false-alarm
rate.

Usage:
    .venv/bin/python benchmarks/topics_quality.py --teddy DIR \
        --cache .cache/bench --sample 600
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.topics import (  # noqa: E402
    DEFAULT_WEIGHTS,
    Topic,
    lexical_similarity,
    match_topics,
    pair_features,
)
from training.dedup_scorer import cached_vectors  # noqa: E402
from training.dedup_scorer import read_messages as read_teddy_messages  # noqa: E402

# The matcher before the rank and title features: weights over the first four of
# `model.topics.TOPIC_FEATURES` (cosine, cosine_rel, gap, lexical), fitted on the demo.
PREVIOUS = ((-14.6964, 62.3985, 37.258, 41.4773), 6.0703)


def previous_scores(
    texts: list[str], vecs: np.ndarray, topics: list[str], topic_vecs: np.ndarray
) -> np.ndarray:
    """Scores of the previous four-feature matcher (same features, old weights)."""
    feats = pair_features(texts, vecs, topics, topic_vecs)[..., :4]
    return np.asarray(feats @ np.asarray(PREVIOUS[0]) + PREVIOUS[1])


def bm25(docs: list[str], queries: list[str], k1: float = 1.2, b: float = 0.75) -> np.ndarray:
    """BM25 of each query (topic) against each doc (message) over chars and char bigrams."""
    from sklearn.feature_extraction.text import CountVectorizer

    cv = CountVectorizer(analyzer="char", ngram_range=(1, 2))
    d = cv.fit_transform(docs).tocsc().astype(np.float64)
    q = (cv.transform(queries) > 0).astype(np.float64)
    n = d.shape[0]
    df = np.asarray((d > 0).sum(axis=0)).ravel()
    idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
    lengths = np.asarray(d.sum(axis=1)).ravel()
    d = d.tocoo()
    norm = k1 * (1 - b + b * lengths[d.row] / lengths.mean())
    from scipy import sparse

    w = sparse.csr_matrix(
        (d.data * (k1 + 1) / (d.data + norm) * idf[d.col], (d.row, d.col)), shape=d.shape
    )
    return np.asarray((w @ q.T).toarray())  # (docs, queries)


def recall_at(scores: np.ndarray, gold: list[set[int]], k: int) -> float:
    """Share of rows whose top-k columns include a gold column."""
    top = np.argsort(-scores, axis=1)[:, :k]
    return float(np.mean([bool(set(row.tolist()) & g) for row, g in zip(top, gold, strict=True)]))


def evaluate(
    name: str,
    texts: list[str],
    vecs: np.ndarray,
    topics: list[str],
    topic_vecs: np.ndarray,
    gold: list[set[int]],
) -> None:
    """Print Recall@1/@5 for every method on one topic list."""
    ours = match_topics(
        [str(i) for i in range(len(texts))],
        texts,
        vecs,
        [Topic(str(j), t) for j, t in enumerate(topics)],
        topic_vecs,
        top_k=len(topics),
    )
    ours_scores = np.zeros((len(texts), len(topics)))
    for i, m in enumerate(ours):
        for tid, s in m.topics:
            ours_scores[i, int(tid)] = s
    methods = {
        "char TF-IDF cosine": lexical_similarity(texts, topics),
        "BM25 (char 1-2-gram)": bm25(texts, topics),
        "e5 cosine (raw)": vecs @ topic_vecs.T,
        "previous (4 features)": previous_scores(texts, vecs, topics, topic_vecs),
        "ours (7 features, calibrated)": ours_scores,
    }
    print(f"\n{name}: {len(texts)} messages, {len(topics)} topics")
    print(f"{'method':<34}{'R@1':>7}{'R@5':>7}")
    for method, s in methods.items():
        print(f"{method:<34}{recall_at(s, gold, 1):>7.3f}{recall_at(s, gold, 5):>7.3f}")
    # Every message here has a gold topic: a flagged one is a false alarm.
    no_topic = np.mean([m.no_topic for m in ours])
    by_cutoff = np.mean([m.topics[0][1] < DEFAULT_WEIGHTS.threshold for m in ours])
    print(
        f"ours: share flagged no_topic {no_topic:.3f} "
        f"(by the cut-off alone, as before the margin rule: {by_cutoff:.3f})"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--teddy", type=Path, required=True, help="folder of the Teddy 2020 files")
    ap.add_argument("--cache", type=Path, default=Path(".cache/bench"))
    ap.add_argument("--sample", type=int, default=600, help="labelled messages for the large list")
    args = ap.parse_args()

    from model.encoder import load_encoder

    encoder = load_encoder(None)

    # Small list: team hot-issue descriptions.
    described: dict[str, set[str]] = defaultdict(set)
    with open(args.teddy / "hot_issue_assignments.csv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["topic_description"].strip():
                described[row["msg_id"]].add(row["topic_description"].strip())
    topics = sorted({t for ts in described.values() for t in ts})
    ids, titles, contents = read_teddy_messages(args.teddy / "hot_messages.csv")
    rows = [i for i, x in enumerate(ids) if x in described]
    texts = [f"{titles[i]}\n{contents[i]}".strip() for i in rows]
    vecs = cached_vectors(
        encoder, [ids[i] for i in rows], texts, args.cache / "hot_messages", progress=True
    )
    tvecs = encoder.encode(topics, kind="query")
    gold = [{topics.index(t) for t in described[ids[i]]} for i in rows]
    evaluate("small list (team hot-issue descriptions)", texts, vecs, topics, tvecs, gold)

    # Large list: 390 third-level taxonomy names, scored by first-level parent.
    parents: dict[str, set[str]] = defaultdict(set)
    with open(args.teddy / "taxonomy.csv", encoding="utf-8") as fh:
        for row in csv.reader(fh):
            if row and row[0] != "一级分类":
                parents[row[2].strip()].add(row[0].strip())
    names = sorted(parents)
    lids, lt, lc = read_teddy_messages(args.teddy / "messages_labeled.csv")
    cats = {}
    with open(args.teddy / "messages_labeled.csv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            cats[row["id"]] = row["category"].strip()
    rng = random.Random(0)
    pick = sorted(rng.sample(range(len(lids)), min(args.sample, len(lids))))
    ltexts = [f"{lt[i]}\n{lc[i]}".strip() for i in pick]
    lvecs = cached_vectors(
        encoder, [lids[i] for i in pick], ltexts, args.cache / "messages_labeled", progress=True
    )
    nvecs = encoder.encode(names, kind="query")
    lgold = [{j for j, n in enumerate(names) if cats[lids[i]] in parents[n]} for i in pick]
    evaluate("large list (390 taxonomy names; parent hit)", ltexts, lvecs, names, nvecs, lgold)
    return 0


if __name__ == "__main__":
    sys.exit(main())
