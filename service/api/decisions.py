"""The decision audit trail of a year (read only: decisions are never changed)."""

from __future__ import annotations

from fastapi import APIRouter, Query
from sqlalchemy import select

from service.deps import CurrentUser, SessionDep
from service.models import Decision, Proposal
from service.queries import YearQuery
from service.review import decision_dict
from service.schemas import DecisionOut

router = APIRouter(prefix="/api/decisions", tags=["decisions"])


@router.get("", response_model=list[DecisionOut], response_model_exclude_unset=True)
def list_decisions(
    year: YearQuery,
    session: SessionDep,
    user: CurrentUser,
    limit: int = Query(default=500, ge=1, le=10_000),
    offset: int = Query(default=0, ge=0),
) -> list[dict[str, object]]:
    """Decisions of the year's proposals, oldest first."""
    rows = session.execute(
        select(Decision, Proposal)
        .join(Proposal, Proposal.id == Decision.proposal_id)
        .where(Proposal.year == year)
        .order_by(Decision.id)
        .offset(offset)
        .limit(limit)
    )
    return [decision_dict(d, p.pid, p.year) for d, p in rows]
