"""``POST /api/drafts/check``: the draft check (提案预审) for one draft, nothing stored."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from service.deps import CurrentUser, SessionDep, StateDep
from service.drafts import MAX_CONTENT, MAX_TITLE, DraftError, check_draft
from service.schemas import DraftCheckOut

router = APIRouter(prefix="/api/drafts", tags=["drafts"])


class DraftIn(BaseModel):
    """One draft: its 案由 and 提案内容 (a member's text; it is neither stored nor logged)."""

    title: str = Field(default="", max_length=MAX_TITLE)
    content: str = Field(default="", max_length=MAX_CONTENT)


@router.post("/check", response_model=DraftCheckOut, response_model_exclude_unset=True)
def check(body: DraftIn, state: StateDep, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """Form remarks, similar proposals (year, 案由, unit, state), topics, category and unit.

    Open to every signed-in role, and the only data route open to ``member``.
    """
    try:
        return check_draft(state, session, body.title, body.content, user_id=user.id)
    except DraftError as exc:
        raise HTTPException(422, str(exc)) from exc
    finally:
        session.rollback()  # a check never writes
