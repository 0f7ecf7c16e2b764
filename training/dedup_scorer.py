"""Fit the duplicate scorer (`model/dedup_calibration.json`) on real labelled pairs.

Labelled pairs come from:

- **a hand-labelled set of real messages**: `benchmarks/dedup_hard_pairs.csv` holds ids and
  labels (duplicate / related / unrelated, rule in `docs/duplicate_labelling.md`) of pairs of
  the Teddy 2020 `hot_messages.csv`, drawn across strata of character similarity and
  including same-place and same-problem pairs. The texts are read by path (`--teddy DIR`),
  never copied into the repository. Related and unrelated both count as "not the same
  matter";
- **the demo** (`data/demo/proposals.csv` with its planted groups in `duplicates.csv`):
  every candidate pair the pipeline meets, labelled 1 within a planted duplicate group. It
  is invented data whose planted groups are not exhaustive (several unplanted cross-year pairs
  are on the same policy matter), so it gets a twentieth of the real set's weight: enough
  to carry the proposals' register, too little to decide the weights;
- an office's own 并案 decisions can be labelled the same way (id_a, id_b, label) and
  passed with `tian fit dedup-scorer --pairs P --messages FILE`, FILE being the proposals
  (or messages) file the ids refer to.

The fit is a logistic regression on standardised features. Its flag threshold is chosen on
out-of-fold scores of the real pairs (`choose_threshold`): the lowest that keeps precision at
0.9 and leaves 90% of the related-but-different pairs unflagged; the recall it gives is
recorded with it.

The command line is `tian fit dedup-scorer` (tian/commands/fit.py); this module holds the
plain functions it calls (`fit_dedup_scorer`). The shipped file is refitted with:

    tian fit dedup-scorer --teddy DIR --demo data/demo --out model/dedup_calibration.json
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model.dedup import FEATURE_NAMES, DedupCalibration, DedupPool, build_pool, candidate_pairs
from model.dedup import pair_features as _pair_features

csv.field_size_limit(10**8)

LABELS = ("duplicate", "related", "unrelated")
DEFAULT_C = 10.0
DEFAULT_PRECISION = 0.9
DEFAULT_RELATED_BELOW = 0.9
DEMO_WEIGHT = 0.05
FOLDS = 5
HARD_PAIRS = Path(__file__).resolve().parents[1] / "benchmarks" / "dedup_hard_pairs.csv"

LabelledPair = tuple[str, str, str]


@dataclass(frozen=True)
class PairTexts:
    """The texts the labelled pair ids refer to: a whole file, in its row order."""

    ids: list[str]
    titles: list[str]
    contents: list[str]


# ----------------------------------------------------------------------------- inputs
def read_labelled_pairs(path: Path | str) -> list[LabelledPair]:
    """(id_a, id_b, label) rows of a labelled pairs CSV; a bad label names its row."""
    out = []
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"id_a", "id_b", "label"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        for n, row in enumerate(reader, start=2):
            label = (row["label"] or "").strip()
            if label not in LABELS:
                raise ValueError(f"{path}: row {n}: label {label!r} is not one of {LABELS}")
            out.append((row["id_a"].strip(), row["id_b"].strip(), label))
    return out


def read_messages(path: Path | str) -> tuple[list[str], list[str], list[str]]:
    """ids, titles and contents of a Teddy messages CSV (id, title, content, ...)."""
    ids, titles, contents = [], [], []
    with open(path, encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            ids.append(row["id"])
            titles.append((row.get("title") or "").strip())
            contents.append((row.get("content") or "").replace("_x000D_", "\n").strip())
    return ids, titles, contents


def read_pair_texts(path: Path | str, *, raw_messages: bool = False) -> PairTexts:
    """The texts of a proposals file (CSV, XLSX or JSONL, read as `tian dedup --data` reads it).

    With `raw_messages` the file is a Teddy messages CSV read verbatim (`read_messages`), as
    the shipped calibration was fitted; otherwise `model.records.read_proposals` reads it, so
    the features are those the pipeline computes on the same file.
    """
    if raw_messages:
        return PairTexts(*read_messages(path))
    from model.records import read_proposals

    records = read_proposals(path)
    return PairTexts(
        [str(r.id) for r in records],
        [r.title or "" for r in records],
        [r.content or "" for r in records],
    )


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


def pairs_pool(
    messages: Path | str,
    pairs: Sequence[LabelledPair],
    encoder: Any,
    cache: Path | str | None,
    *,
    progress: bool = False,
) -> DedupPool:
    """A pool over the whole messages file; only the texts of `pairs` are encoded.

    The corpus statistics (rarity, TF-IDF) are those of the whole file, as `tian dedup
    --data FILE --pairs P` computes them.
    """
    return texts_pool(
        read_pair_texts(messages, raw_messages=True),
        pairs,
        encoder,
        cache,
        progress=progress,
        source=str(messages),
    )


def texts_pool(
    texts: PairTexts,
    pairs: Sequence[LabelledPair],
    encoder: Any,
    cache: Path | str | None,
    *,
    progress: bool = False,
    source: str = "messages",
) -> DedupPool:
    """A pool over all of `texts`; only the texts of `pairs` are encoded (see `pairs_pool`)."""
    ids, titles, contents = texts.ids, texts.titles, texts.contents
    need = {x for a, b, _ in pairs for x in (a, b)}
    unknown = sorted(need - set(ids))
    if unknown:
        raise ValueError(f"{source}: {len(unknown)} pair ids not found, e.g. {unknown[:3]}")
    rows = [i for i, x in enumerate(ids) if x in need]
    joined = [f"{titles[i]}\n{contents[i]}".strip() for i in rows]
    vecs = cached_vectors(encoder, [ids[i] for i in rows], joined, cache, progress=progress)
    full = np.zeros((len(ids), vecs.shape[1]), dtype=np.float32)
    full[rows] = vecs
    return build_pool(ids, titles, contents, full)


def read_demo(folder: Path | str) -> tuple[list[Any], dict[str, str]]:
    """Demo proposals and each one's planted duplicate group (negative groups left out)."""
    from model.records import read_proposals

    folder = Path(folder)
    for name in ("proposals.csv", "duplicates.csv"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder}: no {name} (expected the demo folder)")
    records = read_proposals(folder / "proposals.csv")
    group: dict[str, str] = {}
    with open(folder / "duplicates.csv", encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["kind"] != "different_matter":
                group[row["id"]] = row["group"]
    return records, group


def demo_pairs(
    records: Sequence[Any], group: dict[str, str], encoder: Any, cache: Path | str | None
) -> tuple[DedupPool, list[LabelledPair]]:
    """Every candidate pair over all demo years, labelled by the planted groups."""
    ids = [str(r.id) for r in records]
    vecs = cached_vectors(encoder, ids, [r.text for r in records], cache)
    pool = build_pool(
        ids, [r.title or "" for r in records], [r.content or "" for r in records], vecs
    )
    out: list[LabelledPair] = []
    for i, j in candidate_pairs(pool):
        a, b = pool.ids[i], pool.ids[j]
        same = a in group and group.get(a) == group.get(b)
        out.append((a, b, "duplicate" if same else "unrelated"))
    return pool, out


# ----------------------------------------------------------------------------- fitting
def pair_matrix(pool: DedupPool, pairs: Sequence[LabelledPair]) -> tuple[np.ndarray, np.ndarray]:
    """Feature matrix and 0/1 labels (1 = duplicate) for labelled id pairs of a pool."""
    pos = {pid: i for i, pid in enumerate(pool.ids)}
    rows = [_pair_features(pool, pos[a], pos[b]) for a, b, _ in pairs]
    x = np.vstack(rows) if rows else np.zeros((0, len(FEATURE_NAMES)))
    return x, np.array([int(label == "duplicate") for _, _, label in pairs])


def fit_scorer(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    c: float = DEFAULT_C,
    weights: np.ndarray | None = None,
    threshold: float = 0.5,
    info: dict[str, Any] | None = None,
) -> DedupCalibration:
    """Logistic regression on standardised features (L2 strength `c`, optional weights)."""
    from sklearn.linear_model import LogisticRegression

    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=c, max_iter=5000)
    model.fit((features - mean) / scale, labels, sample_weight=weights)
    return DedupCalibration(
        coef=tuple(float(x) for x in model.coef_[0]),
        intercept=float(model.intercept_[0]),
        mean=tuple(float(x) for x in mean),
        scale=tuple(float(x) for x in scale),
        threshold=threshold,
        info=dict(info or {}),
    )


def out_of_fold(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    folds: int = FOLDS,
    seed: int = 0,
    c: float = DEFAULT_C,
    extra: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Held-out probabilities of every pair from a stratified K-fold fit.

    `extra` (features, labels, weights) is added to every fold's training side and never
    scored: the demo pairs when judging on real pairs.
    """
    from sklearn.model_selection import StratifiedKFold

    from model.dedup import DuplicateScorer

    out = np.zeros(len(labels))
    split = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for train, test in split.split(features, labels):
        x, y, w = features[train], labels[train], np.ones(len(train))
        if extra is not None:
            x = np.vstack([x, extra[0]])
            y = np.concatenate([y, extra[1]])
            w = np.concatenate([w, extra[2]])
        scorer = DuplicateScorer(fit_scorer(x, y, c=c, weights=w))
        out[test] = scorer.floored(features[test], scorer.probabilities(features[test]))
    return out


def choose_threshold(
    scores: np.ndarray,
    labels: np.ndarray,
    related: np.ndarray,
    *,
    precision: float = DEFAULT_PRECISION,
    related_below: float = DEFAULT_RELATED_BELOW,
) -> tuple[float, float]:
    """The lowest threshold that keeps `precision` and leaves `related_below` of the
    related-but-different pairs unflagged; returns it with the recall it gives.

    Precision alone is a weak rule on a set where most pairs are duplicates (a hot matter's
    messages), so the hard negatives set the floor: an office must not merge two matters at
    one place. Only cuts between distinct scores are considered, so ties are all in or out.
    """
    order = np.argsort(-scores, kind="stable")
    s, y, rel = scores[order], labels[order], related[order]
    tp = np.cumsum(y)
    prec = tp / np.arange(1, len(y) + 1)
    rel_flagged = np.cumsum(rel) / max(int(rel.sum()), 1)
    best = None
    for k in range(len(s)):
        if k + 1 < len(s) and s[k + 1] >= s[k]:
            continue
        if prec[k] >= precision and rel_flagged[k] <= 1 - related_below:
            best = k
    if best is None:
        return 0.5, float(y[s >= 0.5].sum() / max(y.sum(), 1))
    return float(s[best]), float(tp[best] / max(y.sum(), 1))


def demo_weights(n_demo: int, n_real: int) -> np.ndarray:
    """Per-pair weights that give the demo pairs `DEMO_WEIGHT` of the real pairs' total."""
    return np.full(n_demo, DEMO_WEIGHT * n_real / max(n_demo, 1))


def fit_dedup_scorer(
    pairs: Sequence[LabelledPair],
    texts: PairTexts,
    encoder: Any,
    *,
    cache: Path | str | None = None,
    demo: Path | str | None = None,
    c: float = DEFAULT_C,
    precision: float = DEFAULT_PRECISION,
    progress: bool = False,
    fitted_on: str = "labelled pairs",
    cache_name: str = "pairs",
) -> DedupCalibration:
    """Fit the duplicate scorer on labelled `pairs` of `texts` (plus the demo, if given).

    The threshold is chosen on out-of-fold scores of `pairs` (`choose_threshold`); the demo
    pairs, down-weighted to `DEMO_WEIGHT`, only join each fold's training side. Vectors are
    cached under `cache`/`cache_name` and `cache`/demo. `info` of the result records the counts,
    `c`, the threshold rule and the out-of-fold recall at the threshold.
    """
    if not pairs:
        raise ValueError("no labelled pairs")
    cache = Path(cache) if cache is not None else None
    pool = texts_pool(
        texts, pairs, encoder, cache / cache_name if cache else None, progress=progress
    )
    x, y = pair_matrix(pool, pairs)
    # The threshold is chosen on stratified 5-fold scores: each class needs a pair per fold.
    n_dup = int(y.sum())
    if min(n_dup, len(y) - n_dup) < FOLDS:
        raise ValueError(
            f"{len(y)} labelled pairs, {n_dup} of them duplicates: need at least {FOLDS} "
            f"duplicate and {FOLDS} related or unrelated pairs"
        )
    blocks = [(x, y, np.ones(len(y)))]
    info: dict[str, Any] = {"real_pairs": int(len(y)), "real_duplicates": int(y.sum())}
    extra = None
    if demo is not None:
        records, group = read_demo(demo)
        dpool, dpairs = demo_pairs(records, group, encoder, cache / "demo" if cache else None)
        dx, dy = pair_matrix(dpool, dpairs)
        extra = (dx, dy, demo_weights(len(dy), len(y)))
        blocks.append(extra)
        info.update(demo_pairs=int(len(dy)), demo_duplicates=int(dy.sum()))
    oof = out_of_fold(x, y, c=c, extra=extra)
    related = np.array([label == "related" for _, _, label in pairs])
    threshold, recall = choose_threshold(oof, y, related, precision=precision)
    info.update(
        fitted_on=fitted_on + (" + demo planted groups" if demo is not None else ""),
        c=c,
        threshold_rule=(
            f"lowest out-of-fold threshold with precision >= {precision} and "
            f"{DEFAULT_RELATED_BELOW:.0%} of related pairs below it"
        ),
        out_of_fold_recall_at_threshold=round(recall, 4),
    )
    return fit_scorer(
        np.vstack([b[0] for b in blocks]),
        np.concatenate([b[1] for b in blocks]),
        c=c,
        weights=np.concatenate([b[2] for b in blocks]),
        threshold=threshold,
        info=info,
    )
