"""The proposal page marks which similar past proposals voted through the neighbour member."""

from __future__ import annotations

from types import SimpleNamespace

from service.pages.review import mark_voters, voting_neighbours


class _Vote:
    k = 3


class _Model:
    def __init__(self, heads_with_neighbours: bool) -> None:
        members = ["baseline", "neighbours"] if heads_with_neighbours else ["baseline"]
        self.plans = {"category": SimpleNamespace(members=members)}
        self.members = {"baseline": object(), "neighbours": _Vote()}
        self.asked_k: int | None = None

    def neighbours(self, text: str, k: int = 5) -> list[dict]:
        self.asked_k = k
        return [{"id": f"2022-00{i}", "similarity": 0.9 - i / 10} for i in range(k)]


def test_voters_are_the_members_k_nearest():
    model = _Model(heads_with_neighbours=True)
    assert voting_neighbours(model, "关于加装电梯的建议") == {"2022-000", "2022-001", "2022-002"}
    assert model.asked_k == 3  # all that voted, not the method's default of five


def test_no_voters_where_no_head_is_served_by_the_neighbours():
    assert voting_neighbours(_Model(heads_with_neighbours=False), "x") is None
    assert voting_neighbours(None, "x") is None  # no live model
    assert voting_neighbours(SimpleNamespace(labels={}), "x") is None  # a baseline bundle


def test_similar_rows_are_marked():
    similar = [{"id": "2022-001"}, {"id": "2023-009"}]
    assert [r["voted"] for r in mark_voters(similar, {"2022-001"})] == [True, False]
    assert [r["voted"] for r in mark_voters(similar, None)] == [None, None]
