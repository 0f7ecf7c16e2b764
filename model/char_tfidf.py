"""Character n-gram TF-IDF computed with numpy: the same matrix as scikit-learn's, five times faster.

scikit-learn's ``TfidfVectorizer(analyzer="char")`` builds every n-gram as a Python string;
on 8,000 proposals that took 10 s of CPU, and the neighbour vote is fitted once per
cross-validation fold. Here each text becomes an array of code points, and an n-gram (n ≤ 3) is
packed into one 64-bit integer (21 bits per code point, enough for all of Unicode), so the
n-grams of a text are a few vector operations and the vocabulary is one sorted integer array.
The packing is exact: there are no hash collisions, and 1-, 2- and 3-grams cannot share an id
because a longer n-gram's leading code point is never zero.

Weights match ``TfidfVectorizer(analyzer="char", sublinear_tf=True)``: tf is ``1 + ln(count)``,
idf is ``ln((1 + n) / (1 + df)) + 1``, and rows are L2-normalised. Texts are lower-cased, cut to
``max_chars``, and runs of whitespace become one space first, as scikit-learn does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

__all__ = ["CharTfidf"]

_WHITESPACE_RUN = re.compile(r"\s\s+")
_BITS = np.uint64(21)  # Unicode code points need 21 bits
_MAX_N = 3  # three code points fill 63 of 64 bits


def _unique(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted unique values, the index of each key's value, and the counts, by one sort.

    np.unique's hash-based path took 6 of the 10 s on 8,000 texts (numpy 2.x); sorting the
    integer keys takes under one."""
    if len(keys) == 0:
        return keys, np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    first = np.empty(len(keys), dtype=bool)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    inverse = np.empty(len(keys), dtype=np.int64)
    inverse[order] = np.cumsum(first) - 1
    counts = np.diff(np.append(starts, len(keys)))
    return ordered[starts], inverse, counts


class CharTfidf:
    """Sublinear TF-IDF of character n-grams (``ngram_range`` within 1–3), L2-normalised."""

    def __init__(self, ngram_range: tuple[int, int] = (1, 3), max_chars: int = 3000) -> None:
        lo, hi = ngram_range
        if not 1 <= lo <= hi <= _MAX_N:
            raise ValueError(f"ngram_range must lie within (1, {_MAX_N}), got {ngram_range}")
        self.ngram_range = (lo, hi)
        self.max_chars = max_chars
        self.vocabulary: np.ndarray | None = None  # sorted n-gram ids, one per column
        self.idf: np.ndarray | None = None

    def _ids(self, text: str) -> np.ndarray:
        s = _WHITESPACE_RUN.sub(" ", text[: self.max_chars].lower())
        cps = np.frombuffer(s.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        parts = []
        for n in range(self.ngram_range[0], self.ngram_range[1] + 1):
            m = len(cps) - n + 1
            if m <= 0:
                break
            ids = cps[:m].copy()
            for j in range(1, n):
                ids = (ids << _BITS) | cps[j : j + m]
            parts.append(ids)
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64)

    def _counts(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Row index and n-gram id of every n-gram occurrence."""
        ids = [self._ids(t) for t in texts]
        rows = np.repeat(np.arange(len(ids), dtype=np.int64), [len(x) for x in ids])
        flat = np.concatenate(ids) if ids else np.empty(0, dtype=np.uint64)
        return rows, flat

    def _cells(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distinct (row, column) cells as one key each, and how often each occurs."""
        assert self.vocabulary is not None
        keys, _, counts = _unique(rows * len(self.vocabulary) + cols)
        return keys, counts

    def _matrix(self, keys: np.ndarray, counts: np.ndarray, n_rows: int) -> sp.csr_matrix:
        assert self.vocabulary is not None and self.idf is not None
        width = len(self.vocabulary)
        r, c = keys // width, keys % width
        data = (1.0 + np.log(counts)) * self.idf[c]
        matrix = sp.csr_matrix(
            (data.astype(np.float32), (r, c)), shape=(n_rows, width), dtype=np.float32
        )
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
        matrix = sp.csr_matrix(sp.diags(1.0 / np.maximum(norms, 1e-12)) @ matrix, dtype=np.float32)
        return matrix

    def fit_transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Learn the vocabulary and idf from `texts`; return their (n, vocabulary) matrix."""
        rows, flat = self._counts(texts)
        self.vocabulary, cols, _ = _unique(flat)
        width = len(self.vocabulary)
        keys, counts = self._cells(rows, cols)
        df = np.bincount(keys % width, minlength=width)
        n = len(texts)
        self.idf = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float64)
        return self._matrix(keys, counts, n)

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """The matrix of `texts` over the fitted vocabulary (unseen n-grams are dropped)."""
        if self.vocabulary is None:
            raise RuntimeError("CharTfidf is not fitted")
        rows, flat = self._counts(texts)
        width = len(self.vocabulary)
        pos = np.minimum(np.searchsorted(self.vocabulary, flat), max(width - 1, 0))
        known = self.vocabulary[pos] == flat if width else np.zeros(len(flat), dtype=bool)
        keys, counts = self._cells(rows[known], pos[known].astype(np.int64))
        return self._matrix(keys, counts, len(texts))
