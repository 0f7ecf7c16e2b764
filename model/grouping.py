"""Merge candidates (并案 groups) from scored pairs, with a guard against chaining.

Plain connected components over "score >= threshold" edges chain: A~B and B~C put A and C
in one group even when A and C are about different matters, and a long chain can swallow a
whole theme. Inside each component we therefore run average-linkage agglomeration: two
sub-groups merge only while the mean score over *all* pairs between them is at least
`min_link`. Pairs that were never scored count as 0 unless `score_missing` supplies a
score, so a chain joined by a single bridge splits apart, while a tight group (every
member similar to every other) stays whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["MIN_LINK", "Group", "group_pairs"]

MAX_SCORED = 300
# The average-linkage floor. At 0.7, the 66 real messages naming one estate split into the
# 55 about its mixing plant (one group, whole) and the other matters at that place (roads, a
# rubbish station), which floors of 0.35 to 0.6 merged in; the demo's planted groups are kept
# whole at every floor up to 0.7 (benchmarks/dedup_quality.py).
MIN_LINK = 0.7

ScoreMissing = Callable[[list[tuple[str, str]]], Sequence[float]]


@dataclass(frozen=True)
class Group:
    """One merge candidate: members (representative first) and its representative."""

    group_id: str
    members: tuple[str, ...]
    representative: str


def _components(nodes: list[str], edges: dict[tuple[str, str], float]) -> list[list[str]]:
    parent = {n: n for n in nodes}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
    comps: dict[str, list[str]] = {}
    for n in nodes:
        comps.setdefault(find(n), []).append(n)
    return list(comps.values())


def _average_linkage(
    members: list[str], score: Callable[[str, str], float], min_link: float
) -> list[list[str]]:
    """Agglomerate while the best average inter-cluster score is at least `min_link`.

    SciPy's average linkage (UPGMA) on distance 1 - score, cut at 1 - `min_link`: the same
    merges as the greedy loop "join the two clusters of highest mean score", since average
    linkage never inverts, in O(n^2) where that loop was O(n^3) (a component of a few thousand
    proposals, one theme in a big year, took minutes).
    """
    n = len(members)
    if n < 2:
        return [list(members)]
    from scipy.cluster.hierarchy import fcluster, linkage

    # Condensed distances in SciPy's order: (0,1), (0,2), ..., (1,2), ...
    distance = np.fromiter(
        (1.0 - score(members[x], members[y]) for x in range(n) for y in range(x + 1, n)),
        dtype=np.float64,
        count=n * (n - 1) // 2,
    )
    tree = linkage(distance, method="average")
    # A hair above the cut: a mean score exactly at `min_link` still merges, as it did.
    labels = fcluster(tree, t=1.0 - min_link + 1e-12, criterion="distance")
    clusters: dict[int, list[str]] = {}
    for member, label in zip(members, labels, strict=True):
        clusters.setdefault(int(label), []).append(member)
    return list(clusters.values())


def group_pairs(
    pairs: Sequence[tuple[str, str, float]],
    *,
    threshold: float = 0.5,
    min_link: float = MIN_LINK,
    order: dict[str, int] | None = None,
    score_missing: ScoreMissing | None = None,
) -> list[Group]:
    """Group ids linked by pairs scoring at least `threshold` into merge candidates.

    Args:
        pairs: (id_a, id_b, calibrated score) for every scored pair, flagged or not.
        threshold: a pair at or above it links two proposals.
        min_link: average-linkage floor inside a component (the chaining guard).
        order: id -> position (e.g. by year then submission); breaks ties for the
            representative in favour of the earliest. Defaults to first appearance.
        score_missing: optional scorer for member pairs that were never scored; without
            it they count as 0 (not similar), which is the cautious choice.

    Returns:
        Groups of two or more ids, largest first, each with id "G-" + its representative.
        The representative is the most central member (highest total score to the others),
        the earliest on ties.
    """
    scores: dict[tuple[str, str], float] = {}
    for a, b, s in pairs:
        if a == b:
            continue
        key = (a, b) if a < b else (b, a)
        scores[key] = max(float(s), scores.get(key, 0.0))
    edges = {k: s for k, s in scores.items() if s >= threshold}
    nodes = list(dict.fromkeys(x for key in edges for x in key))
    if order is None:
        seen = list(dict.fromkeys(x for a, b, _ in pairs for x in (a, b)))
        order = {x: i for i, x in enumerate(seen)}

    groups: list[list[str]] = []
    for comp in _components(nodes, edges):
        # Scoring every member pair is quadratic: beyond MAX_SCORED members, unscored pairs
        # simply count as 0 (the cautious choice).
        if score_missing is not None and 2 < len(comp) <= MAX_SCORED:
            missing = [
                (a, b)
                for x, a in enumerate(comp)
                for b in comp[x + 1 :]
                if ((a, b) if a < b else (b, a)) not in scores
            ]
            if missing:
                for (a, b), s in zip(missing, score_missing(missing), strict=True):
                    scores[(a, b) if a < b else (b, a)] = float(s)

        def score(a: str, b: str) -> float:
            return scores.get((a, b) if a < b else (b, a), 0.0)

        groups.extend(c for c in _average_linkage(comp, score, min_link) if len(c) > 1)

    result = []
    for members in groups:

        def centrality(m: str, members: list[str] = members) -> tuple[float, int]:
            total = sum(scores.get((m, o) if m < o else (o, m), 0.0) for o in members if o != m)
            return (-total, order.get(m, len(order)))

        ranked = sorted(members, key=centrality)
        rep = ranked[0]
        rest = sorted(ranked[1:], key=lambda m: order.get(m, len(order)))
        result.append((rep, [rep, *rest]))
    result.sort(key=lambda r: (-len(r[1]), order.get(r[0], len(order))))
    # Named after the representative, so the command line and the service (and a rerun
    # on more data) give a matter the same id.
    return [
        Group(group_id=f"G-{rep}", members=tuple(members), representative=rep)
        for rep, members in result
    ]
