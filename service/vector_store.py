"""Nearest-neighbour search over the proposal vectors the analysis cached (``embeddings``).

The ``embeddings`` table stays the persisted truth. Each process decodes it once into one
:class:`model.index.VectorIndex` per encoder (exact search below
:data:`model.index.AUTO_ANN_THRESHOLD` vectors, HNSW above) and keeps it in memory, with the
proposal id and year of every row, so that a page view costs one small query and a search
instead of decoding every blob.

Before each search one cheap query reads a signature: the encoder's row count and largest
proposal id (on SQLite the table's largest rowid), and how many jobs have finished. When it
differs from the one the index was last checked at, the (proposal id, text hash) list is read
and only new or re-encoded rows are decoded. The count shows added rows whoever wrote them
(another worker, another process). A re-encoded proposal changes its row in place, which the
count cannot show, and reading every row's hash on each search costs more than the search;
vectors are written by the analysis, which runs as a job, so a finished job is the cheap sign
to look. Writes made outside a job (start-up bootstrap, scripts) are caught by a full
comparison at least every :data:`REVALIDATE_S` seconds.

Past :data:`model.index.AUTO_ANN_THRESHOLD` vectors the HNSW graph is built by a background
thread while searches stay exact, and swapped in when ready.

Stores are kept per engine (one per database a process talks to), so two applications in one
process never share vectors.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, Integer, func, literal_column, select
from sqlalchemy.orm import Session

import model.index as model_index
from model.index import Backend, VectorIndex, VectorIndexError
from service.models import Embedding, JobRecord, Proposal

__all__ = ["ANN_MAX_CANDIDATES", "REVALIDATE_S", "Hits", "VectorStore", "store_for"]

log = logging.getLogger("tian.service.vector_store")

#: Longest time between two full comparisons with the table (catches writes made outside jobs).
REVALIDATE_S = 600.0
#: HNSW candidates fetched at most for a filtered search before falling back to exact search.
ANN_MAX_CANDIDATES = 1024
# Proposal ids per ``IN (...)`` query when fetching changed rows.
_FETCH_CHUNK = 500

Signature = tuple[int, int, int]


@dataclass(frozen=True)
class Hits:
    """The nearest stored proposals of one query, best first.

    Attributes:
        proposal_ids: ``Proposal.id`` of each hit.
        scores: cosine similarity of each hit (float32).
        vectors: the hits' stored vectors, L2-normalised, one row per hit.
    """

    proposal_ids: list[int]
    scores: np.ndarray
    vectors: np.ndarray


def _no_hits(dim: int = 0) -> Hits:
    return Hits([], np.zeros(0, np.float32), np.zeros((0, dim), np.float32))


class _EncoderVectors:
    """One encoder's index, with the proposal id and year of each of its rows.

    With ``background`` (and the ``"auto"`` backend) the index searches exactly while it
    grows, and the HNSW graph is built by a thread of its own once the index passes the
    threshold, then swapped in: building it takes seconds to minutes, which a page view
    should not wait for.
    """

    def __init__(self, encoder_name: str, backend: Backend, background: bool) -> None:
        self.encoder_name = encoder_name
        self.backend: Backend = backend
        self.background = background and backend == "auto"
        self.index: VectorIndex | None = None  # made when the first row (and its width) is seen
        self.builder: threading.Thread | None = None
        self.build_failed = False
        self.touched: set[int] | None = None  # ids re-encoded while the graph is being built
        self.pids = np.zeros(0, np.int64)
        self.years = np.zeros(0, np.int64)
        self.row_of: dict[int, int] = {}
        self.signature: Signature | None = None
        self.compared_at = -np.inf  # time.monotonic() of the last full comparison
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return 0 if self.index is None else len(self.index)

    def text_hash_of(self, pid: int) -> str | None:
        return None if self.index is None else self.index.text_hash_of(str(pid))

    def apply(self, rows: Sequence[Any]) -> None:
        """Add or replace rows of (proposal id, text hash, year, vector blob)."""
        if not rows:
            return
        blobs = [r[3] for r in rows]
        width = len(blobs[0]) // 4
        if any(len(b) != width * 4 for b in blobs) or width == 0:
            raise VectorIndexError(
                f"cached vectors of encoder {self.encoder_name!r} have different widths"
            )
        matrix = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(rows), width)
        if self.index is None:
            backend: Backend = "exact" if self.background else self.backend
            self.index = VectorIndex(width, encoder_name=self.encoder_name, backend=backend)
        new = [n for n, r in enumerate(rows) if int(r[0]) not in self.row_of]
        old = [n for n, r in enumerate(rows) if int(r[0]) in self.row_of]
        if old:
            self.index.update(
                [str(rows[n][0]) for n in old], matrix[old], texts_hash=[rows[n][1] for n in old]
            )
            if self.touched is not None:
                self.touched.update(int(rows[n][0]) for n in old)
        if new:
            start = len(self.index)
            self.index.add(
                [str(rows[n][0]) for n in new], matrix[new], texts_hash=[rows[n][1] for n in new]
            )
            pids = np.array([int(rows[n][0]) for n in new], np.int64)
            self.pids = np.concatenate([self.pids, pids])
            self.years = np.concatenate([self.years, [int(rows[n][2]) for n in new]])
            self.row_of.update((int(p), start + i) for i, p in enumerate(pids))

    def start_graph(self) -> None:
        """Start building the HNSW graph when the index has grown past the threshold (lock held)."""
        index = self.index
        if (
            not self.background
            or index is None
            or index.active_backend == "ann"
            or self.builder is not None
            or self.build_failed
            or len(index) < model_index.AUTO_ANN_THRESHOLD
        ):
            return
        ids = index.ids
        hashes = [index.text_hash_of(i) or "" for i in ids]
        self.touched = set()
        self.builder = threading.Thread(
            target=self._build_graph,
            args=(ids, index.vectors.copy(), hashes),
            name=f"vector-graph-{self.encoder_name}",
            daemon=True,
        )
        self.builder.start()

    def _build_graph(self, ids: list[str], vectors: np.ndarray, hashes: list[str]) -> None:
        started = time.perf_counter()
        graph: VectorIndex | None
        try:
            graph = VectorIndex(vectors.shape[1], encoder_name=self.encoder_name, backend="auto")
            graph.add(ids, vectors, texts_hash=hashes)  # past the threshold: builds the graph
        except Exception:
            log.exception(
                "vector index %s: HNSW build failed; searching exactly", self.encoder_name
            )
            graph = None
        with self.lock:
            current = self.index
            if graph is None or current is None:
                self.build_failed = graph is None
            else:
                # Rows added or re-encoded while the graph was built.
                new = current.ids[len(graph) :]
                if new:
                    graph.add(
                        new,
                        current.vectors_for(new),
                        texts_hash=[current.text_hash_of(i) or "" for i in new],
                    )
                edited = [str(p) for p in sorted(self.touched or ())]
                if edited:
                    graph.update(
                        edited,
                        current.vectors_for(edited),
                        texts_hash=[current.text_hash_of(i) or "" for i in edited],
                    )
                self.index = graph
                log.info(
                    "vector index %s: HNSW graph of %d vectors ready in %.1f s",
                    self.encoder_name,
                    len(graph),
                    time.perf_counter() - started,
                )
            self.touched = None

    def search(self, query: np.ndarray, k: int, before_year: int | None) -> Hits:
        index = self.index
        if index is None or len(index) == 0:
            return _no_hits()
        q = np.asarray(query, dtype=np.float32).ravel()
        if q.shape[0] != index.dim or not np.isfinite(q).all():
            raise VectorIndexError(f"query must be {index.dim} finite numbers, not {q.shape[0]}")
        q = q / max(float(np.linalg.norm(q)), 1e-12)
        allowed = None if before_year is None else self.years < before_year
        n_allowed = len(index) if allowed is None else int(allowed.sum())
        k = min(k, n_allowed)
        if k < 1:
            return _no_hits(index.dim)
        found = None
        if index.active_backend == "ann" and n_allowed > k:
            found = self._approximate(index, q, k, allowed)
        rows, scores = found if found is not None else self._exact(index, q, k, allowed)
        return Hits([int(p) for p in self.pids[rows]], scores, index.vectors[rows])

    def _approximate(
        self, index: VectorIndex, q: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """HNSW top-k among allowed rows: fetch more candidates until k pass (None: give up)."""
        want = k if allowed is None else max(4 * k, 32)
        while True:
            fetch = min(want, len(index), ANN_MAX_CANDIDATES)
            try:
                ids, scores = index.search(q[None, :], fetch)
            except RuntimeError:  # hnswlib found fewer than ``fetch`` points in its beam
                return None
            rows = np.array([self.row_of[int(i)] for i in ids[0]], np.int64)
            keep = np.ones(len(rows), bool) if allowed is None else allowed[rows]
            if int(keep.sum()) >= k:
                return rows[keep][:k], scores[0][keep][:k]
            if fetch >= min(len(index), ANN_MAX_CANDIDATES):
                return None  # the allowed rows are too rare for the graph: search exactly
            want *= 4

    @staticmethod
    def _exact(
        index: VectorIndex, q: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k among allowed rows, best first; ties go to the earlier row."""
        # einsum, not BLAS: one query is memory-bound, and BLAS threads waiting for a busy
        # core made a 2,000-row product take 20 ms on a loaded 2-core machine (0.2 ms here).
        scores = np.einsum("ij,j->i", index.vectors, q)
        if allowed is not None:
            scores = np.where(allowed, scores, -np.inf).astype(np.float32)
        n = len(scores)
        cand = np.sort(np.argpartition(-scores, k - 1)[:k]) if k < n else np.arange(n)
        order = np.argsort(-scores[cand], kind="stable")
        rows = cand[order]
        return rows, scores[rows].astype(np.float32)


class VectorStore:
    """The process's indexes of one database's cached vectors, one per encoder.

    Args:
        backend: passed to each :class:`VectorIndex` (``"auto"``: exact, then HNSW past
            :data:`model.index.AUTO_ANN_THRESHOLD` vectors).
        background: with ``"auto"``, build the HNSW graph in a thread of its own and search
            exactly until it is ready (else the search that crosses the threshold builds it).
    """

    def __init__(self, backend: Backend = "auto", *, background: bool = True) -> None:
        self.backend: Backend = backend
        self.background = background
        self._entries: dict[str, _EncoderVectors] = {}
        self._lock = threading.Lock()

    def nearest(
        self,
        session: Session,
        encoder_name: str,
        query: np.ndarray,
        k: int,
        *,
        before_year: int | None = None,
    ) -> Hits:
        """The ``k`` stored proposals nearest to ``query`` (cosine), best first.

        Brings the index up to date with the table first (see the module docstring). With
        ``before_year``, only proposals of earlier years are searched. Raises
        :class:`model.index.VectorIndexError` for a query of another width.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        entry = self._entry(encoder_name)
        with entry.lock:
            self._sync(session, entry)
            entry.start_graph()
            return entry.search(query, k, before_year)

    def size(self, encoder_name: str) -> int:
        """Vectors held now for ``encoder_name`` (without looking at the table)."""
        entry = self._entries.get(encoder_name)
        return 0 if entry is None else len(entry)

    def active_backend(self, encoder_name: str) -> str | None:
        """``"exact"`` or ``"ann"`` for an encoder with vectors held, else ``None``."""
        entry = self._entries.get(encoder_name)
        return None if entry is None or entry.index is None else entry.index.active_backend

    def wait_for_graph(self, encoder_name: str, timeout: float | None = None) -> bool:
        """Wait for a background HNSW build of ``encoder_name``; False if still running."""
        entry = self._entries.get(encoder_name)
        builder = None if entry is None else entry.builder
        if builder is not None:
            builder.join(timeout)
            return not builder.is_alive()
        return True

    def _entry(self, encoder_name: str) -> _EncoderVectors:
        with self._lock:
            entry = self._entries.get(encoder_name)
            if entry is None:
                entry = _EncoderVectors(encoder_name, self.backend, self.background)
                self._entries[encoder_name] = entry
            return entry

    @staticmethod
    def _signature(session: Session, encoder_name: str) -> Signature:
        finished_jobs = select(func.count(JobRecord.finished_at)).scalar_subquery()
        if session.get_bind().dialect.name == "sqlite":
            # SQLite numbers rows in insertion order and embeddings are never deleted, so the
            # largest rowid grows with every insert and costs one index descent, where
            # count(*) reads the whole key index (12 ms at 50,000 rows on a loaded machine).
            rowid = literal_column("rowid", Integer)
            last = select(func.max(rowid)).select_from(Embedding.__table__).scalar_subquery()
            inserted, jobs = session.execute(select(last, finished_jobs)).one()
            return int(inserted or 0), 0, int(jobs or 0)
        count, top, jobs = session.execute(
            select(func.count(), func.max(Embedding.proposal_id), finished_jobs).where(
                Embedding.encoder == encoder_name
            )
        ).one()
        return int(count or 0), int(top or 0), int(jobs or 0)

    def _sync(self, session: Session, entry: _EncoderVectors) -> None:
        signature = self._signature(session, entry.encoder_name)
        due = time.monotonic() - entry.compared_at > REVALIDATE_S
        if signature == entry.signature and not due:
            return
        started = time.perf_counter()
        before = len(entry)
        changed = self._changed_rows(session, entry)
        entry.apply(changed)
        entry.signature, entry.compared_at = signature, time.monotonic()
        if changed:
            log.info(
                "vector index %s: %d rows decoded (%d before, %d now, %s) in %.0f ms",
                entry.encoder_name,
                len(changed),
                before,
                len(entry),
                entry.index.active_backend if entry.index is not None else "empty",
                (time.perf_counter() - started) * 1000,
            )

    @staticmethod
    def _changed_rows(session: Session, entry: _EncoderVectors) -> list[Any]:
        """Rows (id, hash, year, blob) that are new or whose text hash changed, by id."""
        full = select(
            Embedding.proposal_id, Embedding.text_hash, Proposal.year, Embedding.vector
        ).join(Proposal, Proposal.id == Embedding.proposal_id)
        where = Embedding.encoder == entry.encoder_name
        if len(entry) == 0:  # first build: one pass over the table
            return list(session.execute(full.where(where).order_by(Embedding.proposal_id)).all())
        keys = session.execute(
            select(Embedding.proposal_id, Embedding.text_hash).where(where)
        ).all()
        stale = sorted(int(pid) for pid, h in keys if entry.text_hash_of(int(pid)) != h)
        rows: list[Any] = []
        for s in range(0, len(stale), _FETCH_CHUNK):
            part = stale[s : s + _FETCH_CHUNK]
            rows.extend(session.execute(full.where(where, Embedding.proposal_id.in_(part))).all())
        rows.sort(key=lambda r: int(r[0]))
        return rows


_stores: weakref.WeakKeyDictionary[Engine, VectorStore] = weakref.WeakKeyDictionary()
_stores_lock = threading.Lock()


def store_for(session: Session) -> VectorStore:
    """The process's store for the database ``session`` is bound to."""
    bind = session.get_bind()
    engine = bind.engine if isinstance(bind, Connection) else bind
    with _stores_lock:
        store = _stores.get(engine)
        if store is None:
            store = _stores[engine] = VectorStore()
        return store
