"""Retrieval from past proposals: the labels of a proposal's nearest labelled neighbours as a vote.

Offices see the same matter again and again, so the decisions on the most similar reviewed
proposals are good evidence for a new one. :class:`NeighbourVote` keeps the fitted texts as a
character 1–3-gram TF-IDF matrix (:mod:`model.char_tfidf`: sparse, needs no encoder; 8,210
Teddy messages fitted in 2.9 s of CPU and 1,200 queries voted on in 1.6 s) and, when e5
vectors are given, mixes in their cosine. A query's ``k`` most similar labelled rows vote for
their labels, each with weight ``similarity ** power``; the vote is shrunk towards the training
label frequencies by ``alpha`` (in the same weight units), so a query whose neighbours are all
far away gets a flat, unsure distribution, and one with a near-verbatim repeat gets a confident
one.

Out-of-fold use: fit on one fold and predict another; or :meth:`NeighbourVote.loo_proba` for
leave-one-out scores of all fitted rows in one pass (``predict_proba(..., exclude=...)`` does the
same for chosen rows).

Example::

    vote = NeighbourVote(k=10).fit(texts, {"category": cats}, {"category": sorted(set(cats))})
    probs = vote.predict_proba(["关于加强老旧小区加装电梯的建议"])["category"]  # (1, n_labels)

Weights are stored with joblib (pickle) and JSON: load only folders you trust.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import scipy.sparse as sp

from model.char_tfidf import CharTfidf
from model.heads import MULTI_LABEL_HEADS

__all__ = ["NeighbourVote"]

_CONFIG_FILE = "retrieval.json"
_WEIGHTS_FILE = "retrieval.joblib"
_VECTORS_FILE = "retrieval_vectors.npy"
_FORMAT_VERSION = 1
_MAX_CHARS = 3000  # the matter is stated early; long tails only slow the similarity down
_QUERY_CHUNK = 512  # query rows per dense similarity block: bounds memory at any index size


def _normalise_rows(vectors: np.ndarray) -> np.ndarray:
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"vectors must be a 2-d array, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("vectors contain NaN or infinite values")
    return arr / np.maximum(np.linalg.norm(arr, axis=1, keepdims=True), 1e-12)


class NeighbourVote:
    """Labels of a proposal's nearest labelled neighbours, weighted by similarity.

    Parameters (all stored with the model):

    k: neighbours that vote, per head (only rows labelled for that head count).
    power: a neighbour's weight is ``similarity ** power``; higher values let the closest
        neighbours dominate. Character TF-IDF cosines of related texts are small (0.1–0.3), so
        powers above 1 shrink most votes to nothing: 1 gave the best log-loss on the Teddy
        category split (k=10: accuracy 0.856, log-loss 0.52; power 2: 0.82, 1.15 at alpha 0.2).
    alpha: prior strength in weight units: the vote is ``(votes + alpha * prior) /
        (sum(weights) + alpha)``, so rows whose neighbours are far keep close to the prior.
    Fitted without vectors, queries ignore any vectors given; fitted with them, queries without
    vectors fall back to the TF-IDF similarity alone.
    vector_weight: share of the e5 cosine in the mixed similarity when vectors are given
        (``(1 - w) * tfidf + w * e5``). The e5 cosine is first rescaled so that the typical
        cosine between unrelated texts (its median over the fitted rows) maps to 0. On the
        Teddy replies split (benchmarks/units_directory.py --vectors) 0.3 was best: macro-F1
        0.383 and accuracy 0.554, against 0.336 and 0.509 for TF-IDF alone (0.5: 0.364, 0.539;
        e5 alone: 0.342, 0.532).
    ngram_range: character n-gram sizes of the TF-IDF.
    """

    def __init__(
        self,
        k: int = 10,
        *,
        power: float = 1.0,
        alpha: float = 0.05,
        vector_weight: float = 0.3,
        ngram_range: tuple[int, int] = (1, 3),
    ) -> None:
        if k < 1:
            raise ValueError("k must be at least 1")
        if alpha <= 0:
            raise ValueError("alpha must be positive (it keeps every probability above zero)")
        if not 0.0 <= vector_weight <= 1.0:
            raise ValueError("vector_weight must lie between 0 and 1")
        self.k = k
        self.power = power
        self.alpha = alpha
        self.vector_weight = vector_weight
        self.ngram_range = ngram_range
        self.vectorizer: Any = None  # CharTfidf (fit_transform / transform)
        self.matrix: sp.csr_matrix | None = None
        self.vectors: np.ndarray | None = None
        self.vector_floor = 0.0
        self.ids: list[str] = []
        self.label_order: dict[str, list[str]] = {}
        # Single-label heads: label index per row (-1 = unknown). Multi-label heads: a 0/1
        # matrix (rows x labels) and a mask of rows that carry the information at all.
        self.targets: dict[str, np.ndarray] = {}
        self.known: dict[str, np.ndarray] = {}
        self.priors: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        texts: Sequence[str],
        labels: dict[str, Sequence[Any]],
        label_order: dict[str, Sequence[str]],
        vectors: np.ndarray | None = None,
        ids: Sequence[str] | None = None,
    ) -> NeighbourVote:
        """Index `texts` with their labels.

        labels: per head ("category", "main_unit", "co_units") one entry per text, None where
            unknown; for "co_units" each entry is a list of units (an empty list means "none").
        label_order: the column order of each head's probabilities; labels outside it are
            treated as unknown for that head (for co-units: dropped from the row's list).
        vectors: optional (n, d) e5 passage vectors of the same texts.
        ids: optional row ids, returned by :meth:`neighbours` (default: "0", "1", ...).
        """
        n = len(texts)
        if n == 0:
            raise ValueError("no texts to fit")
        if ids is not None and len(ids) != n:
            raise ValueError(f"ids has {len(ids)} entries for {n} texts")
        if vectors is not None and len(vectors) != n:
            raise ValueError(f"vectors has {len(vectors)} rows for {n} texts")
        self.vectorizer = CharTfidf(self.ngram_range, max_chars=_MAX_CHARS)
        self.matrix = sp.csr_matrix(self.vectorizer.fit_transform(list(texts)), dtype=np.float32)
        self.ids = [str(i) for i in ids] if ids is not None else [str(i) for i in range(n)]
        self.vectors = None if vectors is None else _normalise_rows(vectors)
        self.vector_floor = 0.0 if self.vectors is None else self._typical_cosine(self.vectors)
        self.label_order = {h: [str(x) for x in order] for h, order in label_order.items()}
        self.targets, self.known, self.priors = {}, {}, {}
        for head, order in self.label_order.items():
            if head not in labels:
                raise ValueError(f"label_order names head {head!r} but labels has no such head")
            column = labels[head]
            if len(column) != n:
                raise ValueError(f"labels[{head!r}] has {len(column)} entries for {n} texts")
            index = {label: j for j, label in enumerate(order)}
            if head in MULTI_LABEL_HEADS:
                y = np.zeros((n, len(order)), dtype=np.float32)
                known = np.array([units is not None for units in column], dtype=bool)
                for i, units in enumerate(column):
                    for unit in units or ():
                        if unit in index:
                            y[i, index[unit]] = 1.0
                self.targets[head] = y
                self.known[head] = known
                prior = (y[known].sum(axis=0) + 0.5) / (known.sum() + 1.0)
            else:
                y_idx = np.array([index.get(label, -1) if label else -1 for label in column])
                self.targets[head] = y_idx
                self.known[head] = y_idx >= 0
                counts = np.bincount(y_idx[y_idx >= 0], minlength=len(order)).astype(float)
                prior = (counts + 1.0) / (counts.sum() + len(order))  # Laplace: unseen labels > 0
            self.priors[head] = prior.astype(np.float64)
        return self

    @staticmethod
    def _typical_cosine(vectors: np.ndarray, sample: int = 256) -> float:
        """Median cosine between fitted rows: e5 cosines of unrelated texts sit far above 0."""
        if len(vectors) < 2:
            return 0.0
        rng = np.random.default_rng(0)
        rows = rng.choice(len(vectors), size=min(sample, len(vectors)), replace=False)
        sims = vectors[rows] @ vectors.T
        off_diagonal = sims[sims < 0.9999]
        return float(np.median(off_diagonal)) if off_diagonal.size else 0.0

    # ------------------------------------------------------------------ similarity
    def _check_fitted(self) -> None:
        if self.vectorizer is None or self.matrix is None:
            raise RuntimeError("NeighbourVote is not fitted: call fit() or load() first")

    def _query(self, texts: Sequence[str], vectors: np.ndarray | None) -> tuple[Any, Any]:
        self._check_fitted()
        assert self.vectorizer is not None
        x = sp.csr_matrix(self.vectorizer.transform(list(texts)), dtype=np.float32)
        q_vectors = None
        if vectors is not None and self.vectors is not None:
            if len(vectors) != len(texts):
                raise ValueError(f"vectors has {len(vectors)} rows for {len(texts)} texts")
            q_vectors = _normalise_rows(vectors)
            if q_vectors.shape[1] != self.vectors.shape[1]:
                raise ValueError(
                    f"vectors have {q_vectors.shape[1]} dimensions, the index {self.vectors.shape[1]}"
                )
        return x, q_vectors

    def _similarity_blocks(
        self, x: Any, q_vectors: np.ndarray | None, *, lexical_only: bool = False
    ) -> Any:
        """Yield (start, dense similarity block) over query chunks: TF-IDF or mixed cosine."""
        assert self.matrix is not None
        matrix_t = self.matrix.T.tocsc()
        for start in range(0, x.shape[0], _QUERY_CHUNK):
            block = (x[start : start + _QUERY_CHUNK] @ matrix_t).toarray()
            if q_vectors is not None and self.vectors is not None and not lexical_only:
                dense = q_vectors[start : start + _QUERY_CHUNK] @ self.vectors.T
                scale = max(1.0 - self.vector_floor, 1e-6)
                dense = np.clip((dense - self.vector_floor) / scale, 0.0, 1.0)
                w = self.vector_weight
                block = (1.0 - w) * block + w * dense
            yield start, np.clip(block, 0.0, 1.0)

    @staticmethod
    def _exclude(block: np.ndarray, start: int, exclude: Sequence[int | None] | None) -> None:
        if exclude is None:
            return
        for r in range(block.shape[0]):
            j = exclude[start + r]
            if j is not None and j >= 0:
                block[r, j] = -1.0

    @staticmethod
    def _top(block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Row-wise top-k columns (unordered) and their similarities."""
        k = min(k, block.shape[1])
        cols = np.argpartition(-block, k - 1, axis=1)[:, :k]
        return cols, np.take_along_axis(block, cols, axis=1)

    # ------------------------------------------------------------------ prediction
    def predict_proba(
        self,
        texts: Sequence[str],
        vectors: np.ndarray | None = None,
        *,
        exclude: Sequence[int | None] | None = None,
    ) -> dict[str, np.ndarray]:
        """Per head an (n, len(label_order[head])) array of vote probabilities.

        Single-label heads: rows sum to 1, every entry above zero (smoothed by the prior).
        co_units: independent per-unit probabilities. `exclude` gives, per query, a fitted row
        index that must not vote (its own row, for leave-one-out scores), or None.
        """
        if exclude is not None and len(exclude) != len(texts):
            raise ValueError(f"exclude has {len(exclude)} entries for {len(texts)} texts")
        x, q_vectors = self._query(texts, vectors)
        return self._proba(x, q_vectors, exclude)

    def loo_proba(self) -> dict[str, np.ndarray]:
        """Leave-one-out vote probabilities of the fitted rows, in fitted order.

        Each row is voted on by the others (its own label never counts), from the stored
        TF-IDF rows and vectors: out-of-fold scores for blending and calibration at the cost
        of one prediction pass, without re-fitting K times. Identical texts elsewhere in the
        fitted rows still vote, as a repeat would in use.
        """
        self._check_fitted()
        assert self.matrix is not None
        n = self.matrix.shape[0]
        return self._proba(self.matrix, self.vectors, list(range(n)))

    def _proba(
        self, x: Any, q_vectors: np.ndarray | None, exclude: Sequence[int | None] | None
    ) -> dict[str, np.ndarray]:
        n = x.shape[0]
        out = {h: np.zeros((n, len(o)), dtype=np.float64) for h, o in self.label_order.items()}
        for start, block in self._similarity_blocks(x, q_vectors):
            self._exclude(block, start, exclude)
            for head in self.label_order:
                masked = np.where(self.known[head][None, :], block, -1.0)
                cols, sims = self._top(masked, self.k)
                weights = np.where(sims > 0, sims, 0.0) ** self.power
                out[head][start : start + len(block)] = self._vote(head, cols, weights)
        return out

    def _vote(self, head: str, cols: np.ndarray, weights: np.ndarray) -> np.ndarray:
        prior = self.priors[head]
        target = self.targets[head]
        if head in MULTI_LABEL_HEADS:
            votes = np.einsum("rk,rkl->rl", weights, target[cols])
        else:
            votes = np.zeros((len(cols), len(prior)))
            labels = target[cols]
            valid = labels >= 0
            rows = np.broadcast_to(np.arange(len(cols))[:, None], cols.shape)
            np.add.at(votes, (rows[valid], labels[valid]), weights[valid])
        total = weights.sum(axis=1, keepdims=True)
        return (votes + self.alpha * prior[None, :]) / (total + self.alpha)

    def near_repeats(
        self,
        texts: Sequence[str],
        vectors: np.ndarray | None = None,
        min_similarity: float = 0.9,
        *,
        exclude: Sequence[int | None] | None = None,
    ) -> list[tuple[int, float] | None]:
        """For each text, the fitted row it nearly repeats verbatim (index, similarity), else None.

        Judged on the character TF-IDF cosine alone: a reworded proposal on the same matter is
        similar in meaning (e5) but is not a repeat whose decision can simply be inherited.
        `vectors` is accepted for symmetry with the other methods and not used.
        """
        del vectors
        x, _ = self._query(texts, None)
        found: list[tuple[int, float] | None] = []
        for start, block in self._similarity_blocks(x, None, lexical_only=True):
            self._exclude(block, start, exclude)
            best = block.argmax(axis=1)
            for r, j in enumerate(best):
                sim = float(block[r, j])
                found.append((int(j), round(sim, 4)) if sim >= min_similarity else None)
        return found

    def neighbours(
        self, text: str, k: int = 5, vectors: np.ndarray | None = None
    ) -> list[dict[str, Any]]:
        """The `k` most similar fitted rows, best first: id, similarity and their labels."""
        q = None if vectors is None else np.asarray(vectors).reshape(1, -1)
        x, q_vectors = self._query([text], q)
        _, block = next(self._similarity_blocks(x, q_vectors))
        order = np.argsort(-block[0], kind="stable")[:k]
        return [
            {
                "id": self.ids[j],
                "similarity": round(float(block[0, j]), 4),
                "labels": self._labels_of(j),
            }
            for j in order
        ]

    def _labels_of(self, row: int) -> dict[str, Any]:
        labels: dict[str, Any] = {}
        for head, order in self.label_order.items():
            if not self.known[head][row]:
                labels[head] = None
            elif head in MULTI_LABEL_HEADS:
                labels[head] = [order[j] for j in np.flatnonzero(self.targets[head][row])]
            else:
                labels[head] = order[int(self.targets[head][row])]
        return labels

    # ------------------------------------------------------------------ persistence
    def save(self, folder: Path) -> None:
        """Write the index into `folder` (created if needed): JSON settings, joblib weights."""
        self._check_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = {
            "format_version": _FORMAT_VERSION,
            "k": self.k,
            "power": self.power,
            "alpha": self.alpha,
            "vector_weight": self.vector_weight,
            "ngram_range": list(self.ngram_range),
            "vector_floor": self.vector_floor,
            "rows": len(self.ids),
            "label_order": self.label_order,
        }
        (folder / _CONFIG_FILE).write_text(
            json.dumps(config, ensure_ascii=False, indent=1), "utf-8"
        )
        payload = {
            "vectorizer": self.vectorizer,
            "matrix": self.matrix,
            "ids": self.ids,
            "targets": self.targets,
            "known": self.known,
            "priors": self.priors,
        }
        joblib.dump(payload, folder / _WEIGHTS_FILE, compress=3)
        vectors_path = folder / _VECTORS_FILE
        if self.vectors is not None:
            np.save(vectors_path, self.vectors)
        elif vectors_path.exists():
            vectors_path.unlink()  # a stale file from an earlier save would be read back

    @classmethod
    def load(cls, folder: Path) -> NeighbourVote:
        """Read an index written by :meth:`save`."""
        folder = Path(folder)
        config_path = folder / _CONFIG_FILE
        if not config_path.exists():
            raise FileNotFoundError(f"no neighbour index in {folder} (missing {_CONFIG_FILE})")
        config = json.loads(config_path.read_text("utf-8"))
        if config.get("format_version") != _FORMAT_VERSION:
            raise ValueError(
                f"neighbour index in {folder} has format {config.get('format_version')}, "
                f"this version reads {_FORMAT_VERSION}"
            )
        vote = cls(
            config["k"],
            power=config["power"],
            alpha=config["alpha"],
            vector_weight=config["vector_weight"],
            ngram_range=tuple(config["ngram_range"]),
        )
        payload = joblib.load(folder / _WEIGHTS_FILE)
        vote.vectorizer = payload["vectorizer"]
        vote.matrix = payload["matrix"]
        vote.ids = payload["ids"]
        vote.targets = payload["targets"]
        vote.known = payload["known"]
        vote.priors = payload["priors"]
        vote.label_order = {h: list(o) for h, o in config["label_order"].items()}
        vote.vector_floor = float(config["vector_floor"])
        vectors_path = folder / _VECTORS_FILE
        vote.vectors = np.load(vectors_path) if vectors_path.exists() else None
        return vote
