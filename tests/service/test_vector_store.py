"""The vector store behind the similar-proposal searches: exact and HNSW, kept up to date."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, event, insert, update
from sqlalchemy.orm import Session, sessionmaker

from tests.model.fake_vectors import fake_vectors

ENCODER = "test-encoder"
YEARS = (2021, 2022, 2023, 2024)


@dataclass
class Db:
    """A migrated SQLite database with proposals and their cached vectors."""

    url: str
    engine: Engine
    factory: sessionmaker[Session]
    ids: list[int]
    years: list[int]
    vectors: np.ndarray  # row i belongs to ids[i]


def _write(engine: Engine, years: list[int], vectors: np.ndarray, start: int) -> list[int]:
    """Proposals with ids ``start``, ``start + 1``, ... and their vectors, as analysis stores them."""
    from service.models import Embedding, Proposal

    ids = list(range(start, start + len(years)))
    with engine.begin() as conn:
        conn.execute(
            insert(Proposal),
            [
                {
                    "id": i,
                    "year": y,
                    "pid": f"P-{i}",
                    "title": f"提案{i}",
                    "content": "",
                    "batch_id": 1,
                }
                for i, y in zip(ids, years, strict=True)
            ],
        )
        conn.execute(
            insert(Embedding),
            [
                {
                    "proposal_id": i,
                    "encoder": ENCODER,
                    "text_hash": f"h{i}",
                    "vector": np.asarray(v, np.float32).tobytes(),
                }
                for i, v in zip(ids, vectors, strict=True)
            ],
        )
    return ids


@contextmanager
def _database(
    tmp_path: Path, years: list[int], vectors: np.ndarray, url: str | None = None
) -> Iterator[Db]:
    """SQLite in ``tmp_path``, or the PostgreSQL server at ``url`` on an emptied schema."""
    from sqlalchemy import text

    from service.db import make_engine, make_session_factory, upgrade
    from service.models import ImportBatch, User

    url = url or f"sqlite:///{tmp_path / 'var' / 'tian.db'}"
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(User), [{"id": 1, "username": "u", "password_hash": "x", "role": "admin"}]
        )
        conn.execute(
            insert(ImportBatch),
            [{"id": 1, "file_name": "p.csv", "sha256": "0" * 64, "rows": 0, "added": 0,
              "updated": 0, "unchanged": 0, "user_id": 1}],
        )  # fmt: skip
    ids = _write(engine, years, vectors, start=1)
    yield Db(url, engine, make_session_factory(engine), ids, list(years), vectors)
    engine.dispose()


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _brute_force(
    db: Db, query: np.ndarray, k: int, before_year: int | None
) -> tuple[list[int], np.ndarray]:
    q = query / np.linalg.norm(query)
    scores = db.vectors @ q
    rows = [
        r
        for r in np.argsort(-scores, kind="stable")
        if before_year is None or db.years[r] < before_year
    ][:k]
    return [db.ids[r] for r in rows], scores[rows]


@pytest.fixture
def small(tmp_path: Path) -> Iterator[Db]:
    """120 proposals over four years, random 16-wide vectors (the exact backend)."""
    rng = np.random.default_rng(0)
    years = [YEARS[i % len(YEARS)] for i in range(120)]
    with _database(tmp_path, years, _unit(rng, 120, 16)) as db:
        yield db


def test_exact_search_equals_brute_force(small: Db) -> None:
    from service.vector_store import VectorStore

    store = VectorStore()
    rng = np.random.default_rng(1)
    with small.factory() as s:
        for query in rng.standard_normal((20, 16)).astype(np.float32):
            for before in (None, 2022, 2023, 2024, 2025):
                hits = store.nearest(s, ENCODER, query, 7, before_year=before)
                ids, scores = _brute_force(small, query, 7, before)
                assert hits.proposal_ids == ids
                np.testing.assert_allclose(hits.scores, scores, atol=1e-5)
                np.testing.assert_allclose(
                    hits.vectors, small.vectors[[i - 1 for i in ids]], atol=1e-6
                )
    assert store.active_backend(ENCODER) == "exact" and store.size(ENCODER) == 120


def test_similar_past_lists_the_brute_force_nearest_of_earlier_years(small: Db) -> None:
    from service.models import Proposal
    from service.similar import similar_past

    with small.factory() as s:
        for pid in (5, 8, 60, 117):  # proposals of 2021 (none earlier) to 2024
            proposal = s.get(Proposal, pid)
            assert proposal is not None
            got = similar_past(s, proposal, k=5)
            ids, scores = _brute_force(small, small.vectors[pid - 1], 5, proposal.year)
            assert [g["id"] for g in got] == [f"P-{i}" for i in ids]
            assert [g["similarity"] for g in got] == [round(float(x), 4) for x in scores]
            assert all(g["year"] < proposal.year for g in got)
            if proposal.year == min(YEARS):
                assert got == []


def test_hnsw_backend_finds_the_true_neighbours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import model.index
    import service.vector_store as vs

    monkeypatch.setattr(model.index, "AUTO_ANN_THRESHOLD", 50)
    # 2021 holds only 12 rows: too rare among 64 candidates, so that search falls back to exact.
    monkeypatch.setattr(vs, "ANN_MAX_CANDIDATES", 64)
    rng = np.random.default_rng(2)
    years = [2021] * 12 + [YEARS[1 + i % 3] for i in range(188)]
    with _database(tmp_path, years, _unit(rng, 200, 32)) as db:
        store = vs.VectorStore()
        recalls = []
        with db.factory() as s:
            store.nearest(s, ENCODER, db.vectors[0], 1)  # builds the graph in the background
            assert store.wait_for_graph(ENCODER, timeout=60)
            assert store.active_backend(ENCODER) == "ann"
            for query in rng.standard_normal((40, 32)).astype(np.float32):
                for before in (None, 2024, 2023):
                    hits = store.nearest(s, ENCODER, query, 10, before_year=before)
                    truth, _ = _brute_force(db, query, 10, before)
                    assert len(hits.proposal_ids) == 10
                    assert all(
                        before is None or db.years[i - 1] < before for i in hits.proposal_ids
                    )
                    recalls.append(len(set(hits.proposal_ids) & set(truth)) / 10)
                rare = store.nearest(s, ENCODER, query, 10, before_year=2022)
                assert rare.proposal_ids == _brute_force(db, query, 10, 2022)[0]
        assert np.mean(recalls) >= 0.9, np.mean(recalls)


def test_searches_stay_exact_while_the_graph_is_built_and_miss_nothing_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import model.index
    import service.vector_store as vs
    from service.models import Embedding, JobRecord

    monkeypatch.setattr(model.index, "AUTO_ANN_THRESHOLD", 50)
    release = threading.Event()
    build = vs._EncoderVectors._build_graph

    def held_build(self: Any, *args: Any) -> None:
        assert release.wait(60)
        build(self, *args)

    monkeypatch.setattr(vs._EncoderVectors, "_build_graph", held_build)
    rng = np.random.default_rng(5)
    with _database(tmp_path, [2023] * 80, _unit(rng, 80, 16)) as db:
        store = vs.VectorStore()
        query = _unit(rng, 1, 16)[0]
        with db.factory() as s:
            assert (
                store.nearest(s, ENCODER, query, 5).proposal_ids
                == _brute_force(db, query, 5, None)[0]
            )
        # While the graph is being built: a new proposal, and one re-encoded by an analysis job.
        [added] = _write(db.engine, [2023], query[None, :], start=500)
        with db.engine.begin() as conn:
            conn.execute(
                update(Embedding)
                .where(Embedding.proposal_id == 7)
                .values(text_hash="edited", vector=(0.9 * query + 0.1 * db.vectors[6]).tobytes())
            )
            conn.execute(
                insert(JobRecord),
                [{"kind": "analysis", "status": "done", "finished_at": dt.datetime.now(dt.UTC)}],
            )
        with db.factory() as s:
            hits = store.nearest(s, ENCODER, query, 2)
        assert store.active_backend(ENCODER) == "exact" and hits.proposal_ids == [added, 7]
        release.set()
        assert store.wait_for_graph(ENCODER, timeout=60)
        assert store.active_backend(ENCODER) == "ann" and store.size(ENCODER) == 81
        with db.factory() as s:
            assert store.nearest(s, ENCODER, query, 2).proposal_ids == [added, 7]


def _count_statements(engine: Engine) -> list[str]:
    seen: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    return seen


def test_rows_written_by_another_worker_are_found_on_the_next_lookup(small: Db) -> None:
    _check_rows_written_by_another_worker(small)


@pytest.mark.postgres
def test_rows_written_by_another_worker_are_found_on_postgresql(tmp_path: Path) -> None:
    import os

    url = os.environ.get("TIAN_TEST_PG_URL")
    if not url:
        pytest.skip("TIAN_TEST_PG_URL is not set and no PostgreSQL binaries were found")
    rng = np.random.default_rng(0)
    years = [YEARS[i % len(YEARS)] for i in range(120)]
    with _database(tmp_path, years, _unit(rng, 120, 16), url) as db:
        _check_rows_written_by_another_worker(db)


def _check_rows_written_by_another_worker(small: Db) -> None:
    from service.db import make_engine
    from service.models import Embedding, JobRecord
    from service.vector_store import VectorStore

    store = VectorStore()
    query = _unit(np.random.default_rng(3), 1, 16)[0]
    with small.factory() as s:
        first = store.nearest(s, ENCODER, query, 3, before_year=2025)
    assert first.proposal_ids == _brute_force(small, query, 3, 2025)[0]

    statements = _count_statements(small.engine)
    with small.factory() as s:
        assert store.nearest(s, ENCODER, query, 3).proposal_ids == first.proposal_ids
    assert len(statements) == 1  # nothing changed: one signature query, no decoding

    other = make_engine(small.url)  # another process's engine on the same database
    [added] = _write(other, [2023], query[None, :], start=1000)
    with small.factory() as s:
        hits = store.nearest(s, ENCODER, query, 3, before_year=2025)
    assert hits.proposal_ids[0] == added and hits.scores[0] == pytest.approx(1.0, abs=1e-5)
    assert store.size(ENCODER) == 121

    # A re-encoded proposal changes its row in place; the analysis job that did it finishes.
    target = first.proposal_ids[-1]
    with other.begin() as conn:
        conn.execute(
            update(Embedding)
            .where(Embedding.proposal_id == target)
            .values(text_hash="edited", vector=(-query).astype(np.float32).tobytes())
        )
        conn.execute(
            insert(JobRecord),
            [{"kind": "analysis", "status": "done", "finished_at": dt.datetime.now(dt.UTC)}],
        )
    other.dispose()
    with small.factory() as s:
        hits = store.nearest(s, ENCODER, query, 200, before_year=2025)
    assert hits.proposal_ids[-1] == target and hits.scores[-1] == pytest.approx(-1.0, abs=1e-5)
    assert store.size(ENCODER) == 121


def test_writes_outside_jobs_are_caught_by_the_periodic_comparison(
    small: Db, monkeypatch: pytest.MonkeyPatch
) -> None:
    import service.vector_store as vs
    from service.models import Embedding

    store = vs.VectorStore()
    query = small.vectors[0]
    with small.factory() as s:
        assert store.nearest(s, ENCODER, query, 1).proposal_ids == [1]
    with small.engine.begin() as conn:
        conn.execute(
            update(Embedding)
            .where(Embedding.proposal_id == 1)
            .values(text_hash="edited", vector=(-query).tobytes())
        )
    monkeypatch.setattr(vs, "REVALIDATE_S", 0.0)
    with small.factory() as s:
        hits = store.nearest(s, ENCODER, query, 1)
    assert hits.proposal_ids != [1] and hits.scores[0] < 1.0


def test_earlier_year_filter_uses_years_only_before_the_proposal(tmp_path: Path) -> None:
    from service.vector_store import VectorStore

    texts = ["河湖生态环境保护", "河湖生态环境保护", "河湖生态环境治理", "学校教育课程"]
    with _database(tmp_path, [2024, 2023, 2022, 2022], fake_vectors(texts)) as db:
        store = VectorStore()
        with db.factory() as s:
            own = db.vectors[0]
            assert store.nearest(s, ENCODER, own, 2, before_year=2024).proposal_ids == [2, 3]
            assert store.nearest(s, ENCODER, own, 9, before_year=2023).proposal_ids == [3, 4]
            assert store.nearest(s, ENCODER, own, 3, before_year=2022).proposal_ids == []
            assert store.nearest(s, ENCODER, own, 1).proposal_ids[0] in (1, 2)  # same text
            assert store.nearest(s, "another-encoder", own, 3).proposal_ids == []


def test_each_database_has_its_own_store(small: Db, tmp_path: Path) -> None:
    from service.vector_store import store_for

    rng = np.random.default_rng(4)
    with (
        _database(tmp_path / "b", [2023, 2023], _unit(rng, 2, 16)) as other,
        small.factory() as a,
        other.factory() as b,
    ):
        assert store_for(a) is store_for(a) and store_for(a) is not store_for(b)
        assert len(store_for(b).nearest(b, ENCODER, small.vectors[0], 5).proposal_ids) == 2


def test_the_proposal_page_lists_last_years_copies_from_the_store(imported: Any) -> None:
    import re

    from service_helpers import TOY_ROWS, api_csrf, proposals_csv

    rev = imported.client_for("rev")
    repeat = [("B-1", *TOY_ROWS[1][1:]), ("B-2", *TOY_ROWS[3][1:])]
    r = rev.post(
        "/api/imports",
        files={"file": ("p.csv", proposals_csv(repeat, year=2025))},
        headers=api_csrf(rev),
    )
    assert r.status_code == 201, r.text
    imported.state.jobs.wait_idle()  # the analysis of 2025 caches the new vectors
    page = rev.get("/proposals/2025/B-1")
    assert page.status_code == 200
    similar = page.text.split('id="similar"')[1].split("</section>")[0]
    rows = re.findall(r'href="/proposals/(\d+)/([^"]+)"', similar)
    # A-002 and A-005 carry B-1's very text; nothing of 2025 is listed.
    assert {pid for _, pid in rows[:2]} == {"A-002", "A-005"}
    assert all(year == "2024" for year, _ in rows) and "1.000" in similar
