"""The draft check page (提案预审): paste a draft or upload .txt/.docx, see what the office sees."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse

from service.deps import CurrentUser, FormCsrf, SessionDep, StateDep
from service.drafts import MAX_CONTENT, MAX_TITLE, DraftError, check_draft
from service.pages.common import render

router = APIRouter(include_in_schema=False)

MAX_FILE_BYTES = 5 * 1024 * 1024
HEAD_TEXT = {"category": "类别", "main_unit": "主办单位", "co_units": "协办单位"}


@router.get("/drafts", response_class=HTMLResponse)
def draft_page(request: Request, user: CurrentUser) -> HTMLResponse:
    """The empty form."""
    return render(request, "draft.html", user=user, title="", content="", result=None, error=None)


@router.post("/drafts", response_class=HTMLResponse, dependencies=[FormCsrf])
async def draft_check(
    request: Request,
    state: StateDep,
    session: SessionDep,
    user: CurrentUser,
    title: str = Form(default="", max_length=MAX_TITLE),
    content: str = Form(default="", max_length=MAX_CONTENT),
    file: Annotated[UploadFile | None, File()] = None,
) -> HTMLResponse:
    """Check the pasted (or uploaded) draft; the page shows the result, nothing is kept."""
    from model.draft_check import read_draft

    def page(status: int = 200, **extra: object) -> HTMLResponse:
        context: dict[str, object] = {"title": title, "content": content, "result": None}
        context["error"] = None
        context.update(extra)
        return render(request, "draft.html", status, user=user, heads=HEAD_TEXT, **context)

    if file is not None and file.filename:
        data = await file.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            return page(413, error="文件超过 5 MB，请只上传提案正文。")
        try:
            title, content = read_draft(data, file.filename)
        except ValueError as exc:
            return page(422, error=f"{exc}。")
    try:
        result = check_draft(state, session, title, content, user_id=user.id)
    except DraftError as exc:
        return page(422, error=str(exc))
    finally:
        session.rollback()
    return page(result=result)
