"""Vector index: search, incremental add, persistence, the encoding cache, all-pairs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import model.index as index_module
from model.index import (
    VectorIndex,
    VectorIndexError,
    all_pairs,
    encode_with_cache,
    text_hash,
)

DIM = 16


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered(rng: np.random.Generator, n: int, dim: int = DIM, centres: int = 20) -> np.ndarray:
    """Vectors in a few tight clusters, like embeddings of texts on a few themes."""
    c = unit(rng, centres, dim)
    x = c[rng.integers(0, centres, n)] + 0.3 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


class CountingEncoder:
    """A fake encoder: a text's vector is seeded by its hash; counts what it encodes."""

    name = "fake"
    dim = DIM

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def encode(
        self,
        texts: Sequence[str],
        *,
        kind: str = "passage",
        batch_size: int = 32,
        progress: bool = False,
    ) -> np.ndarray:
        self.encoded.extend(texts)
        seeds = [int(text_hash(t, kind)[:8], 16) for t in texts]
        rows = [unit(np.random.default_rng(s), 1)[0] for s in seeds]
        return np.array(rows, dtype=np.float32).reshape(len(texts), DIM)


def ids_for(n: int, start: int = 0) -> list[str]:
    return [f"p{i}" for i in range(start, start + n)]


def test_exact_search_finds_itself_best_first() -> None:
    rng = np.random.default_rng(0)
    vecs = unit(rng, 50)
    idx = VectorIndex(DIM, encoder_name="fake", backend="exact")
    idx.add(ids_for(50), vecs)
    found, scores = idx.search(vecs[:5], k=3)
    assert [f[0] for f in found] == ids_for(5)
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-7).all()
    assert len(idx) == 50 and "p3" in idx and "x" not in idx
    np.testing.assert_allclose(idx.vectors_for(["p7", "p2"]), vecs[[7, 2]], atol=1e-6)


def test_fewer_than_k_and_empty_index() -> None:
    idx = VectorIndex(DIM, encoder_name="fake")
    found, scores = idx.search(unit(np.random.default_rng(1), 2), k=5)
    assert found == [[], []] and scores.shape == (2, 0)
    idx.add(["a", "b"], unit(np.random.default_rng(2), 2))
    found, scores = idx.search(unit(np.random.default_rng(3), 1), k=5)
    assert sorted(found[0]) == ["a", "b"] and scores.shape == (1, 2)


def test_errors_leave_index_unchanged() -> None:
    rng = np.random.default_rng(4)
    idx = VectorIndex(DIM, encoder_name="fake")
    idx.add(["a"], unit(rng, 1))
    with pytest.raises(VectorIndexError, match="already in the index"):
        idx.add(["b", "a"], unit(rng, 2))
    with pytest.raises(VectorIndexError, match="already in the index"):
        idx.add(["c", "c"], unit(rng, 2))
    with pytest.raises(VectorIndexError, match=r"shape \(n, 16\)"):
        idx.add(["d"], unit(rng, 1, dim=8))
    with pytest.raises(VectorIndexError, match="2 ids but 1 vectors"):
        idx.add(["d", "e"], unit(rng, 1))
    with pytest.raises(VectorIndexError, match="NaN"):
        idx.add(["d"], np.full((1, DIM), np.nan))
    with pytest.raises(VectorIndexError, match=r"shape \(n, 16\)"):
        idx.search(unit(rng, 1, dim=8), k=1)
    with pytest.raises(VectorIndexError, match="k must be"):
        idx.search(unit(rng, 1), k=0)
    with pytest.raises(KeyError, match="zz"):
        idx.vectors_for(["zz"])
    assert idx.ids == ["a"]
    assert isinstance(VectorIndexError("x"), ValueError)


@pytest.mark.parametrize("backend", ["exact", "ann"])
def test_incremental_add_matches_building_at_once(backend: str) -> None:
    rng = np.random.default_rng(5)
    vecs, queries = clustered(rng, 600), clustered(rng, 20)
    once = VectorIndex(DIM, encoder_name="fake", backend=backend)  # type: ignore[arg-type]
    once.add(ids_for(600), vecs)
    steps = VectorIndex(DIM, encoder_name="fake", backend=backend)  # type: ignore[arg-type]
    for s in range(0, 600, 150):  # e.g. one year at a time
        steps.add(ids_for(150, s), vecs[s : s + 150])
    a_ids, a_scores = once.search(queries, k=10)
    b_ids, b_scores = steps.search(queries, k=10)
    if backend == "exact":
        assert a_ids == b_ids
        np.testing.assert_allclose(a_scores, b_scores, atol=1e-6)
    else:  # two HNSW graphs differ in shape; both must agree with exact search
        assert steps.active_backend == "ann"
        truth = VectorIndex(DIM, encoder_name="f", backend="exact")
        truth.add(ids_for(600), vecs)
        t_ids, _ = truth.search(queries, k=10)
        for got in (a_ids, b_ids):
            recall = np.mean([len(set(g) & set(t)) / 10 for g, t in zip(got, t_ids, strict=True)])
            assert recall >= 0.95


def test_ann_recall_against_exact() -> None:
    rng = np.random.default_rng(6)
    vecs, queries = clustered(rng, 3000, dim=32, centres=50), clustered(rng, 50, dim=32, centres=50)
    ann = VectorIndex(32, encoder_name="fake", backend="ann")
    exact = VectorIndex(32, encoder_name="fake", backend="exact")
    for idx in (ann, exact):
        idx.add(ids_for(3000), vecs)
    got, got_scores = ann.search(queries, k=10)
    want, _ = exact.search(queries, k=10)
    recall = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got, want, strict=True)])
    assert recall >= 0.95
    # HNSW scores are cosines too, comparable with exact ones
    np.testing.assert_allclose(
        got_scores[:, 0], (queries * ann.vectors_for([g[0] for g in got])).sum(1), atol=1e-4
    )


def test_auto_switches_to_ann_once_and_then_grows_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_module, "AUTO_ANN_THRESHOLD", 100)
    rng = np.random.default_rng(7)
    idx = VectorIndex(DIM, encoder_name="fake")
    idx.add(ids_for(60), unit(rng, 60))
    assert idx.active_backend == "exact"
    idx.add(ids_for(60, 60), unit(rng, 60))
    assert idx.active_backend == "ann"
    graph = idx._ann
    idx.add(ids_for(2000, 120), unit(rng, 2000))  # past the graph's first capacity
    assert idx._ann is graph and graph.get_current_count() == 2120
    found, _ = idx.search(idx.vectors_for(["p2100"]), k=1)
    assert found == [["p2100"]]


@pytest.mark.parametrize("backend", ["exact", "ann"])
def test_save_load_round_trip(tmp_path: Path, backend: str) -> None:
    rng = np.random.default_rng(8)
    vecs = clustered(rng, 300)
    idx = VectorIndex(DIM, encoder_name="fake", backend=backend)  # type: ignore[arg-type]
    idx.add(ids_for(300), vecs, texts_hash=[f"h{i}" for i in range(300)])
    folder = tmp_path / "index"
    idx.save(folder)
    idx.save(folder)  # overwriting an existing index works and leaves no temporary folders
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]
    back = VectorIndex.load(folder, encoder_name="fake")
    assert back.ids == idx.ids and back.active_backend == idx.active_backend
    assert back.text_hash_of("p9") == "h9"
    q = vecs[:7]
    assert back.search(q, k=5)[0] == idx.search(q, k=5)[0]
    back.add(["new"], unit(rng, 1))  # a loaded index keeps growing
    assert back.search(back.vectors_for(["new"]), k=1)[0] == [["new"]]


def test_load_refuses_other_encoder_and_non_index(tmp_path: Path) -> None:
    idx = VectorIndex(DIM, encoder_name="e5-small")
    idx.add(["a"], unit(np.random.default_rng(9), 1))
    idx.save(tmp_path / "ix")
    with pytest.raises(VectorIndexError, match="built with encoder 'e5-small', not 'other'"):
        VectorIndex.load(tmp_path / "ix", encoder_name="other")
    with pytest.raises(VectorIndexError, match="not a saved vector index"):
        VectorIndex.load(tmp_path)
    (tmp_path / "ix" / "vectors.npy").write_bytes(b"junk")
    with pytest.raises(VectorIndexError, match="damaged"):
        VectorIndex.load(tmp_path / "ix")


def test_cache_encodes_nothing_twice(tmp_path: Path) -> None:
    enc = CountingEncoder()
    texts = ["电梯加装", "乡村振兴", "电梯加装", "垃圾分类"]
    idx = VectorIndex(DIM, encoder_name=enc.name)
    first = encode_with_cache(enc, ids_for(4), texts, idx, kind="passage", progress=False, add=True)
    assert enc.encoded == ["电梯加装", "乡村振兴", "垃圾分类"]  # identical texts once
    np.testing.assert_array_equal(first[0], first[2])
    idx.save(tmp_path / "ix")
    idx = VectorIndex.load(tmp_path / "ix", encoder_name=enc.name)
    enc.encoded.clear()
    again = encode_with_cache(enc, ids_for(4), texts, idx, kind="passage", progress=False, add=True)
    assert enc.encoded == []
    np.testing.assert_allclose(again, first, atol=1e-6)
    # An edited text is re-encoded and replaces the stored vector; a new id is added.
    edited = ["电梯加装", "乡村振兴战略", "电梯加装", "垃圾分类", "停车难"]
    out = encode_with_cache(enc, ids_for(5), edited, idx, kind="passage", progress=False, add=True)
    assert enc.encoded == ["乡村振兴战略", "停车难"]
    np.testing.assert_allclose(idx.vectors_for(["p1", "p4"]), out[[1, 4]], atol=1e-6)
    # Query vectors differ from passage vectors, so they are never served from the cache.
    enc.encoded.clear()
    encode_with_cache(enc, ["p0"], ["电梯加装"], idx, kind="query", progress=False)
    assert enc.encoded == ["电梯加装"]


def test_cache_without_index_and_wrong_encoder() -> None:
    enc = CountingEncoder()
    out = encode_with_cache(enc, ["a", "b"], ["x", "y"], None, kind="passage", progress=False)
    assert out.shape == (2, DIM) and enc.encoded == ["x", "y"]
    with pytest.raises(VectorIndexError, match="encoder 'other'"):
        encode_with_cache(
            enc,
            ["a"],
            ["x"],
            VectorIndex(DIM, encoder_name="other"),
            kind="passage",
            progress=False,
        )
    with pytest.raises(ValueError, match="2 ids but 1 texts"):
        encode_with_cache(enc, ["a", "b"], ["x"], None, kind="passage", progress=False)


def test_all_pairs_matches_brute_force() -> None:
    rng = np.random.default_rng(10)
    vecs = clustered(rng, 130)
    sims = vecs @ vecs.T
    np.fill_diagonal(sims, -np.inf)
    want = set()
    for i in range(130):
        for j in np.argsort(-sims[i])[:3]:
            want.add((min(i, int(j)), max(i, int(j))))
    got = all_pairs(vecs, k=3, chunk=17)  # a chunk that does not divide n
    assert {(i, j) for i, j, _ in got} == want
    assert all(i < j for i, j, _ in got)
    scores = [s for _, _, s in got]
    assert scores == sorted(scores, reverse=True)
    for i, j, s in got[:20]:
        assert s == pytest.approx(float(sims[i, j]), abs=1e-5)
    cut = float(np.median(scores))
    strong = all_pairs(vecs, k=3, min_score=cut)
    assert strong and all(s >= cut for _, _, s in strong)
    assert {(i, j) for i, j, _ in strong} <= want
    assert all_pairs(vecs[:1], k=3) == []
    with pytest.raises(ValueError, match="k must be"):
        all_pairs(vecs, k=0)
