"""Likely duplicate pairs and suggested merge groups (并案) of a year."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from service.api.common import YearQuery
from service.deps import CurrentUser, SessionDep
from service.models import DuplicateGroup, DuplicatePair, Proposal

router = APIRouter(prefix="/api/duplicates", tags=["duplicates"])

SNIPPET = 80  # characters of a shared passage shown on the 并案 page


def _names(session: Session, ids: set[int]) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    return {
        p.id: {"year": p.year, "id": p.pid, "title": p.title}
        for p in session.scalars(select(Proposal).where(Proposal.id.in_(list(ids))))
    }


def year_groups(session: Session, year: int, *, evidence: bool = False) -> list[dict[str, Any]]:
    """The year's suggested merge groups, representative first, for the 并案 page and the API.

    Each group has its ``label`` (the group id), the ``representative`` and ``members`` (with
    their current merge group and review status), the scored ``pairs`` among its members and,
    with ``evidence``, the passages each member shares with the representative.
    """
    from service.review import views

    groups = list(
        session.scalars(
            select(DuplicateGroup).where(DuplicateGroup.year == year).order_by(DuplicateGroup.id)
        )
    )
    member_ids = {int(m) for g in groups for m in g.members} | {g.representative_id for g in groups}
    if not member_ids:
        return []
    props = {p.id: p for p in session.scalars(select(Proposal).where(Proposal.id.in_(member_ids)))}
    state = {v.row_id: v for v in views(session, list(props.values()))}
    pairs: dict[tuple[int, int], DuplicatePair] = {}
    for found in session.scalars(
        select(DuplicatePair).where(
            or_(
                DuplicatePair.proposal_a.in_(list(member_ids)),
                DuplicatePair.proposal_b.in_(list(member_ids)),
            )
        )
    ):
        key = (min(found.proposal_a, found.proposal_b), max(found.proposal_a, found.proposal_b))
        pairs[key] = found
    out = []
    for g in groups:
        rep = props[g.representative_id]
        members = [int(m) for m in g.members]
        ordered = [rep.id] + [m for m in members if m != rep.id]
        rows = []
        for m in ordered:
            p, v = props[m], state[m]
            row: dict[str, Any] = {
                "year": p.year,
                "id": p.pid,
                "title": p.title,
                "representative": m == rep.id,
                "merge_group": v.current.get("merge_group"),
                "status": v.status,
                "main_unit": v.current.get("main_unit"),
            }
            if m != rep.id:
                pair = pairs.get((min(m, rep.id), max(m, rep.id)))
                row["score"] = round(pair.score, 4) if pair is not None else None
                row["kind"] = pair.kind if pair is not None else None
                if evidence:
                    row["evidence"] = _evidence(rep.text, p.text)
            rows.append(row)
        scores = [
            round(pr.score, 4)
            for (a, b), pr in pairs.items()
            if a in set(members) | {rep.id} and b in set(members) | {rep.id}
        ]
        same_year = [r for r in rows if r["year"] == year]
        merged = {r["merge_group"] for r in same_year}
        out.append(
            {
                "label": g.label,
                "representative": {"year": rep.year, "id": rep.pid, "title": rep.title},
                "members": rows,
                "pairs": len(scores),
                "best_score": max(scores) if scores else None,
                "min_score": min(scores) if scores else None,
                # Merges are recorded within a year: earlier years' members are references.
                "mergeable": len(same_year) >= 2,
                "merged": len(same_year) >= 2 and len(merged) == 1 and None not in merged,
            }
        )
    return out


def _evidence(a: str, b: str) -> dict[str, Any]:
    """Shared passages of two texts, as short snippets with their total length."""
    from model.evidence import pair_evidence

    passages = pair_evidence(a, b)["passages"]
    snippets = []
    for x in passages[:3]:
        # A passage may start or end on a mark (overlap is found on characters): trim them.
        text = a[x["a_start"] : x["a_end"]].strip("，。；、：！？,.;:!? \n")
        snippets.append(text if len(text) <= SNIPPET else text[: SNIPPET - 1] + "…")
    return {
        "shared_chars": sum(x["a_end"] - x["a_start"] for x in passages),
        "passages": snippets,
    }


@router.get("")
def list_duplicates(year: YearQuery, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """Pairs (best first) and suggested groups (representative first)."""
    pairs = list(
        session.scalars(
            select(DuplicatePair)
            .where(DuplicatePair.year == year)
            .order_by(DuplicatePair.score.desc())
        )
    )
    groups = list(session.scalars(select(DuplicateGroup).where(DuplicateGroup.year == year)))
    ids = {x for p in pairs for x in (p.proposal_a, p.proposal_b)} | {
        int(m) for g in groups for m in [*g.members, g.representative_id]
    }
    names = _names(session, ids)
    return {
        "year": year,
        "pairs": [
            {
                "a": names[p.proposal_a],
                "b": names[p.proposal_b],
                "score": round(p.score, 4),
                "kind": p.kind,
            }
            for p in pairs
        ],
        "groups": [
            {
                "label": g.label,
                "representative": names[g.representative_id],
                "members": [names[int(m)] for m in g.members],
            }
            for g in groups
        ],
    }


@router.get("/groups")
def list_groups(year: YearQuery, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """The year's merge groups with members' state, pair scores and shared passages."""
    return {"year": year, "groups": year_groups(session, year, evidence=True)}
