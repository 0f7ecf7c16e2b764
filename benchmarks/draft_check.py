"""Draft check (提案预审): speed, finding the repeated proposal, and the one-matter check.

Three figures, all on the demo data (`data/demo/`):

1. Rewordings: the 12 planted across-year rewordings (`duplicates.csv`, kind
   `reworded_across_years`). Per group the latest-year proposal is the draft; a hit is an
   earlier-year member of its group among the check's top 3. Two pools of past proposals:
   earlier years only, and every other demo proposal (this year's too, as the service
   searches).
2. One matter (一事一案): precision and recall of the `several_matters` remark on the
   labelled drafts of `data/demo/drafts.csv`, and how often it fires on the demo's
   proposals (all written as single-matter proposals: every firing there is a false alarm).
3. Speed: the service's whole check (`service.drafts.check_draft`: form, similar proposals,
   topics, category and unit from a live baseline model) for 2,000-character drafts against
   5,000 stored past proposals in SQLite. The 5,000 are the demo's 252 proposals sampled
   with replacement and lightly reworded (sentences shuffled, one dropped, numbers
   changed); their cached vectors are the source proposal's e5 vector plus Gaussian noise
   (sigma 0.01 per dimension, renormalised), so no 5,000 encodings are needed. The draft
   itself is encoded by e5 in every check, as in the service.

Usage:
    nice -n 10 .venv/bin/python benchmarks/draft_check.py --cache .cache/bench/draft_check
"""

from __future__ import annotations

import argparse
import csv
import random
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.draft_check import matters, rank_similar  # noqa: E402
from model.records import read_proposals  # noqa: E402

DEMO = ROOT / "data" / "demo"


def rewordings(props: list, vecs: np.ndarray) -> None:
    """Figure 1: the planted rewordings in the top 3."""
    groups: dict[str, list[str]] = defaultdict(list)
    with (DEMO / "duplicates.csv").open(encoding="utf-8-sig") as fh:
        for row in csv.DictReader(fh):
            if row["kind"] == "reworded_across_years":
                groups[row["group"]].append(row["id"])
    by_id = {p.id: i for i, p in enumerate(props)}
    for label, earlier_only in (("earlier years only", True), ("all other proposals", False)):
        hits = cos_hits = 0
        lines = []
        for g, members in sorted(groups.items()):
            draft = max(members, key=lambda m: (props[by_id[m]].year, m))
            d = props[by_id[draft]]
            gold = {m for m in members if props[by_id[m]].year < d.year}
            past = [
                i
                for i, p in enumerate(props)
                if p.id != draft and (p.year < d.year or not earlier_only)
            ]
            ranked = rank_similar(
                d.title,
                d.content,
                vecs[by_id[draft]],
                [props[i].title for i in past],
                [props[i].content for i in past],
                vecs[past],
                k=3,
            )
            top = [props[past[i]].id for i, _, _ in ranked]
            hit = bool(gold & set(top))
            hits += hit
            by_cos = np.argsort(-(vecs[past] @ vecs[by_id[draft]]))[:3]
            cos_hits += bool(gold & {props[past[i]].id for i in by_cos})
            lines.append(
                f"  {g} draft {draft}: gold {sorted(gold)} top3 {top} {'HIT' if hit else 'miss'}"
            )
        print(
            f"rewordings ({label}): {hits}/{len(groups)} with an earlier member in the top 3 "
            f"(e5 cosine alone: {cos_hits}/{len(groups)})"
        )
        print("\n".join(lines))


def one_matter(props: list) -> None:
    """Figure 2: precision and recall of the one-matter check."""
    with (DEMO / "drafts.csv").open(encoding="utf-8") as fh:
        drafts = list(csv.DictReader(fh))
    tp = fp = fn = tn = 0
    wrong = []
    for d in drafts:
        pred = bool(matters(d["title"], d["content"])[0])
        gold = d["matters"] == "multiple"
        tp += pred and gold
        fp += pred and not gold
        fn += gold and not pred
        tn += not pred and not gold
        if pred != gold:
            wrong.append(d["draft_id"])
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    n_multi = sum(d["matters"] == "multiple" for d in drafts)
    print(
        f"one matter on {len(drafts)} labelled drafts ({n_multi} multiple): "
        f"precision {precision:.3f} ({tp}/{tp + fp}), recall {recall:.3f} ({tp}/{tp + fn}); "
        f"wrong: {', '.join(wrong) or 'none'}"
    )
    flagged = [p.id for p in props if matters(p.title, p.content)[0]]
    print(
        f"one matter on the {len(props)} demo proposals (single-matter): fires on "
        f"{len(flagged)} ({len(flagged) / len(props):.1%}): {', '.join(flagged)}"
    )


def _reword(text: str, rng: random.Random) -> str:
    parts = [s for s in re.split(r"(?<=[。；])", text) if s]
    if len(parts) > 3:
        parts.pop(rng.randrange(1, len(parts)))
        i = rng.randrange(1, len(parts) - 1)
        parts[i], parts[i + 1] = parts[i + 1], parts[i]
    return re.sub(r"\d+", lambda m: str(int(m.group()) + rng.randint(1, 9)), "".join(parts))


def _draft_text(props: list, rng: random.Random, chars: int = 2000) -> tuple[str, str]:
    p = rng.choice(props)
    content = p.content
    while len(content) < chars:
        content += rng.choice(props).content
    return p.title, content[:chars]


def speed(props: list, vecs: np.ndarray, n_past: int, checks: int, profile: bool = False) -> None:
    """Figure 3: the service's whole check against `n_past` stored proposals."""
    from model.bundle import save_bundle
    from model.topics import read_topics
    from service.app import build_state
    from service.bootstrap import store_topics
    from service.drafts import check_draft
    from service.models import Embedding, ImportBatch, Proposal, User
    from service.settings import Settings
    from training.baseline import fit_baseline

    rng = random.Random(0)
    tmp = Path(tempfile.mkdtemp(prefix="draft_bench_"))
    labelled = [p for p in props if p.category and p.main_unit]
    save_bundle(fit_baseline(labelled), tmp / "bundle", {"version": "bench"})
    settings = Settings(
        data_dir=tmp / "var",
        db_url=f"sqlite:///{tmp / 'var' / 'tian.db'}",
        model_dir=tmp / "bundle",
        encoder="e5-small",
        background_jobs=False,
    )
    state = build_state(settings)
    state.runtime.start()
    encoder = state.encoders.get()
    assert encoder is not None
    with state.factory() as s, s.begin():
        user = User(username="bench", password_hash="x", role="admin")
        s.add(user)
        s.flush()
        batch = ImportBatch(
            file_name="synthetic.csv", sha256="0" * 64, rows=n_past, added=n_past,
            updated=0, unchanged=0, user_id=user.id,
        )  # fmt: skip
        s.add(batch)
        s.flush()
        rows = []
        for i in range(n_past):
            j = rng.randrange(len(props))
            src = props[j]
            rows.append(
                (
                    Proposal(
                        year=2014 + i % 11,
                        pid=f"S{i:05d}",
                        title=src.title,
                        content=_reword(src.content, rng),
                        main_unit=src.main_unit,
                        category=src.category,
                        batch_id=batch.id,
                    ),
                    j,
                )
            )
        s.add_all([p for p, _ in rows])
        s.flush()
        noise = np.random.default_rng(0).normal(0, 0.01, size=(n_past, vecs.shape[1]))
        for (p, j), eps in zip(rows, noise, strict=True):
            v = vecs[j] + eps
            v = (v / np.linalg.norm(v)).astype(np.float32)
            s.add(
                Embedding(proposal_id=p.id, encoder=encoder.name, text_hash="", vector=v.tobytes())
            )
        store_topics(s, 2024, read_topics(DEMO / "topics_2024.csv"))
    times: list[float] = []
    cpu: list[float] = []
    with state.factory() as s:
        title, content = _draft_text(props, rng)
        check_draft(state, s, title, content)  # warm-up: loads e5 and encodes the topics once
        for _ in range(checks):
            title, content = _draft_text(props, rng)
            t0, c0 = time.perf_counter(), time.process_time()
            if profile:
                import cProfile
                import pstats

                with cProfile.Profile() as prof:
                    result = check_draft(state, s, title, content)
                pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
            else:
                result = check_draft(state, s, title, content)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    print(
        f"speed: {checks} checks of 2,000-character drafts against {n_past} stored proposals: "
        f"wall median {statistics.median(times):.2f} s, max {max(times):.2f} s; "
        f"CPU time (all threads) median {statistics.median(cpu):.2f} s, max {max(cpu):.2f} s "
        f"(similar found: {len(result['similar'])}, topics: {len(result['topics']['matches'])})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache" / "bench" / "draft_check")
    parser.add_argument("--past", type=int, default=5000, help="stored proposals for the speed run")
    parser.add_argument("--checks", type=int, default=5, help="timed checks")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--profile", action="store_true", help="profile the timed checks")
    args = parser.parse_args()

    from model.encoder import load_encoder
    from training.dedup_scorer import cached_vectors

    props = list(read_proposals(DEMO / "proposals.csv"))
    encoder = load_encoder("e5-small")
    vecs = cached_vectors(encoder, [p.id for p in props], [p.text for p in props], args.cache)
    rewordings(props, vecs)
    one_matter(props)
    if not args.skip_speed:
        speed(props, vecs, args.past, args.checks, args.profile)


if __name__ == "__main__":
    main()
