"""A persistent vector index for proposal and topic embeddings, and pure search helpers.

:class:`VectorIndex` keeps every vector in one float32 matrix (the source of truth: exact search,
``vectors_for``, persistence) and, for large collections, an HNSW graph from ``hnswlib`` on top
for approximate search. ``backend="auto"`` searches exactly below :data:`AUTO_ANN_THRESHOLD`
vectors and builds the graph once the index grows past it; from then on additions grow the graph
in place. ``encode_with_cache`` stores a hash of each encoded text, so re-running on the same data
encodes nothing again, and :func:`all_pairs` finds each vector's nearest neighbours by chunked
matrix products.

Scores are cosine similarities: vectors are L2-normalised on the way in.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from model.atomic import staging_folder
from model.encoder import TextEncoder

__all__ = [
    "AUTO_ANN_THRESHOLD",
    "VectorIndex",
    "VectorIndexError",
    "all_pairs",
    "encode_with_cache",
    "text_hash",
]

Backend = Literal["auto", "exact", "ann"]

#: Size at which ``backend="auto"`` switches to HNSW. Measured with benchmarks/index_speed.py
#: pinned to 2 idle cores: one exact top-10 query takes 0.2 ms at 5,000 vectors, 1.6 ms at
#: 50,000 and 7 ms at 100,000, with perfect recall and nothing to build; HNSW answers in
#: 0.35 ms at 100,000 but costs ~20 s of building per 100,000 vectors and a little recall.
#: A city's whole history (tens of thousands of proposals) therefore stays exact.
AUTO_ANN_THRESHOLD = 50_000

FORMAT_VERSION = 1
_META = "meta.json"
_VECTORS = "vectors.npy"
_IDS = "ids.json"
_HNSW = "hnsw.bin"
# Scores matrix entries per chunk in exact search: bounds memory (~64 MB) at any index size.
_CHUNK_CELLS = 16_000_000


class VectorIndexError(ValueError):
    """A bad index operation or a stored index that cannot be used (wrong encoder, damaged)."""


def text_hash(text: str, kind: str = "passage") -> str:
    """Hash of what the encoder sees; the kind is part of it because e5 prefixes differ."""
    return hashlib.sha256(f"{kind}\x00{text}".encode()).hexdigest()[:32]


def _as_matrix(vectors: np.ndarray, dim: int, what: str) -> np.ndarray:
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise VectorIndexError(f"{what} must have shape (n, {dim}), got {tuple(np.shape(vectors))}")
    if not np.isfinite(arr).all():
        raise VectorIndexError(f"{what} contain NaN or infinite values")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return np.ascontiguousarray(arr / np.maximum(norms, 1e-12), dtype=np.float32)


def _top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top-k of a score matrix, best first; ties go to the lower column."""
    n = scores.shape[1]
    k = min(k, n)
    if k == 0:
        return np.zeros((scores.shape[0], 0), np.int64), np.zeros((scores.shape[0], 0), np.float32)
    if k < n:
        cand = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        cand.sort(axis=1)  # column order first, so the stable sort below breaks ties by column
    else:
        cand = np.broadcast_to(np.arange(n), scores.shape).copy()
    vals = np.take_along_axis(scores, cand, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(cand, order, axis=1), np.take_along_axis(vals, order, axis=1)


class VectorIndex:
    """Ids and L2-normalised vectors with exact or HNSW cosine search.

    Args:
        dim: vector width.
        encoder_name: the :attr:`TextEncoder.name` that made the vectors; stored, and checked
            on load, so vectors from different encoders never mix.
        backend: ``"exact"`` (numpy), ``"ann"`` (HNSW from the first vector on) or ``"auto"``
            (exact until :data:`AUTO_ANN_THRESHOLD` vectors, then HNSW).
        ann_m, ann_ef_construction: HNSW graph degree and build beam; larger is more accurate
            and slower to build.
        ann_ef_search: HNSW search beam (at least ``k`` is used); ``None`` picks it by size:
            128 up to 200,000 vectors, 1,024 above. Measured with M=16 on e5-like vectors
            (benchmarks/index_speed.py): recall@10 0.995 at 100,000 with 128; at 1,000,000,
            0.923 with 128 and 0.974 with 1,024 (median 1.3 ms a query).
    """

    def __init__(
        self,
        dim: int,
        *,
        encoder_name: str,
        backend: Backend = "auto",
        ann_m: int = 16,
        ann_ef_construction: int = 200,
        ann_ef_search: int | None = None,
    ) -> None:
        if dim < 1:
            raise VectorIndexError(f"dim must be positive, not {dim}")
        if backend not in ("auto", "exact", "ann"):
            raise VectorIndexError(f"backend must be 'auto', 'exact' or 'ann', not {backend!r}")
        if not encoder_name:
            raise VectorIndexError(
                "encoder_name is required: it keeps vectors of different encoders apart"
            )
        self.dim = int(dim)
        self.encoder_name = encoder_name
        self.backend: Backend = backend
        self.ann_params = {
            "m": ann_m,
            "ef_construction": ann_ef_construction,
            "ef_search": ann_ef_search,
        }
        self._ids: list[str] = []
        self._pos: dict[str, int] = {}
        self._hashes: list[str | None] = []
        self._buf = np.zeros((0, self.dim), dtype=np.float32)  # grows geometrically
        self._ann: Any = None  # hnswlib.Index once built

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, id: object) -> bool:
        return id in self._pos

    @property
    def ids(self) -> list[str]:
        """Stored ids in insertion order (a copy)."""
        return list(self._ids)

    @property
    def vectors(self) -> np.ndarray:
        """The stored vectors, row i for ``ids[i]`` (a read-only view)."""
        view = self._buf[: len(self._ids)]
        view.flags.writeable = False
        return view

    @property
    def active_backend(self) -> Literal["exact", "ann"]:
        """The backend that :meth:`search` uses now."""
        return "ann" if self._ann is not None else "exact"

    def text_hash_of(self, id: str) -> str | None:
        """The text hash stored with ``id`` (``None`` if none was given or the id is absent)."""
        pos = self._pos.get(id)
        return None if pos is None else self._hashes[pos]

    def check_encoder(self, encoder_name: str) -> None:
        """Raise :class:`VectorIndexError` unless the index was built by ``encoder_name``."""
        if encoder_name != self.encoder_name:
            raise VectorIndexError(
                f"this index holds vectors from encoder {self.encoder_name!r}, not "
                f"{encoder_name!r}; rebuild it with the current encoder"
            )

    # ------------------------------------------------------------------ adding
    def add(
        self,
        ids: Sequence[str],
        vectors: np.ndarray,
        *,
        texts_hash: Sequence[str] | None = None,
    ) -> None:
        """Append vectors under new ids without rebuilding what is stored.

        Raises :class:`VectorIndexError` (a ``ValueError``) for a duplicate or empty id, a count or
        width mismatch, or non-finite values; nothing is added then.
        """
        ids = [str(i) for i in ids]
        mat = (
            _as_matrix(vectors, self.dim, "vectors")
            if len(ids)
            else np.zeros((0, self.dim), np.float32)
        )
        if mat.shape[0] != len(ids):
            raise VectorIndexError(f"{len(ids)} ids but {mat.shape[0]} vectors")
        hashes: list[str | None] = list(texts_hash) if texts_hash is not None else [None] * len(ids)
        if len(hashes) != len(ids):
            raise VectorIndexError(f"{len(ids)} ids but {len(hashes)} text hashes")
        seen: set[str] = set()
        for i in ids:
            if not i:
                raise VectorIndexError("ids must be non-empty strings")
            if i in self._pos or i in seen:
                raise VectorIndexError(f"id {i!r} is already in the index")
            seen.add(i)
        if not ids:
            return
        start = len(self._ids)
        self._reserve(start + len(ids))
        self._buf[start : start + len(ids)] = mat
        self._ids.extend(ids)
        self._hashes.extend(hashes)
        self._pos.update((i, start + n) for n, i in enumerate(ids))
        if self._ann is not None:
            self._ann_add(start, start + len(ids))
        elif self.backend == "ann" or (self.backend == "auto" and len(self) >= AUTO_ANN_THRESHOLD):
            self._build_ann()

    def update(self, ids: Sequence[str], vectors: np.ndarray, *, texts_hash: Sequence[str]) -> None:
        """Replace the vectors (and text hashes) of ids already in the index, e.g. edited texts."""
        ids = [str(i) for i in ids]
        mat = (
            _as_matrix(vectors, self.dim, "vectors") if ids else np.zeros((0, self.dim), np.float32)
        )
        if mat.shape[0] != len(ids) or len(texts_hash) != len(ids):
            raise VectorIndexError(
                f"{len(ids)} ids, {mat.shape[0]} vectors, {len(texts_hash)} hashes"
            )
        missing = [i for i in ids if i not in self._pos]
        if missing:
            raise VectorIndexError(f"cannot update ids not in the index: {missing[:3]}")
        rows = np.array([self._pos[i] for i in ids], dtype=np.int64)
        self._buf[rows] = mat
        for r, h in zip(rows, texts_hash, strict=True):
            self._hashes[int(r)] = h
        if self._ann is not None and len(rows):
            # hnswlib replaces the stored point when a label is added again.
            self._ann.add_items(mat, rows)

    def _reserve(self, n: int) -> None:
        if n <= self._buf.shape[0]:
            return
        new = np.zeros((max(n, int(self._buf.shape[0] * 1.5) + 64), self.dim), dtype=np.float32)
        new[: len(self._ids)] = self._buf[: len(self._ids)]
        self._buf = new

    # ------------------------------------------------------------------ HNSW
    def _build_ann(self) -> None:
        import hnswlib

        ann = hnswlib.Index(space="ip", dim=self.dim)
        ann.init_index(
            max_elements=max(len(self), 1024),
            M=self.ann_params["m"],
            ef_construction=self.ann_params["ef_construction"],
            random_seed=0,
        )
        self._ann = ann
        self._ann_add(0, len(self))

    def _ef_search(self) -> int:
        ef = self.ann_params["ef_search"]
        if ef is not None:
            return int(ef)
        return 128 if len(self) <= 200_000 else 1024

    def _ann_add(self, start: int, stop: int) -> None:
        if stop <= start:
            return
        capacity = self._ann.get_max_elements()
        if stop > capacity:
            # Geometric growth: resize_index copies the graph, so do it rarely.
            self._ann.resize_index(max(stop, int(capacity * 1.5)))
        self._ann.add_items(self._buf[start:stop], np.arange(start, stop))

    # ------------------------------------------------------------------ search
    def search(self, queries: np.ndarray, k: int) -> tuple[list[list[str]], np.ndarray]:
        """The ``k`` nearest stored vectors of each query, best first.

        Returns ids per query and an ``(nq, min(k, len(self)))`` array of cosine scores. An empty
        index gives empty lists and an ``(nq, 0)`` array.
        """
        if k < 1:
            raise VectorIndexError(f"k must be at least 1, not {k}")
        q = (
            _as_matrix(queries, self.dim, "queries")
            if np.size(queries)
            else np.zeros((0, self.dim), np.float32)
        )
        k = min(k, len(self))
        if k == 0 or q.shape[0] == 0:
            return [[] for _ in range(q.shape[0])], np.zeros((q.shape[0], k), np.float32)
        if self._ann is not None:
            self._ann.set_ef(max(self._ef_search(), k))
            labels, dist = self._ann.knn_query(q, k=k)
            rows, scores = labels.astype(np.int64), (1.0 - dist).astype(np.float32)
        else:
            rows, scores = self._exact(q, k)
        return [[self._ids[r] for r in row] for row in rows], scores

    def _exact(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        base = self._buf[: len(self)]
        step = max(1, _CHUNK_CELLS // max(len(self), 1))
        rows = np.empty((q.shape[0], k), np.int64)
        scores = np.empty((q.shape[0], k), np.float32)
        for s in range(0, q.shape[0], step):
            r, v = _top_k(q[s : s + step] @ base.T, k)
            rows[s : s + step], scores[s : s + step] = r, v
        return rows, scores

    def vectors_for(self, ids: Sequence[str]) -> np.ndarray:
        """Stored vectors of ``ids`` in the given order; an unknown id raises :class:`KeyError`."""
        rows = []
        for i in ids:
            if i not in self._pos:
                raise KeyError(f"id {i!r} is not in the index")
            rows.append(self._pos[i])
        return (
            self._buf[np.array(rows, dtype=np.int64)].copy()
            if rows
            else np.zeros((0, self.dim), np.float32)
        )

    # ------------------------------------------------------------------ persistence
    def save(self, folder: Path) -> None:
        """Write the index to ``folder`` atomically (a reader sees the old or the new, never half)."""
        folder = Path(folder)
        with staging_folder(folder) as tmp:
            np.save(tmp / _VECTORS, self._buf[: len(self)])
            (tmp / _IDS).write_text(
                json.dumps({"ids": self._ids, "texts_hash": self._hashes}, ensure_ascii=False),
                encoding="utf-8",
            )
            if self._ann is not None:
                self._ann.save_index(str(tmp / _HNSW))
            meta = {
                "format_version": FORMAT_VERSION,
                "encoder_name": self.encoder_name,
                "dim": self.dim,
                "backend": self.backend,
                "active_backend": self.active_backend,
                "size": len(self),
                "ann_params": self.ann_params,
            }
            (tmp / _META).write_text(
                json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8"
            )

    @classmethod
    def load(cls, folder: Path, *, encoder_name: str | None = None) -> VectorIndex:
        """Read an index written by :meth:`save`.

        With ``encoder_name``, an index built by another encoder is refused (:class:`VectorIndexError`).
        """
        folder = Path(folder)
        meta_file = folder / _META
        if not meta_file.is_file():
            raise VectorIndexError(f"{folder} is not a saved vector index (no {_META})")
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
            stored = json.loads((folder / _IDS).read_text(encoding="utf-8"))
            vectors = np.load(folder / _VECTORS)
        except (OSError, ValueError) as exc:
            raise VectorIndexError(f"vector index in {folder} is damaged: {exc}") from exc
        if meta.get("format_version") != FORMAT_VERSION:
            raise VectorIndexError(
                f"vector index in {folder} has unknown format {meta.get('format_version')!r}"
            )
        if encoder_name is not None and meta["encoder_name"] != encoder_name:
            raise VectorIndexError(
                f"vector index in {folder} was built with encoder {meta['encoder_name']!r}, "
                f"not {encoder_name!r}; delete it or rebuild it with the current encoder"
            )
        ids, hashes = stored["ids"], stored["texts_hash"]
        if vectors.shape != (len(ids), meta["dim"]) or len(hashes) != len(ids):
            raise VectorIndexError(f"vector index in {folder} is damaged: ids and vectors disagree")
        p = meta.get("ann_params", {})
        index = cls(
            meta["dim"],
            encoder_name=meta["encoder_name"],
            backend=meta["backend"],
            ann_m=p.get("m", 16),
            ann_ef_construction=p.get("ef_construction", 200),
            ann_ef_search=p.get("ef_search"),
        )
        index._buf = np.ascontiguousarray(vectors, dtype=np.float32)
        index._ids = list(ids)
        index._hashes = list(hashes)
        index._pos = {i: n for n, i in enumerate(ids)}
        if meta.get("active_backend") == "ann":
            import hnswlib

            hnsw_file = folder / _HNSW
            if not hnsw_file.is_file():
                raise VectorIndexError(f"vector index in {folder} is damaged: {_HNSW} is missing")
            ann = hnswlib.Index(space="ip", dim=index.dim)
            ann.load_index(str(hnsw_file), max_elements=max(len(ids), 1024))
            if ann.get_current_count() != len(ids):
                raise VectorIndexError(
                    f"vector index in {folder} is damaged: graph and ids disagree"
                )
            index._ann = ann
        return index


def encode_with_cache(
    encoder: TextEncoder,
    ids: Sequence[str],
    texts: Sequence[str],
    index: VectorIndex | None,
    *,
    kind: Literal["query", "passage"] = "passage",
    progress: bool = False,
    batch_size: int = 32,
    add: bool = False,
) -> np.ndarray:
    """Vectors for ``texts`` in order, encoding only what ``index`` does not already hold.

    A stored vector is reused when the same id is stored with the same text hash (text and
    kind). Identical texts within the call are encoded once. With ``add=True`` the newly
    encoded vectors are added to ``index`` (and those of edited texts replaced), so that the
    next run encodes nothing.
    """
    ids = [str(i) for i in ids]
    texts = list(texts)
    if len(ids) != len(texts):
        raise ValueError(f"{len(ids)} ids but {len(texts)} texts")
    if index is not None:
        index.check_encoder(encoder.name)
    hashes = [text_hash(t, kind) for t in texts]
    out = np.empty((len(ids), encoder.dim), dtype=np.float32)
    todo: dict[str, list[int]] = {}  # hash -> rows that need it encoded
    cached_rows, cached_ids = [], []
    for row, (i, h) in enumerate(zip(ids, hashes, strict=True)):
        if index is not None and i in index and index.text_hash_of(i) == h:
            cached_rows.append(row)
            cached_ids.append(i)
        else:
            todo.setdefault(h, []).append(row)
    if cached_rows:
        out[cached_rows] = index.vectors_for(cached_ids)  # type: ignore[union-attr]
    if todo:
        first_rows = [rows[0] for rows in todo.values()]
        fresh = encoder.encode(
            [texts[r] for r in first_rows], kind=kind, batch_size=batch_size, progress=progress
        )
        for vec, rows in zip(fresh, todo.values(), strict=True):
            out[rows] = vec
    if add and index is not None and todo:
        new_rows = [r for rows in todo.values() for r in rows]
        new_rows.sort()
        fresh_ids = [ids[r] for r in new_rows]
        stale = [n for n, i in enumerate(fresh_ids) if i in index]
        unseen = [n for n, i in enumerate(fresh_ids) if i not in index]
        if stale:
            index.update(
                [fresh_ids[n] for n in stale],
                out[[new_rows[n] for n in stale]],
                texts_hash=[hashes[new_rows[n]] for n in stale],
            )
        if unseen:
            index.add(
                [fresh_ids[n] for n in unseen],
                out[[new_rows[n] for n in unseen]],
                texts_hash=[hashes[new_rows[n]] for n in unseen],
            )
    return out


def all_pairs(
    vectors: np.ndarray,
    *,
    k: int,
    min_score: float | None = None,
    chunk: int = 1024,
) -> list[tuple[int, int, float]]:
    """Each row's top-``k`` neighbours among the other rows, as pairs ``(i, j, cosine)`` with i<j.

    A pair found from both sides appears once. Rows are compared by chunked matrix products
    (``chunk`` query rows at a time, fewer when the collection is huge, to bound memory), so
    the cost is exact all-pairs but the memory is not quadratic. Pairs come best first (ties by
    ``i`` then ``j``); ``min_score`` drops weaker ones.

    Args:
        vectors: ``(n, dim)`` L2-normalised rows (normalised again here to be safe).
        k: neighbours kept per row.
        min_score: keep only pairs with cosine at least this.
        chunk: rows per matrix product.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, not {chunk}")
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"vectors must be a 2-d array, got shape {arr.shape}")
    n = arr.shape[0]
    if n < 2:
        return []
    mat = _as_matrix(arr, arr.shape[1], "vectors")
    step = max(1, min(chunk, _CHUNK_CELLS // n))
    kk = min(k, n - 1)
    best: dict[tuple[int, int], float] = {}
    for s in range(0, n, step):
        block = mat[s : s + step] @ mat.T
        rows = np.arange(s, min(s + step, n))
        block[rows - s, rows] = -np.inf  # a row is not its own neighbour
        cols, vals = _top_k(block, kk)
        for r, (cr, vr) in enumerate(zip(cols, vals, strict=True)):
            i = s + r
            for j, v in zip(cr.tolist(), vr.tolist(), strict=True):
                if min_score is not None and v < min_score:
                    break  # best first: the rest are weaker
                key = (i, j) if i < j else (j, i)
                best[key] = v
    pairs = [(i, j, float(v)) for (i, j), v in best.items()]
    pairs.sort(key=lambda p: (-p[2], p[0], p[1]))
    return pairs
