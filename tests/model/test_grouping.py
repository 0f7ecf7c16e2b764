"""并案 grouping: components, the chaining guard, representatives."""

from __future__ import annotations

import numpy as np
import pytest

from model.grouping import group_pairs


def test_pairs_below_threshold_do_not_group() -> None:
    assert group_pairs([("a", "b", 0.4)], threshold=0.5) == []


def test_tight_group_with_central_representative() -> None:
    pairs = [("a", "b", 0.9), ("b", "c", 0.95), ("a", "c", 0.8), ("c", "d", 0.9), ("b", "d", 0.7)]
    [group] = group_pairs(pairs, threshold=0.5, min_link=0.35)  # a-d unscored: counts as 0
    assert set(group.members) == {"a", "b", "c", "d"}
    assert group.representative == "c"  # highest total score to the others
    assert group.members[0] == "c"


def test_representative_tie_goes_to_earliest() -> None:
    [group] = group_pairs([("y", "x", 0.9)], order={"x": 0, "y": 1})
    assert group.representative == "x"


def test_chain_with_weak_bridge_is_split() -> None:
    # Two tight triples joined by a single strong edge between c and d: a chain, not one matter.
    pairs = [
        ("a", "b", 0.9),
        ("b", "c", 0.9),
        ("a", "c", 0.9),
        ("d", "e", 0.9),
        ("e", "f", 0.9),
        ("d", "f", 0.9),
        ("c", "d", 0.6),
    ]
    groups = group_pairs(pairs, threshold=0.5, min_link=0.35)
    assert sorted(sorted(g.members) for g in groups) == [["a", "b", "c"], ["d", "e", "f"]]


def test_long_chain_does_not_become_one_group() -> None:
    chain = [(f"n{i}", f"n{i + 1}", 0.8) for i in range(8)]
    groups = group_pairs(chain, threshold=0.5)
    assert max(len(g.members) for g in groups) < 9


def test_score_missing_is_used_for_unscored_member_pairs() -> None:
    pairs = [("a", "b", 0.9), ("b", "c", 0.9)]
    asked: list[tuple[str, str]] = []

    def score_missing(missing: list[tuple[str, str]]) -> list[float]:
        asked.extend(missing)
        return [0.9 for _ in missing]

    [group] = group_pairs(pairs, threshold=0.5, min_link=0.6, score_missing=score_missing)
    assert asked == [("a", "c")]
    assert set(group.members) == {"a", "b", "c"}
    # Without it the unscored a-c pair counts as 0 and the strict floor splits the chain.
    groups = group_pairs(pairs, threshold=0.5, min_link=0.6)
    assert groups and all(len(g.members) == 2 for g in groups)


def test_group_ids_name_the_representative_and_largest_come_first() -> None:
    pairs = [("x", "y", 0.9), ("a", "b", 0.9), ("b", "c", 0.9), ("a", "c", 0.9)]
    groups = group_pairs(pairs)
    assert [g.group_id for g in groups] == [f"G-{groups[0].representative}", "G-x"]
    assert len(groups[0].members) == 3
    # The same matter keeps its id when an unrelated group is added.
    more = group_pairs([*pairs, ("p", "q", 0.95)])
    assert groups[0].group_id in {g.group_id for g in more}


def _greedy_average_linkage(n: int, scores: np.ndarray, min_link: float) -> set[frozenset[int]]:
    """The definition, step by step: join the two clusters of highest mean score while it is
    at least `min_link` (cubic; a reference for small n)."""
    clusters = [[i] for i in range(n)]
    while len(clusters) > 1:
        best, pair = -1.0, None
        for x in range(len(clusters)):
            for y in range(x + 1, len(clusters)):
                mean = float(np.mean([scores[a, b] for a in clusters[x] for b in clusters[y]]))
                if mean > best:
                    best, pair = mean, (x, y)
        if best < min_link or pair is None:
            break
        x, y = pair
        clusters[x] += clusters.pop(y)
    return {frozenset(c) for c in clusters}


@pytest.mark.parametrize("seed", range(20))
def test_average_linkage_makes_the_greedy_merges(seed: int) -> None:
    from model.grouping import _average_linkage

    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 14))
    # Two or three planted tight groups in noise, so both merging and stopping happen.
    labels = rng.integers(0, 3, size=n)
    scores = rng.uniform(0.0, 0.6, size=(n, n))
    scores[labels[:, None] == labels[None, :]] += 0.35
    scores = np.triu(scores, 1) + np.triu(scores, 1).T
    members = [f"p{i}" for i in range(n)]
    got = _average_linkage(members, lambda a, b: scores[int(a[1:]), int(b[1:])], 0.7)
    assert {frozenset(int(m[1:]) for m in c) for c in got} == _greedy_average_linkage(
        n, scores, 0.7
    )
