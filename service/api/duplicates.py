"""Likely duplicate pairs and suggested merge groups (并案) of a year."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.deps import CurrentUser, SessionDep
from service.models import DuplicateGroup, DuplicatePair, Proposal
from service.queries import YearQuery, year_groups
from service.schemas import DuplicatesOut, MergeGroups

router = APIRouter(prefix="/api/duplicates", tags=["duplicates"])


def _names(session: Session, ids: set[int]) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    return {
        p.id: {"year": p.year, "id": p.pid, "title": p.title}
        for p in session.scalars(select(Proposal).where(Proposal.id.in_(list(ids))))
    }


@router.get("", response_model=DuplicatesOut, response_model_exclude_unset=True)
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


@router.get("/groups", response_model=MergeGroups, response_model_exclude_unset=True)
def list_groups(year: YearQuery, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """The year's merge groups with members' state, pair scores and shared passages."""
    return {"year": year, "groups": year_groups(session, year, evidence=True)}
