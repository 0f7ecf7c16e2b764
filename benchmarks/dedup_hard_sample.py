"""Draw the candidate pairs of the hard duplicate development set from Teddy hot messages.

The pairs are then labelled by reading both texts under the rule in
`docs/duplicate_labelling.md`; only the ids and the label are kept in the repository
(`benchmarks/dedup_hard_pairs.csv`), never message text.

Pairs are drawn across strata of character TF-IDF cosine (character 1-3-grams, the organiser's
measure) from four sources, so that rewordings, same-place pairs and same-problem-type pairs
are all represented, not only copies:

- `neighbour`: each message's nearest neighbours by character cosine;
- `team`: pairs that at least one competition team put in the same hot issue;
- `place`: pairs that name the same estate, road, school or village but may be about
  different matters;
- `random`: random pairs (mostly unrelated).

Hot matters make most drawn pairs duplicates, so a second round (`--hard-negatives`) draws the
pairs an office must not merge: `place_far` (the same named place, little text in common),
`template` (much text in common, different named places: form letters sent about several
estates) and `problem_type` (the same kind of problem, different named places).

Usage:
    .venv/bin/python benchmarks/dedup_hard_sample.py --teddy DIR --out PAIRS.csv [--seed 0]
"""

from __future__ import annotations

import argparse
import csv
import random
import re
import sys
from collections import defaultdict
from itertools import combinations
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# (low, high, pairs to draw): char cosine strata; the middle bands hold the rewordings.
STRATA = [
    (0.9, 1.01, 60),
    (0.7, 0.9, 80),
    (0.5, 0.7, 100),
    (0.35, 0.5, 100),
    (0.2, 0.35, 100),
    (0.0, 0.2, 60),
]
_PLACE_RE = re.compile(
    r"([\u4e00-\u9fff]{2,6}(?:小区|花园|家园|新城|公寓|广场|小学|中学|幼儿园|学校|医院|市场|村|路))"
)


def read_hot(teddy: Path) -> tuple[list[str], list[str]]:
    ids, texts = [], []
    with (teddy / "hot_messages.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            ids.append(row["id"])
            texts.append(f"{row['title']}\n{row['content']}")
    return ids, texts


def team_pairs(teddy: Path) -> set[tuple[str, str]]:
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    with (teddy / "hot_issue_assignments.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            groups[(row["team"], row["topic_id"])].append(row["msg_id"])
    out = set()
    for members in groups.values():
        if len(members) > 60:  # a catch-all issue says nothing about pairs
            continue
        for a, b in combinations(sorted(set(members)), 2):
            out.add((a, b))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--teddy", type=Path, required=True, help="folder of the Teddy 2020 files")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--hard-negatives",
        type=Path,
        metavar="DRAWN.csv",
        help="draw the second round (likely related pairs), excluding the pairs in this file",
    )
    args = ap.parse_args()

    from sklearn.feature_extraction.text import TfidfVectorizer

    rng = random.Random(args.seed)
    ids, texts = read_hot(args.teddy)
    index = {m: i for i, m in enumerate(ids)}
    clean = [re.sub(r"\*+", "", t) for t in texts]
    mat = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True).fit_transform(
        clean
    )

    def cos(i: int, j: int) -> float:
        return float(mat[i].multiply(mat[j]).sum())

    pools: dict[str, set[tuple[int, int]]] = defaultdict(set)
    sims = (mat @ mat.T).tocsr()
    for i in range(len(ids)):
        row = sims.getrow(i).toarray().ravel()
        row[i] = -1
        for j in np.argsort(-row)[:8]:
            pools["neighbour"].add((min(i, int(j)), max(i, int(j))))
    for a, b in team_pairs(args.teddy):
        if a in index and b in index:
            i, j = index[a], index[b]
            pools["team"].add((min(i, j), max(i, j)))
    by_place: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(clean):
        for name in set(_PLACE_RE.findall(t[:300])):
            by_place[name].append(i)
    for members in by_place.values():
        if 2 <= len(members) <= 40:
            for i, j in combinations(members, 2):
                pools["place"].add((i, j))
    for _ in range(3000):
        i, j = rng.sample(range(len(ids)), 2)
        pools["random"].add((min(i, j), max(i, j)))

    if args.hard_negatives:
        return _hard_negatives(args, ids, clean, cos, pools, rng)
    # Scores for every candidate, then a stratified draw mixing the sources.
    chosen: dict[tuple[int, int], tuple[str, str]] = {}
    by_stratum: dict[int, dict[str, list[tuple[int, int]]]] = defaultdict(lambda: defaultdict(list))
    for source in sorted(pools):
        for pair in sorted(pools[source]):
            c = cos(*pair)
            for s, (low, high, _) in enumerate(STRATA):
                if low <= c < high:
                    by_stratum[s][source].append(pair)
                    break
    for s, (low, high, want) in enumerate(STRATA):
        sources = by_stratum[s]
        for pairs in sources.values():
            rng.shuffle(pairs)
        names = sorted(sources)
        taken = 0
        while taken < want and any(sources[n] for n in names):
            for name in names:
                while sources[name]:
                    pair = sources[name].pop()
                    if pair not in chosen:
                        chosen[pair] = (f"{low:.2f}-{min(high, 1.0):.2f}", name)
                        taken += 1
                        break
                if taken >= want:
                    break
    rows = sorted(chosen.items(), key=lambda kv: (kv[1][0], ids[kv[0][0]], ids[kv[0][1]]))
    order = list(range(len(rows)))
    rng.shuffle(order)  # labelling order independent of the stratum
    with args.out.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id_a", "id_b", "char_cos", "stratum", "source"])
        for k in order:
            (i, j), (stratum, source) = rows[k]
            w.writerow([ids[i], ids[j], f"{cos(i, j):.4f}", stratum, source])
    print(f"{len(rows)} pairs written to {args.out}")
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for _, (stratum, source) in rows:
        counts[(stratum, source)] += 1
    for key in sorted(counts):
        print(*key, counts[key])
    return 0


# A few kinds of problem that many estates raise in the same words.
_PROBLEM_WORDS = (
    "搅拌站",
    "噪音",
    "油烟",
    "捆绑",
    "车位",
    "拆迁",
    "学位",
    "物业",
    "违建",
    "停车",
    "垃圾站",
)
# (source, pairs to draw)
HARD_SOURCES = [("place_far", 60), ("template", 40), ("problem_type", 60)]


def _hard_negatives(args, ids, clean, cos, pools, rng) -> int:  # type: ignore[no-untyped-def]
    drawn = set()
    with args.hard_negatives.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            drawn.add((row["id_a"], row["id_b"]))
            drawn.add((row["id_b"], row["id_a"]))
    places = [set(_PLACE_RE.findall(t[:300])) for t in clean]
    found: dict[str, list[tuple[int, int, float]]] = defaultdict(list)
    for i, j in sorted(pools["place"]):
        c = cos(i, j)
        if 0.05 <= c < 0.35:
            found["place_far"].append((i, j, c))
    for i, j in sorted(pools["neighbour"]):
        c = cos(i, j)
        if c >= 0.5 and places[i] and places[j] and not places[i] & places[j]:
            found["template"].append((i, j, c))
    by_word: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(clean):
        for word in _PROBLEM_WORDS:
            if word in t[:200]:
                by_word[word].append(i)
    for word in _PROBLEM_WORDS:
        members = by_word[word]
        for _ in range(200):
            if len(members) < 2:
                break
            i, j = sorted(rng.sample(members, 2))
            if places[i] and places[j] and not places[i] & places[j]:
                c = cos(i, j)
                if 0.1 <= c < 0.6:
                    found["problem_type"].append((i, j, c))
    out = []
    seen = set()
    for source, want in HARD_SOURCES:
        cands = sorted(set(found[source]))
        rng.shuffle(cands)
        taken = 0
        for i, j, c in cands:
            if taken >= want:
                break
            key = (ids[i], ids[j])
            if key in drawn or key in seen:
                continue
            seen.add(key)
            stratum = next(f"{lo:.2f}-{min(hi, 1.0):.2f}" for lo, hi, _ in STRATA if lo <= c < hi)
            out.append([ids[i], ids[j], f"{c:.4f}", stratum, source])
            taken += 1
    rng.shuffle(out)
    with args.out.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id_a", "id_b", "char_cos", "stratum", "source"])
        w.writerows(out)
    print(f"{len(out)} pairs written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
