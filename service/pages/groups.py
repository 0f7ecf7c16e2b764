"""The 并案 page: the year's suggested merge groups, with merge and split."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from service.deps import CurrentUser, FormCsrf, SessionDep, WriterUser
from service.models import Proposal
from service.pages.common import render, this_year
from service.queries import OptionalYearQuery, YearPath, get_proposal, year_groups
from service.review import DecisionError, record_decision, views

router = APIRouter(include_in_schema=False)

DONE_TEXT = {
    "merge": "已保存：{n} 件提案已并入同一并案组。",
    "split": "已保存：{n} 件提案已取消并案。",
    "remove": "已保存：提案已移出并案组。",
}


def _years(session: Any) -> list[int]:
    return list(session.scalars(select(Proposal.year).distinct().order_by(Proposal.year.desc())))


def _page(
    request: Request,
    session: Any,
    user: object,
    year: int,
    status: int = 200,
    error: str | None = None,
) -> HTMLResponse:
    done = request.query_params.get("done")
    count = request.query_params.get("n", "")
    message = DONE_TEXT[done].format(n=count) if done in DONE_TEXT else None
    return render(
        request,
        "groups.html",
        status,
        user=user,
        year=year,
        years=_years(session),
        groups=year_groups(session, year, evidence=True),
        message=message,
        error=error,
    )


@router.get("/groups", response_class=HTMLResponse)
def groups_page(
    request: Request, session: SessionDep, user: CurrentUser, year: OptionalYearQuery = None
) -> HTMLResponse:
    all_years = _years(session)
    return _page(request, session, user, year or (all_years[0] if all_years else this_year()))


@router.post("/groups/{year}/merge", dependencies=[FormCsrf])
def merge_group(
    request: Request,
    year: YearPath,
    session: SessionDep,
    user: WriterUser,
    members: Annotated[list[str] | None, Form()] = None,
    note: str = Form(default="", max_length=1000),
) -> Response:
    """Merge the chosen proposals of the year into one group (whole groups join)."""
    pids = list(dict.fromkeys(m.strip() for m in members or [] if m.strip()))
    if len(pids) < 2:
        return _page(request, session, user, year, 422, "请至少选择同一年度的两件提案再并案。")
    try:
        first = get_proposal(session, year, pids[0])
        record_decision(session, first, user, action="merge", value=pids[1:], note=note)
    except DecisionError as exc:
        session.rollback()
        return _page(request, session, user, year, 422, str(exc))
    session.commit()
    return RedirectResponse(f"/groups?year={year}&done=merge&n={len(pids)}", status_code=303)


@router.post("/groups/{year}/split", dependencies=[FormCsrf])
def split_group(
    request: Request,
    year: YearPath,
    session: SessionDep,
    user: WriterUser,
    members: Annotated[list[str] | None, Form()] = None,
    remove: str = Form(default="", max_length=100),
    note: str = Form(default="", max_length=1000),
) -> Response:
    """Take proposals out of their merge groups: ``remove`` (one, 移出) or ``members`` (拆分)."""
    chosen = [remove] if remove else members or []
    pids = list(dict.fromkeys(m.strip() for m in chosen if m.strip()))
    done = 0
    try:
        for pid in pids:
            p = get_proposal(session, year, pid)
            if not views(session, [p])[0].current.get("merge_group"):
                continue
            record_decision(session, p, user, action="unmerge", note=note)
            session.commit()
            done += 1
    except DecisionError as exc:
        session.rollback()
        return _page(request, session, user, year, 422, str(exc))
    if not done:
        return _page(request, session, user, year, 422, "所选提案都未并案，无需拆分。")
    kind = "remove" if len(pids) == 1 else "split"
    return RedirectResponse(f"/groups?year={year}&done={kind}&n={done}", status_code=303)


def group_link(year: int, label: str) -> str:
    """The 并案 page anchored at one group."""
    return f"/groups?year={year}#{quote(label)}"
