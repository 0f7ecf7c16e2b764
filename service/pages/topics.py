"""The proposal page's topic form: a reviewer confirms or assigns reference topics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from service.deps import FormCsrf, SessionDep, WriterUser
from service.queries import YearPath, get_proposal
from service.topic_review import TopicDecisionError, confirmed_topics, record_topics

router = APIRouter(include_in_schema=False)


@router.post("/proposals/{year}/{pid}/topics", dependencies=[FormCsrf])
def save_topics(
    request: Request,
    year: YearPath,
    pid: str,
    session: SessionDep,
    user: WriterUser,
    topics: Annotated[list[str] | None, Form()] = None,
    none: str = Form(default=""),
    note: str = Form(default="", max_length=1000),
) -> Response:
    """Store the ticked topics (or none) as the reviewer's topic decision."""
    from service.pages.common import render
    from service.pages.review import proposal_context

    p = get_proposal(session, year, pid)
    chosen = [] if none else [t for t in topics or [] if t.strip()]
    before = confirmed_topics(session, [p.id]).get(p.id)
    try:
        record_topics(session, p, user, chosen, note=note)
    except TopicDecisionError as exc:
        session.rollback()
        return render(
            request,
            "proposal.html",
            422,
            user=user,
            error=str(exc),
            **proposal_context(request, session, p),
        )
    session.commit()
    what = "none" if not chosen else ("changed" if before is not None else "topics")
    return RedirectResponse(f"/proposals/{year}/{pid}?saved_topics={what}#topics", status_code=303)
