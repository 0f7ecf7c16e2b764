"""Helpers shared by the API routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Path, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import Proposal

YEAR_MIN, YEAR_MAX = 1900, 2100
# Bounded years: an unbounded int reaches the database and overflows its integer type.
YearPath = Annotated[int, Path(ge=YEAR_MIN, le=YEAR_MAX, description="year, e.g. 2024")]
YearQuery = Annotated[int, Query(ge=YEAR_MIN, le=YEAR_MAX, description="year, e.g. 2024")]
OptionalYearQuery = Annotated[int | None, Query(ge=YEAR_MIN, le=YEAR_MAX)]


def get_proposal(session: Session, year: int, pid: str) -> Proposal:
    """The proposal ``pid`` of ``year``, else 404."""
    p = session.scalar(select(Proposal).where(Proposal.year == year, Proposal.pid == pid))
    if p is None:
        raise HTTPException(404, f"no proposal {pid!r} in {year}")
    return p
