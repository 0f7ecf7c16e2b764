"""Finding duplicates in a set of proposals: candidates, scores and 并案 groups in one call.

The command line (`tian dedup`) and the service's analysis both call `find_duplicates`, so
the same data gives the same pairs and the same groups (with the same ids) in both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from model.dedup import DuplicateScorer, PairScore, build_pool, candidate_pairs, score_pool
from model.grouping import MIN_LINK, Group, group_pairs

__all__ = ["DuplicateSearch", "find_duplicates"]


@dataclass(frozen=True)
class DuplicateSearch:
    """What one search found.

    Attributes:
        scored: every candidate pair with its score, flagged or not.
        flagged: the pairs at or above `threshold`, best first.
        groups: merge candidates, largest first (ids "G-" + representative).
        threshold: the calibrated score used to flag.
    """

    scored: list[PairScore]
    flagged: list[PairScore]
    groups: list[Group]
    threshold: float


def find_duplicates(
    ids: Sequence[str],
    titles: Sequence[str],
    contents: Sequence[str],
    vectors: np.ndarray,
    *,
    n_data: int | None = None,
    order: dict[str, int] | None = None,
    scorer: DuplicateScorer | None = None,
    threshold: float | None = None,
    neighbours: int = 10,
    min_link: float = MIN_LINK,
) -> DuplicateSearch:
    """Likely duplicate pairs and 并案 groups among proposals.

    Args:
        ids, titles, contents, vectors: the proposals; rows [0, n_data) are the ones being
            checked (this year), the rest are searched against (earlier years).
        order: id -> position (earliest first) for picking representatives on ties.
        scorer: the duplicate scorer (default: the shipped one).
        threshold: flag at this calibrated score (default: the scorer's own).
        neighbours: embedding neighbours per proposal among the candidates.
        min_link: average-linkage floor inside a group (the guard against chaining).
    """
    scorer = scorer or DuplicateScorer()
    threshold = scorer.threshold if threshold is None else threshold
    pool = build_pool(ids, titles, contents, vectors, n_data=n_data)
    scored = score_pool(pool, candidate_pairs(pool, k=neighbours), scorer)
    flagged = sorted(
        (s for s in scored if s.score >= threshold), key=lambda s: (-s.score, s.id_a, s.id_b)
    )
    position = {pid: i for i, pid in enumerate(pool.ids)}

    def score_missing(pairs: list[tuple[str, str]]) -> list[float]:
        idx = [(position[a], position[b]) for a, b in pairs]
        return [s.score for s in score_pool(pool, idx, scorer)]

    groups = group_pairs(
        [(s.id_a, s.id_b, s.score) for s in scored],
        threshold=threshold,
        min_link=min_link,
        order=order,
        score_missing=score_missing,
    )
    return DuplicateSearch(scored=scored, flagged=flagged, groups=groups, threshold=threshold)
