"""Proposals: the filtered queue, one proposal in full, its decisions and duplicates."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from service.deps import CurrentUser, SessionDep, WriterUser
from service.models import Decision
from service.queries import YearPath, YearQuery, duplicates_of, get_proposal, proposal_detail
from service.review import (
    SORTS,
    DecisionError,
    StaleDecision,
    decision_dict,
    queue,
    record_decision,
    views,
)
from service.schemas import (
    DecisionMade,
    DecisionOut,
    ProposalDetail,
    ProposalDuplicates,
    ProposalList,
)

router = APIRouter(prefix="/api/proposals", tags=["proposals"])


@router.get("", response_model=ProposalList, response_model_exclude_unset=True)
def list_proposals(
    session: SessionDep,
    user: CurrentUser,
    year: YearQuery,
    status: Literal["pending", "reviewed"] | None = None,
    category: str | None = None,
    unit: str | None = None,
    min_confidence: float | None = Query(default=None, ge=0, le=1),
    max_confidence: float | None = Query(default=None, ge=0, le=1),
    needs_attention: bool | None = None,
    likely_duplicate: bool | None = None,
    q: str | None = Query(default=None, max_length=200),
    sort: str = "id",
    descending: bool = False,
    limit: int = Query(default=100, ge=1, le=5000),
    offset: int = Query(default=0, ge=0),
) -> dict[str, Any]:
    """The year's review queue with filters and sorting (``sort``: id, confidence, status, category)."""
    if sort not in SORTS:
        raise HTTPException(422, f"unknown sort {sort!r}; use one of {', '.join(SORTS)}")
    items = queue(
        session,
        year,
        status=status,
        category=category,
        unit=unit,
        min_confidence=min_confidence,
        max_confidence=max_confidence,
        needs_attention=needs_attention,
        q=q,
        sort=sort,
        descending=descending,
    )
    if likely_duplicate is not None:
        items = [v for v in items if v.likely_duplicate == likely_duplicate]
    page = items[offset : offset + limit]
    return {"total": len(items), "items": [_brief(v.to_dict()) for v in page]}


def _brief(d: dict[str, Any]) -> dict[str, Any]:
    d.pop("suggestion", None)
    return d


@router.get("/{year}/{pid}", response_model=ProposalDetail, response_model_exclude_unset=True)
def get_one(year: YearPath, pid: str, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """One proposal: suggestion, why, duplicates, topics and decisions."""
    return proposal_detail(session, get_proposal(session, year, pid))


@router.get(
    "/{year}/{pid}/duplicates", response_model=ProposalDuplicates, response_model_exclude_unset=True
)
def get_duplicates(
    year: YearPath, pid: str, session: SessionDep, user: CurrentUser
) -> dict[str, Any]:
    """Likely duplicates with the overlapping passages (character offsets into each text)."""
    p = get_proposal(session, year, pid)
    return {
        "id": p.pid,
        "year": p.year,
        "text": p.text,
        "duplicates": duplicates_of(session, p, True),
    }


class DecisionIn(BaseModel):
    """One reviewer action (see :func:`service.review.record_decision`)."""

    action: Literal["accept", "set", "merge", "unmerge"]
    field: Literal["category", "main_unit", "co_units"] | None = None
    value: str | list[str] | None = Field(default=None)
    note: str = Field(default="", max_length=1000)
    previous_value: str | list[str] | dict[str, str | list[str] | None] | None = Field(
        default=None,
        description="the value this decision replaces, as the reviewer saw it (409 when it is "
        "no longer current); for accept without a field, an object by field; for merge and "
        "unmerge, the proposal's merge group",
    )
    replace: bool = Field(
        default=False,
        description="accept without a field: also replace values the import or a reviewer gave",
    )

    def expected(self) -> dict[str, Any] | None:
        """``previous_value`` as a map of field to value (None when it was not sent)."""
        if "previous_value" not in self.model_fields_set:
            return None
        if self.action in ("merge", "unmerge"):
            return {"merge_group": self.previous_value}
        if self.field:
            return {self.field: self.previous_value}
        if not isinstance(self.previous_value, dict):
            raise HTTPException(422, "采纳全部建议时 previous_value 应为按字段给出的对象")
        return dict(self.previous_value)


@router.get(
    "/{year}/{pid}/decisions", response_model=list[DecisionOut], response_model_exclude_unset=True
)
def list_decisions(
    year: YearPath, pid: str, session: SessionDep, user: CurrentUser
) -> list[dict[str, Any]]:
    p = get_proposal(session, year, pid)
    rows = session.scalars(
        select(Decision).where(Decision.proposal_id == p.id).order_by(Decision.id)
    )
    return [decision_dict(d, p.pid, p.year) for d in rows]


@router.post(
    "/{year}/{pid}/decisions",
    status_code=201,
    response_model=DecisionMade,
    response_model_exclude_unset=True,
)
def add_decision(
    year: YearPath, pid: str, body: DecisionIn, session: SessionDep, user: WriterUser
) -> dict[str, Any]:
    """Record a decision; returns the decision rows made and the proposal's new state."""
    p = get_proposal(session, year, pid)
    try:
        made = record_decision(
            session,
            p,
            user,
            action=body.action,
            field_name=body.field,
            value=body.value,
            note=body.note,
            previous=body.expected(),
            replace=body.replace,
        )
    except StaleDecision as exc:
        session.rollback()
        raise HTTPException(409, str(exc)) from None
    except DecisionError as exc:
        session.rollback()
        raise HTTPException(422, str(exc)) from None
    session.commit()
    return {
        "decisions": [decision_dict(d, p.pid, p.year) for d in made],
        "kept": made.kept,
        "proposal": _brief(views(session, [p])[0].to_dict()),
    }
