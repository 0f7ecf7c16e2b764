"""Fit the duplicate scorer's calibration (`model/dedup_calibration.json`) on labelled pairs.

Labelled pairs come from two sources:

- **the demo** (`data/demo/proposals.csv` with its ground truth `data/demo/duplicates.csv`,
  columns group,id,kind): the labels are exhaustive, so every pair the pipeline would score
  (`model.dedup.candidate_pairs` over all demo years) is labelled: 1 when both proposals
  sit in one duplicate group, 0 otherwise (`different_matter` groups and every other pair).
  These are exactly the pairs `tian dedup` meets, about 2% of them duplicates, so the fit
  carries the prior that most look-alike proposals are *not* the same matter;
- **the Teddy 2020 silver pairs** (optional, `--teddy DIR`; read by path, never copied):
  see `teddy_silver_pairs` for the rule. Their positives include "same estate, different
  complaint", which is wrong for proposals, so the shipped calibration is fitted on the demo
  alone; `benchmarks/dedup_quality.py` cross-fits on Teddy to check the feature set ranks.

With `--holdout-year Y` the script first fits on pairs not involving year Y and reports
precision, recall and F1 at 0.5 on the pairs that do (the honest figure), then fits the
shipped calibration on all pairs. With `--topics` it fits the topic-matching weights on the
demo topics instead.

Usage:
    python -m training.dedup_calibration --demo data/demo --holdout-year 2024 \
        --cache .cache/dedup --out model/dedup_calibration.json
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from model.dedup import (
    FEATURE_NAMES,
    DedupCalibration,
    DedupPool,
    DuplicateScorer,
    build_pool,
    candidate_pairs,
    pair_features,
)

csv.field_size_limit(10**8)

Pair = tuple[str, str, int]
DEMO_SHARE = 0.25
# Weak regularisation: a dozen standardised features and ~2,000 pairs. A strong penalty
# (C=0.1) shrinks the rare-term weights and halves hold-out recall on the demo.
DEFAULT_C = 10.0


# ----------------------------------------------------------------------------- inputs
def read_teddy_messages(path: Path | str) -> tuple[list[str], list[str], list[str]]:
    """ids, titles and contents of a Teddy messages CSV (id, title, content, ...)."""
    ids, titles, contents = [], [], []
    with open(path, encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            ids.append(row["id"])
            titles.append((row.get("title") or "").strip())
            contents.append((row.get("content") or "").replace("_x000D_", "\n").strip())
    return ids, titles, contents


def cached_vectors(
    encoder: Any,
    ids: Sequence[str],
    texts: Sequence[str],
    cache: Path | str | None,
    *,
    progress: bool = False,
) -> np.ndarray:
    """Passage vectors, kept in a `model.index.VectorIndex` folder so nothing is encoded twice."""
    from model.index import VectorIndex, encode_with_cache

    index = None
    if cache is not None:
        cache = Path(cache)
        if (cache / "meta.json").is_file():
            index = VectorIndex.load(cache, encoder_name=encoder.name)
        else:
            index = VectorIndex(encoder.dim, encoder_name=encoder.name, backend="exact")
    vecs = encode_with_cache(
        encoder, list(ids), list(texts), index, kind="passage", progress=progress, add=True
    )
    if index is not None and cache is not None:
        index.save(cache)
    return vecs


def read_demo(folder: Path | str) -> tuple[list[Any], dict[str, str]]:
    """Demo proposals (`proposals.csv`) and each one's duplicate group (`duplicates.csv`).

    Only duplicate groups are returned; `different_matter` groups name hard negatives,
    which are negatives like every other pair outside a duplicate group.
    """
    from model.records import read_proposals

    folder = Path(folder)
    for name in ("proposals.csv", "duplicates.csv"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder}: no {name} (expected the demo folder)")
    records = read_proposals(folder / "proposals.csv")
    group: dict[str, str] = {}
    with open(folder / "duplicates.csv", encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"group", "id", "kind"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{folder / 'duplicates.csv'}: missing columns {sorted(missing)}")
        for row in reader:
            if row["kind"] != "different_matter":
                group[row["id"]] = row["group"]
    return records, group


def demo_pool(records: Sequence[Any], encoder: Any, cache: Path | None) -> DedupPool:
    """The pool `tian dedup --data proposals.csv` builds over all demo years."""
    ids = [str(r.id) for r in records]
    vecs = cached_vectors(encoder, ids, [r.text for r in records], cache)
    return build_pool(
        ids, [r.title or "" for r in records], [r.content or "" for r in records], vecs
    )


def demo_pairs(pool: DedupPool, group: dict[str, str], *, k: int = 10) -> list[Pair]:
    """Every candidate pair of the pool, labelled 1 when both are in one duplicate group."""
    out: list[Pair] = []
    for i, j in candidate_pairs(pool, k=k):
        a, b = pool.ids[i], pool.ids[j]
        out.append((a, b, int(a in group and group.get(a) == group.get(b))))
    return out


def threshold_figures(probs: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict:
    """Flagged pairs, precision, recall and F1 at `threshold`, plus ROC-AUC and PR-AUC."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    flagged = probs >= threshold
    tp = int((flagged & (labels == 1)).sum())
    precision = tp / max(int(flagged.sum()), 1)
    recall = tp / max(int(labels.sum()), 1)
    both = labels.min() != labels.max()
    return {
        "pairs": int(len(labels)),
        "positives": int(labels.sum()),
        "flagged": int(flagged.sum()),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(2 * precision * recall / max(precision + recall, 1e-12), 4),
        "roc_auc": round(float(roc_auc_score(labels, probs)), 4) if both else None,
        "pr_auc": round(float(average_precision_score(labels, probs)), 4) if both else None,
    }


def teddy_silver_pairs(
    folder: Path | str, *, n_random_neg: int | None = None, seed: int = 0
) -> tuple[list[Pair], dict[str, int]]:
    """Silver pairs over `hot_messages.csv`, and each message's hot-issue component.

    Rule (documented in the README):
    - positive: at least two of the seven teams put both messages in the same hot issue
      (`n_teams >= 2`), or no team grouped them but their character TF-IDF cosine is at
      least 0.9 (repeat postings outside the teams' top issues);
    - `n_teams == 1` is left out: one team's catch-all issue of 209 messages makes most of
      those pairs mean nothing;
    - negative: some team assigned both messages, to *different* issues, and no team put
      them together (about 53,000 pairs; all are used unless `n_random_neg` caps them with a
      seeded sample). Taking all of them, rather than picking hard ones by some similarity,
      keeps the evaluation free of a selection that would favour one signal.
    The component map (connected components of positives) lets callers split by issue.
    """
    folder = Path(folder)
    votes: dict[tuple[str, str], tuple[int, float]] = {}
    with open(folder / "hot_pair_votes.csv", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            a, b = sorted((row["id_a"], row["id_b"]))
            cos = float(row["char_tfidf_cos"]) if row["char_tfidf_cos"] else float("nan")
            votes[(a, b)] = (int(row["n_teams"]), cos)
    assign: dict[str, dict[str, str]] = defaultdict(dict)  # msg -> team -> topic
    with open(folder / "hot_issue_assignments.csv", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            assign[row["msg_id"]][row["team"]] = row["topic_id"]

    pairs: list[Pair] = []
    for (a, b), (n, cos) in votes.items():
        if n >= 2 or (n == 0 and cos >= 0.9):
            pairs.append((a, b, 1))
    grouped = {k for k, (n, _) in votes.items() if n >= 1}
    candidates = []
    msgs = sorted(assign)
    for x, a in enumerate(msgs):
        for b in msgs[x + 1 :]:
            if (a, b) in grouped:
                continue
            shared = set(assign[a]) & set(assign[b])
            if shared and any(assign[a][t] != assign[b][t] for t in shared):
                candidates.append((a, b))
    rng = random.Random(seed)
    rng.shuffle(candidates)
    pairs.extend((a, b, 0) for a, b in candidates[:n_random_neg])  # None keeps all

    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, y in pairs:
        if y == 1:
            parent[find(a)] = find(b)
    for m in msgs:
        find(m)
    roots = sorted({find(x) for x in parent})
    comp_id = {r: i for i, r in enumerate(roots)}
    return pairs, {x: comp_id[find(x)] for x in parent}


# ----------------------------------------------------------------------------- fitting
def pool_features(pool: DedupPool, pairs: Sequence[Pair]) -> tuple[np.ndarray, np.ndarray]:
    """Feature matrix and labels for labelled id pairs of a pool (unknown ids are skipped)."""
    pos = {pid: i for i, pid in enumerate(pool.ids)}
    rows, labels = [], []
    for a, b, y in pairs:
        if a not in pos or b not in pos:
            continue
        i, j = pos[a], pos[b]
        bg = float(pool.background[i] + pool.background[j]) / 2.0
        cos = float(pool.vectors[i] @ pool.vectors[j])
        rows.append(pair_features(pool.signatures[i], pool.signatures[j], cos, bg, pool.idf))
        labels.append(y)
    return np.vstack(rows) if rows else np.zeros((0, len(FEATURE_NAMES))), np.array(labels)


def component_weights(pairs: Sequence[Pair], component: dict[str, int]) -> np.ndarray:
    """Sample weights that stop a few huge hot issues from dominating the fit.

    A hot issue of n messages yields n(n-1)/2 positive pairs, so one 60-message issue
    outweighs hundreds of small ones. Each positive gets weight 1/(positive pairs in its
    component), rescaled so that positives keep their total weight (and the fitted
    probabilities their base rate); negatives weigh 1.
    """
    labels = np.array([y for _, _, y in pairs])
    comp = [component.get(a, -1) for a, _, _ in pairs]
    counts: dict[int, int] = defaultdict(int)
    for c, y in zip(comp, labels, strict=True):
        if y == 1:
            counts[c] += 1
    w = np.array([1.0 / counts[c] if y == 1 else 1.0 for c, y in zip(comp, labels, strict=True)])
    if labels.sum():
        w[labels == 1] *= labels.sum() / w[labels == 1].sum()
    return w


def fit_calibration(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    c: float = 1.0,
    weights: np.ndarray | None = None,
    info: dict[str, Any] | None = None,
) -> DedupCalibration:
    """Logistic regression on standardised features (L2, strength `c`, optional sample weights)."""
    from sklearn.linear_model import LogisticRegression

    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=c, max_iter=2000)
    standard = (features - mean) / scale
    model.fit(standard, labels, sample_weight=weights)
    coef, intercept = model.coef_[0], float(model.intercept_[0])
    if weights is not None:
        # The weights shape the ranking but skew probabilities; a one-feature Platt step on
        # the unweighted pairs puts them back on the observed rates (ranking unchanged).
        z = (standard @ coef + intercept).reshape(-1, 1)
        platt = LogisticRegression(C=1e4, max_iter=2000).fit(z, labels)
        a, b = float(platt.coef_[0][0]), float(platt.intercept_[0])
        coef, intercept = coef * a, intercept * a + b
    return DedupCalibration(
        coef=tuple(float(x) for x in coef),
        intercept=intercept,
        mean=tuple(float(x) for x in mean),
        scale=tuple(float(x) for x in scale),
        info=dict(info or {}),
    )


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """ECE over equal-width probability bins."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        mask = (probs >= lo) & ((probs < hi) if hi < 1 else (probs <= hi))
        if mask.any():
            total += mask.mean() * abs(probs[mask].mean() - labels[mask].mean())
    return float(total)


def reliability_table(probs: np.ndarray, labels: np.ndarray, bins: int = 5) -> str:
    """Mean predicted vs observed rate per probability bin, as text."""
    edges = np.linspace(0, 1, bins + 1)
    lines = ["bin        n   predicted  observed"]
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        mask = (probs >= lo) & ((probs < hi) if hi < 1 else (probs <= hi))
        if mask.any():
            lines.append(
                f"{lo:.1f}-{hi:.1f} {mask.sum():6d}   {probs[mask].mean():.3f}      "
                f"{labels[mask].mean():.3f}"
            )
    return "\n".join(lines)


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
    recs = [r for r in read_demo(folder)[0] if int(r.year or 0) == year]
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
        "ece": expected_calibration_error(probs, y2),
    }
    return weights, figures


def _drop(features: np.ndarray, names: Sequence[str]) -> np.ndarray:
    features = features.copy()
    for name in names:
        # A constant column gets weight 0: the feature stays in the file but is not used.
        features[:, FEATURE_NAMES.index(name)] = 0.0
    return features


def main(argv: Sequence[str] | None = None) -> int:
    """Fit and write the calibration; prints honest hold-out figures, ECE and reliability."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--demo", type=Path, help="demo folder (proposals.csv, duplicates.csv; topics files)"
    )
    parser.add_argument(
        "--teddy", type=Path, help="Teddy 2020 folder: add its silver pairs to the fit"
    )
    parser.add_argument("--cache", type=Path, help="folder for cached vectors")
    parser.add_argument("--base-model", default=None, help="encoder (default e5-small)")
    parser.add_argument("--out", type=Path, default=Path("model/dedup_calibration.json"))
    parser.add_argument(
        "--holdout-year",
        type=int,
        help="first fit without pairs involving this demo year and report figures on them",
    )
    parser.add_argument("--c", type=float, default=DEFAULT_C, help="inverse L2 strength")
    parser.add_argument(
        "--drop",
        nargs="*",
        default=[],
        choices=FEATURE_NAMES,
        help="features to leave out of the fit (weight 0)",
    )
    parser.add_argument(
        "--topics",
        action="store_true",
        help="fit the topic weights on --demo instead, and print them",
    )
    args = parser.parse_args(argv)
    if args.demo is None and args.teddy is None:
        parser.error("give --demo and/or --teddy")

    from model.encoder import load_encoder

    encoder = load_encoder(args.base_model)
    if args.topics:
        if args.demo is None:
            parser.error("--topics needs --demo")
        weights, figures = fit_topic_weights(args.demo, encoder, args.cache)
        print(json.dumps(figures))  # noqa: T201
        print(f"DEFAULT_WEIGHTS = {weights!r}")  # noqa: T201
        return 0
    blocks_x, blocks_y, blocks_w, counts = [], [], [], {}
    report: dict[str, Any] = {}
    if args.demo is not None:
        recs, group = read_demo(args.demo)
        pool = demo_pool(recs, encoder, args.cache / "demo" if args.cache else None)
        pairs = demo_pairs(pool, group)
        x, y = pool_features(pool, pairs)
        x = _drop(x, args.drop)
        if args.holdout_year is not None:
            year = {str(r.id): r.year for r in recs}
            held = np.array([args.holdout_year in (year[a], year[b]) for a, b, _ in pairs])
            cal = fit_calibration(x[~held], y[~held], c=args.c)
            probs = DuplicateScorer(cal).probabilities(x[held])
            report[f"holdout_{args.holdout_year}"] = threshold_figures(probs, y[held])
        blocks_x.append(x)
        blocks_y.append(y)
        blocks_w.append(np.ones(len(y)))
        counts["demo"] = {"pairs": int(len(y)), "positives": int(y.sum())}
    if args.teddy is not None:
        pairs, component = teddy_silver_pairs(args.teddy)
        ids, titles, contents = read_teddy_messages(args.teddy / "hot_messages.csv")
        # The pool is the messages in labelled pairs (as in benchmarks/dedup_quality.py).
        need = {x for a, b, _ in pairs for x in (a, b)}
        keep = [i for i, x in enumerate(ids) if x in need]
        ids, titles, contents = ([v[i] for i in keep] for v in (ids, titles, contents))
        texts = [f"{t}\n{c}".strip() for t, c in zip(titles, contents, strict=True)]
        vecs = cached_vectors(
            encoder, ids, texts, args.cache / "hot_messages" if args.cache else None, progress=True
        )
        pool = build_pool(ids, titles, contents, vecs)
        x, y = pool_features(pool, pairs)  # every id of `pairs` is in the pool
        blocks_x.append(_drop(x, args.drop))
        blocks_y.append(y)
        blocks_w.append(component_weights(pairs, component))
        counts["teddy_silver"] = {"pairs": int(len(y)), "positives": int(y.sum())}
    if len(blocks_w) == 2:
        # The demo is the product's own domain (proposals, not citizen messages) but has a
        # couple of thousand pairs against Teddy's 56,000: give it DEMO_SHARE of the weight.
        demo_w, teddy_w = blocks_w
        blocks_w[0] = demo_w * DEMO_SHARE / (1 - DEMO_SHARE) * teddy_w.sum() / demo_w.sum()
    features, labels = np.vstack(blocks_x), np.concatenate(blocks_y)
    weights = np.concatenate(blocks_w) if "teddy_silver" in counts else None
    cal = fit_calibration(
        features,
        labels,
        c=args.c,
        weights=weights,
        info={
            "encoder": encoder.name,
            "pairs": counts,
            "c": args.c,
            "dropped": list(args.drop),
            **report,
            "rule": "see training/dedup_calibration.py (demo candidate pairs, exhaustive labels)",
        },
    )
    cal.save(args.out)
    probs = DuplicateScorer(cal).probabilities(features)
    print(json.dumps({"pairs": counts, **report}))  # noqa: T201
    print(f"in-sample ECE {expected_calibration_error(probs, labels):.4f}")  # noqa: T201
    print(reliability_table(probs, labels))  # noqa: T201
    print(f"wrote {args.out}", file=sys.stderr)  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
