"""Likely duplicate pairs and suggested merge groups (并案) of a year."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import select

from service.api.common import YearQuery
from service.deps import CurrentUser, SessionDep
from service.models import DuplicateGroup, DuplicatePair, Proposal

router = APIRouter(prefix="/api/duplicates", tags=["duplicates"])


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
        int(m) for g in groups for m in g.members
    }
    names = (
        {
            p.id: {"year": p.year, "id": p.pid, "title": p.title}
            for p in session.scalars(select(Proposal).where(Proposal.id.in_(list(ids))))
        }
        if ids
        else {}
    )
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
