"""The model admin page: bundles in the registry, promote one, roll back."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from model.registry import KIND_TEXT
from service.deps import AdminUser, CurrentUser, FormCsrf, StateDep, WriterUser
from service.pages.common import render
from service.registry_runtime import ModelUnavailable

router = APIRouter(include_in_schema=False)


def _page(
    request: Request, state: StateDep, user: object, status: int = 200, **extra: object
) -> HTMLResponse:
    state.runtime.sync(wait=True)  # a promotion from the command line shows here at once
    try:
        bundles, note = state.runtime.list(), None
    except ModelUnavailable as exc:
        bundles, note = [], str(exc)
    live = state.runtime.current
    with state.factory() as session:
        from sqlalchemy import select

        from service.models import Proposal

        years = list(
            session.scalars(select(Proposal.year).distinct().order_by(Proposal.year.desc()))
        )
    registered = next((b["version"] for b in bundles if b["is_live"]), None)
    return render(
        request,
        "models.html",
        status,
        user=user,
        bundles=bundles,
        registry_notice=note,
        live=live.version if live else None,
        live_kind=KIND_TEXT.get(live.kind, live.kind) if live else None,
        registered=registered,
        previous=state.runtime.rollback_target(),
        years=years,
        **extra,
    )


@router.get("/models", response_class=HTMLResponse)
def models_page(request: Request, state: StateDep, user: CurrentUser) -> HTMLResponse:
    return _page(request, state, user, message=None, error=None)


@router.post("/models/{version}/promote", dependencies=[FormCsrf])
async def promote(request: Request, version: str, state: StateDep, user: AdminUser) -> Response:
    try:
        await run_in_threadpool(state.runtime.promote, version)
    except ModelUnavailable as exc:
        return _page(request, state, user, 409, message=None, error=str(exc))
    return RedirectResponse(f"/models?done=promote&v={quote(version)}", status_code=303)


@router.post("/models/rollback", dependencies=[FormCsrf])
async def rollback(request: Request, state: StateDep, user: AdminUser) -> Response:
    try:
        await run_in_threadpool(state.runtime.rollback)
    except ModelUnavailable as exc:
        return _page(request, state, user, 409, message=None, error=str(exc))
    live = state.runtime.current
    back = quote(live.version) if live else ""
    return RedirectResponse(f"/models?done=rollback&v={back}", status_code=303)


@router.post("/analyse", dependencies=[FormCsrf])
def analyse(
    request: Request, state: StateDep, user: WriterUser, year: str = Form(default="")
) -> Response:
    """Re-run suggestions (for the live model), duplicates and topics of a year."""
    from service.queries import queue_analysis

    if not year.isdigit() or not 1900 <= int(year) <= 2100:
        return _page(request, state, user, 422, message=None, error="请选择要重新分析的年度。")
    job = queue_analysis(state, [int(year)], None, owner_id=user.id)  # 429 past the limit
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)
