"""Duplicate scoring on real data: Teddy 2020 hot messages with silver pairs.

Compares, on the same labelled pairs:
- char TF-IDF cosine alone (character 1-3-grams over the raw text);
- raw e5 cosine alone;
- our scorer, fitted on one half of the hot issues and evaluated on the other (2-fold
  cross-fitting split by connected component of positive pairs, so no message is in both
  the fitting and the evaluation half of any fold): does the feature set rank well;
- our shipped calibration (fitted on the demo proposals only) applied unchanged: how it
  transfers to citizen messages, whose silver labels count "same estate" as a duplicate.

Labels: `training.dedup_calibration.teddy_silver_pairs` (rule in its docstring). Also
reports the recall of the full pipeline (candidate generation + score >= 0.5) on exact
repeats and on near-verbatim pairs (organiser's char TF-IDF cosine >= 0.9), and how each
method treats the hard negatives.

Usage:
    .venv/bin/python benchmarks/dedup_quality.py --teddy ../shared/data/teddy2020 \
        --cache .cache/bench
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.dedup import (  # noqa: E402
    FEATURE_NAMES,
    DuplicateScorer,
    build_pool,
    candidate_pairs,
    clean_for_overlap,
    score_pool,
)
from training.dedup_calibration import (  # noqa: E402
    cached_vectors,
    component_weights,
    expected_calibration_error,
    fit_calibration,
    pool_features,
    read_teddy_messages,
    reliability_table,
    teddy_silver_pairs,
)


def metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC (average precision), best F1 and precision at 90% recall."""
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

    prec, rec, _ = precision_recall_curve(labels, scores)
    f1 = np.where(prec + rec > 0, 2 * prec * rec / np.maximum(prec + rec, 1e-12), 0)
    return {
        "roc_auc": float(roc_auc_score(labels, scores)),
        "pr_auc": float(average_precision_score(labels, scores)),
        "best_f1": float(f1.max()),
        "p_at_r90": float(prec[rec >= 0.9].max()),
    }


def threshold_at_recall(scores: np.ndarray, labels: np.ndarray, recall: float = 0.9) -> float:
    """Highest threshold that keeps at least `recall` of the positives."""
    pos = np.sort(scores[labels == 1])[::-1]
    return float(pos[int(np.ceil(recall * len(pos))) - 1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--teddy", type=Path, default=Path("../shared/data/teddy2020"))
    ap.add_argument("--cache", type=Path, default=Path(".cache/bench"))
    ap.add_argument(
        "--pool",
        choices=["pairs", "all"],
        default="pairs",
        help="texts in the pool: those in labelled pairs (default) or all hot messages",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--drop", nargs="*", default=[], help="features left out of the fit")
    args = ap.parse_args()

    from model.encoder import load_encoder

    encoder = load_encoder(None)
    pairs, component = teddy_silver_pairs(args.teddy)
    ids, titles, contents = read_teddy_messages(args.teddy / "hot_messages.csv")
    if args.pool == "pairs":
        need = {x for a, b, _ in pairs for x in (a, b)}
        keep = [i for i, x in enumerate(ids) if x in need]
        ids, titles, contents = ([v[i] for i in keep] for v in (ids, titles, contents))
    texts = [f"{t}\n{c}".strip() for t, c in zip(titles, contents, strict=True)]
    t0 = time.time()
    vecs = cached_vectors(encoder, ids, texts, args.cache / "hot_messages", progress=True)
    print(f"pool: {len(ids)} messages ({args.pool}); vectors ready in {time.time() - t0:.1f}s")
    pool = build_pool(ids, titles, contents, vecs)
    feats, labels = pool_features(pool, pairs)
    for name in args.drop:  # as training/dedup_calibration.py --drop: a zero column, weight 0
        feats[:, FEATURE_NAMES.index(name)] = 0.0
    print(
        f"labelled pairs: {len(labels)} ({int(labels.sum())} positive, "
        f"{int((labels == 0).sum())} negative)"
    )

    # Baselines.
    from sklearn.feature_extraction.text import TfidfVectorizer

    pos = {x: i for i, x in enumerate(ids)}
    ia = np.array([pos[a] for a, b, _ in pairs])
    ib = np.array([pos[b] for a, b, _ in pairs])
    tfidf = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True).fit_transform(
        texts
    )
    tfidf_cos = np.asarray(tfidf[ia].multiply(tfidf[ib]).sum(axis=1)).ravel()
    e5_cos = np.einsum("ij,ij->i", vecs[ia], vecs[ib])

    # Our scorer, 2-fold cross-fitted by hot-issue component.
    comps = sorted({component.get(x, -1) for x in ids})
    rng = random.Random(args.seed)
    rng.shuffle(comps)
    fold_of_comp = {c: k % 2 for k, c in enumerate(comps)}
    fold_a = np.array([fold_of_comp[component.get(a, -1)] for a, _, _ in pairs])
    fold_b = np.array([fold_of_comp[component.get(b, -1)] for _, b, _ in pairs])
    same_fold = fold_a == fold_b
    weights = component_weights(pairs, component)
    shipped = DuplicateScorer().probabilities(feats)
    ours = np.full(len(labels), np.nan)
    for k in (0, 1):
        train = same_fold & (fold_a != k)
        test = same_fold & (fold_a == k)
        cal = fit_calibration(feats[train], labels[train], weights=weights[train])
        ours[test] = DuplicateScorer(cal).probabilities(feats[test])
    ev = same_fold
    y = labels[ev]
    print(f"evaluated (pairs within one fold): {int(ev.sum())} ({int(y.sum())} positive)")
    print()
    print(f"{'method':<26}{'ROC-AUC':>9}{'1-AUC':>8}{'PR-AUC':>9}{'best F1':>9}{'P@R90':>8}")
    results = {}
    for name, s in (
        ("char TF-IDF cosine", tfidf_cos[ev]),
        ("e5 cosine (raw)", e5_cos[ev]),
        ("ours (cross-fitted)", ours[ev]),
        ("ours (shipped, demo fit)", shipped[ev]),
    ):
        m = results[name] = metrics(s, y)
        print(
            f"{name:<26}{m['roc_auc']:>9.4f}{1 - m['roc_auc']:>8.4f}{m['pr_auc']:>9.4f}"
            f"{m['best_f1']:>9.4f}{m['p_at_r90']:>8.4f}"
        )
    best_base = min(1 - results[n]["roc_auc"] for n in ("char TF-IDF cosine", "e5 cosine (raw)"))
    ours_err = 1 - results["ours (cross-fitted)"]["roc_auc"]
    print(f"ranking errors vs better baseline: {100 * (1 - ours_err / best_base):.1f}% fewer")
    print(f"ECE (cross-fitted, 10 bins): {expected_calibration_error(ours[ev], y):.4f}")
    print(reliability_table(ours[ev], y))

    # Hard negatives: negatives that a single signal finds most similar (top decile of either).
    neg = ev & (labels == 0)
    hard = neg & (
        (tfidf_cos >= np.quantile(tfidf_cos[neg], 0.9)) | (e5_cos >= np.quantile(e5_cos[neg], 0.9))
    )
    print(f"\nhard negatives (top-decile TF-IDF or e5 among negatives): {int(hard.sum())}")
    print("share flagged at each method's 90%-recall threshold:")
    for name, s in (
        ("char TF-IDF cosine", tfidf_cos),
        ("e5 cosine (raw)", e5_cos),
        ("ours (cross-fitted)", ours),
    ):
        thr = threshold_at_recall(s[ev], y)
        print(f"  {name:<24} {float(np.mean(s[hard] >= thr)):.3f}")

    # Exact and near-verbatim repeats: does the full pipeline find them (score >= 0.5)?
    scorer = DuplicateScorer()
    t0 = time.time()
    cand = candidate_pairs(pool, k=10)
    scored = {
        (ids[i], ids[j]): s for (i, j), s in zip(cand, score_pool(pool, cand, scorer), strict=True)
    }
    search_s = time.time() - t0
    found = {tuple(sorted(k)) for k, s in scored.items() if s.score >= 0.5}
    by_hash: dict[str, list[str]] = {}
    for x, t in zip(ids, texts, strict=True):
        by_hash.setdefault(clean_for_overlap(t), []).append(x)
    exact = {tuple(sorted((g[0], o))) for g in by_hash.values() if len(g) > 1 for o in g[1:]}
    near = set()
    import csv

    with open(args.teddy / "hot_pair_votes.csv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            close = row["char_tfidf_cos"] and float(row["char_tfidf_cos"]) >= 0.9
            if close and row["id_a"] in pos and row["id_b"] in pos:
                near.add(tuple(sorted((row["id_a"], row["id_b"]))))
    near -= exact
    print(
        f"\npipeline over the pool ({len(ids)} texts): {len(cand)} candidates, "
        f"{len(found)} flagged, {search_s:.2f}s (2 shared CPU cores, noisy)"
    )
    # An exact repeat counts as found when its text lands in the same flagged component.
    print(
        f"exact repeats (same normalised text, vs. first copy): {len(exact)}; "
        f"recall {_component_recall(exact, found):.3f}"
    )
    print(
        f"near-verbatim (organiser TF-IDF >= 0.9, not exact): {len(near)}; "
        f"recall {_component_recall(near, found):.3f}"
    )
    return 0


def _component_recall(truth: set[tuple[str, str]], found: set[tuple[str, str]]) -> float:
    """Share of true pairs joined (directly or through other flagged pairs) in the flagged graph."""
    if not truth:
        return float("nan")
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in found:
        parent[find(a)] = find(b)
    return sum(find(a) == find(b) for a, b in truth) / len(truth)


if __name__ == "__main__":
    sys.exit(main())
