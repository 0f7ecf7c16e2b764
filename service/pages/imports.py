"""The import page: upload a file, then watch its progress (or read why it was refused)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from service.deps import CurrentUser, FormCsrf, StateDep, WriterUser
from service.pages.common import render
from service.queries import submit_import
from service.uploads import save_upload

router = APIRouter(include_in_schema=False)


@router.get("/import", response_class=HTMLResponse)
def import_page(request: Request, user: WriterUser) -> HTMLResponse:
    return render(request, "import.html", user=user)


@router.post("/import", dependencies=[FormCsrf])
async def import_upload(
    request: Request,
    state: StateDep,
    user: WriterUser,
    file: Annotated[UploadFile, File()],
    year: str = Form(default=""),
    update: str = Form(default=""),
) -> Response:
    path, name = await save_upload(
        file, state.settings.data_dir / "uploads", state.settings.max_upload_bytes
    )
    default_year = int(year) if year.strip().isdigit() else None
    # Off the event loop: queueing may wait for the database (see service.api.imports).
    job = await run_in_threadpool(
        submit_import, state, path, name, user.id, default_year, bool(update)
    )
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: int, state: StateDep, user: CurrentUser) -> HTMLResponse:
    job = state.jobs.get(job_id)
    return render(
        request, "job.html", 200 if job else 404, user=user, job=job.to_dict() if job else None
    )
