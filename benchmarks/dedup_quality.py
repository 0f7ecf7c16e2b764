"""Duplicate scoring on real, hand-labelled pairs and on the demo, against simple baselines.

On the hard set (`benchmarks/dedup_hard_pairs.csv`: pairs of Teddy 2020 hot messages labelled
by reading, rule in docs/duplicate_labelling.md; related and unrelated count as "not the same
matter") it compares, on the same pairs:

- character TF-IDF cosine (character 1-3-grams, IDF over the whole messages file);
- raw e5 cosine;
- tian's scorer, out-of-fold: 5-fold stratified, the demo pairs added to every training
  side, repeated over `--seeds`; figures are medians over seeds. The threshold is chosen in
  each run from that run's out-of-fold scores, as the shipped one is;
- the shipped scorer as it is (fitted on all of these pairs: an in-sample figure, shown
  only to check that the file matches the code).

The threshold is chosen as `training.dedup_scorer.choose_threshold` does: the lowest that
keeps precision 0.9 and leaves 90% of the related-but-different pairs unflagged.

It reports ROC-AUC, ranking errors against raw e5, recall at precision 0.9, the share of
related-but-different pairs below the threshold, recall on verbatim and near-verbatim pairs
(character cosine >= 0.9) and, on the demo, precision and recall of the shipped threshold on
pairs involving 2024 with the scorer refitted without them, plus the identical-title pair.

Usage:
    .venv/bin/python benchmarks/dedup_quality.py --teddy DIR [--cache .cache/bench] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.dedup import DuplicateScorer  # noqa: E402
from training.dedup_scorer import (  # noqa: E402
    DEFAULT_PRECISION,
    HARD_PAIRS,
    choose_threshold,
    demo_pairs,
    demo_weights,
    fit_scorer,
    out_of_fold,
    pair_matrix,
    pairs_pool,
    read_demo,
    read_labelled_pairs,
)


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def recall_at_precision(scores: np.ndarray, labels: np.ndarray, precision: float) -> float:
    """Highest recall among thresholds whose flagged pairs keep `precision`."""
    from sklearn.metrics import precision_recall_curve

    prec, rec, _ = precision_recall_curve(labels, scores)
    return float(rec[prec >= precision].max())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--teddy", type=Path, required=True, help="folder of the Teddy 2020 files")
    ap.add_argument("--pairs", type=Path, default=HARD_PAIRS)
    ap.add_argument("--demo", type=Path, default=Path("data/demo"))
    ap.add_argument("--cache", type=Path, default=Path(".cache/bench"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = ap.parse_args()

    from sklearn.feature_extraction.text import TfidfVectorizer

    from model.dedup import clean_for_overlap
    from model.encoder import load_encoder
    from training.dedup_scorer import read_messages

    encoder = load_encoder(None)
    pairs = read_labelled_pairs(args.pairs)
    t0 = time.time()
    pool = pairs_pool(
        args.teddy / "hot_messages.csv", pairs, encoder, args.cache / "hot_messages", progress=True
    )
    x, y = pair_matrix(pool, pairs)
    print(
        f"hard set: {len(y)} pairs ({int(y.sum())} duplicate), features in {time.time() - t0:.0f}s"
    )
    labels = np.array([lab for _, _, lab in pairs])

    ids, titles, contents = read_messages(args.teddy / "hot_messages.csv")
    pos = {m: i for i, m in enumerate(ids)}
    tfidf = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True).fit_transform(
        [clean_for_overlap(f"{t}\n{c}") for t, c in zip(titles, contents, strict=True)]
    )
    ia = np.array([pos[a] for a, _, _ in pairs])
    ib = np.array([pos[b] for _, b, _ in pairs])
    char_cos = np.asarray(tfidf[ia].multiply(tfidf[ib]).sum(axis=1)).ravel()
    e5_cos = np.einsum("ij,ij->i", pool.vectors[ia], pool.vectors[ib])

    records, group = read_demo(args.demo)
    dpool, dpairs = demo_pairs(records, group, encoder, args.cache / "demo")
    dx, dy = pair_matrix(dpool, dpairs)
    extra = (dx, dy, demo_weights(len(dy), len(y)))

    runs = []
    for seed in args.seeds:
        oof = out_of_fold(x, y, seed=seed, extra=extra)
        related = labels == "related"
        thr, rec = choose_threshold(oof, y, related)
        near = char_cos >= 0.9
        runs.append(
            {
                "auc": roc_auc(oof, y),
                "recall_p90": recall_at_precision(oof, y, DEFAULT_PRECISION),
                "recall_at_threshold": rec,
                "precision_at_threshold": float(y[oof >= thr].mean()),
                "related_below": float(np.mean(oof[related] < thr)),
                "near_recall": float(np.mean(oof[near & (y == 1)] >= thr)),
                "threshold": thr,
            }
        )
    med = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
    base = {
        "char TF-IDF cosine": char_cos,
        "raw e5 cosine": e5_cos,
    }
    e5_err = 1 - roc_auc(e5_cos, y)
    print(f"\nout-of-fold on the hard set, median of {len(args.seeds)} seeds")
    print(f"{'method':<28}{'ROC-AUC':>9}{'errors vs e5':>14}{'recall@P0.9':>13}")
    for name, s in base.items():
        auc = roc_auc(s, y)
        print(
            f"{name:<28}{auc:>9.4f}{100 * (1 - (1 - auc) / e5_err):>13.1f}%"
            f"{recall_at_precision(s, y, DEFAULT_PRECISION):>13.3f}"
        )
    print(
        f"{'tian (out-of-fold)':<28}{med['auc']:>9.4f}{100 * (1 - (1 - med['auc']) / e5_err):>13.1f}%"
        f"{med['recall_p90']:>13.3f}"
    )
    shipped = DuplicateScorer()
    sp = shipped.floored(x, shipped.probabilities(x))
    print(f"{'tian as shipped (in-sample)':<28}{roc_auc(sp, y):>9.4f}")
    print(
        f"\ndefault threshold (out-of-fold, median): {med['threshold']:.3f};"
        f" shipped: {shipped.threshold:.3f}"
    )
    print(
        f"at that threshold: precision {med['precision_at_threshold']:.3f}, "
        f"recall {med['recall_at_threshold']:.3f}"
    )
    print(f"related-but-different pairs below the threshold: {med['related_below']:.3f}")
    print(f"verbatim and near-verbatim (char cosine >= 0.9) recall: {med['near_recall']:.3f}")
    print(f"pairs per label: { {k: int((labels == k).sum()) for k in set(labels)} }")

    # Demo: refit without pairs involving 2024, judge the shipped threshold on those pairs.
    year = {str(r.id): int(r.year or 0) for r in records}
    held = np.array([2024 in (year[a], year[b]) for a, b, _ in dpairs])
    cal = fit_scorer(
        np.vstack([x, dx[~held]]),
        np.concatenate([y, dy[~held]]),
        weights=np.concatenate([np.ones(len(y)), extra[2][~held]]),
        threshold=shipped.threshold,
    )
    refit = DuplicateScorer(cal)
    dp = refit.floored(dx[held], refit.probabilities(dx[held]))
    flagged = dp >= shipped.threshold
    tp = int((flagged & (dy[held] == 1)).sum())
    from model.dedup import FEATURE_NAMES

    dyh = dy[held]
    print(
        "\ndemo, candidate pairs involving 2024, ROC-AUC: "
        f"char TF-IDF {roc_auc(dx[held][:, FEATURE_NAMES.index('char_tfidf')], dyh):.4f}, "
        f"raw e5 {roc_auc(dx[held][:, FEATURE_NAMES.index('cosine')], dyh):.4f}, "
        f"tian (refitted without them) {roc_auc(dp, dyh):.4f}"
    )
    print(
        f"demo at the shipped threshold: {int(held.sum())} pairs, "
        f"{int(dy[held].sum())} duplicates; flagged {int(flagged.sum())}, "
        f"precision {tp / max(int(flagged.sum()), 1):.3f}, recall {tp / max(int(dy[held].sum()), 1):.3f}"
    )
    _hot_matter(args, encoder, ids, titles, contents)

    want = {("2022-008", "2024-010"), ("2024-010", "2022-008")}
    for (a, b, _), s in zip([p for p, h in zip(dpairs, held, strict=True) if h], dp, strict=True):
        if (a, b) in want:
            print(f"identical-title pair {a} / {b}: {s:.3f} (flagged: {s >= shipped.threshold})")
    return 0


def _hot_matter(args: argparse.Namespace, encoder, ids, titles, contents) -> None:  # type: ignore[no-untyped-def]
    """并案 on one hot place: every message naming the 丽发新城 estate, grouped as an office would.

    Most are about one concrete matter (a concrete-mixing plant beside the estate, found by the
    keyword 搅拌); the rest are other matters at the same place (a rubbish station, roads, a
    market). One matter should stay one group, and the other matters should not join it.
    """
    from model.duplicates import find_duplicates
    from training.dedup_scorer import cached_vectors

    rows = [i for i, (t, c) in enumerate(zip(titles, contents, strict=True)) if "丽发新城" in t + c]
    texts = [f"{titles[i]}\n{contents[i]}".strip() for i in rows]
    vecs = cached_vectors(encoder, [ids[i] for i in rows], texts, args.cache / "hot_messages")
    found = find_duplicates(
        [ids[i] for i in rows], [titles[i] for i in rows], [contents[i] for i in rows], vecs
    )
    plant = {ids[i] for i in rows if "搅拌" in titles[i] + contents[i]}
    others = {ids[i] for i in rows} - plant
    best = max(found.groups, key=lambda g: len(plant & set(g.members)), default=None)
    in_best = len(plant & set(best.members)) if best else 0
    joined = sorted(others & set(best.members)) if best else []
    other_groups = sum(1 for g in found.groups if g is not best and plant & set(g.members))
    print(
        f"\nhot matter (丽发新城, {len(rows)} messages; {len(plant)} about the mixing plant by "
        f"keyword, {len(others)} other matters):"
    )
    print(
        f"  largest mixing-plant group holds {in_best} of {len(plant)}; "
        f"{other_groups} other groups hold mixing-plant messages; "
        f"other matters inside it: {len(joined)} {joined}"
    )
    print(f"  groups found: {[len(g.members) for g in found.groups]}")


if __name__ == "__main__":
    sys.exit(main())
