"""``POST /api/suggest``: suggestions for a text that is not stored."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field, model_validator

from service.analysis import suggest_texts
from service.deps import CurrentUser, StateDep
from service.schemas import SuggestOut

router = APIRouter(prefix="/api", tags=["suggest"])


class SuggestIn(BaseModel):
    """Either ``text``, or ``title`` and/or ``content``."""

    text: str | None = Field(default=None, max_length=40_000)
    title: str | None = Field(default=None, max_length=1_000)
    content: str | None = Field(default=None, max_length=40_000)
    top_k: int = Field(default=3, ge=1, le=20)

    @model_validator(mode="after")
    def _some_text(self) -> SuggestIn:
        if not (self.text or self.title or self.content):
            raise ValueError("give text, or title and/or content")
        return self

    def joined(self) -> str:
        from model.text import normalize_text

        if self.text:
            return normalize_text(self.text)
        return "\n".join(normalize_text(x) for x in (self.title, self.content) if x)


@router.post("/suggest", response_model=SuggestOut, response_model_exclude_unset=True)
def suggest(body: SuggestIn, state: StateDep, user: CurrentUser) -> SuggestOut:
    """Category, main unit and co-units (calibrated, best first), abstain flags and why."""
    live = state.runtime.current
    if live is None:
        raise HTTPException(503, state.runtime.notice or "no model is deployed")
    text = body.joined()
    if not text.strip():
        raise HTTPException(422, "the text is empty after normalisation")
    row: dict[str, Any] = dict(suggest_texts(live, ["text"], [text], top_k=body.top_k)[0])
    row.pop("id", None)  # the text has no id: it is not stored
    for head in ("category", "main_unit", "co_units"):
        row[head] = list(row.get(head) or [])[: body.top_k]
    return SuggestOut.model_validate({**row, "model_version": live.version})
