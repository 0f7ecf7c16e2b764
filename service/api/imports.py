"""Imports of proposal files (all or nothing) and the progress of background jobs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, UploadFile
from fastapi.responses import JSONResponse
from sqlalchemy import select

from service.deps import CurrentUser, SessionDep, StateDep, WriterUser
from service.importer import ImportRejected
from service.jobs import Job
from service.models import ImportBatch
from service.queries import YearQuery, queue_analysis, rejection, run_import, submit_import
from service.schemas import ImportBatchOut, ImportOut, ImportRejectedOut, JobOut, JobQueued
from service.uploads import save_upload

router = APIRouter(prefix="/api", tags=["imports"])


@router.post(
    "/imports",
    response_model=ImportOut,
    status_code=201,
    responses={
        200: {"model": ImportOut, "description": "nothing new: every row was already stored"},
        202: {"model": JobQueued, "description": "wait=false: the job to poll"},
        422: {"model": ImportRejectedOut, "description": "rejected: row-level errors"},
        429: {"description": "too many jobs queued or running for this user"},
    },
)
async def create_import(
    state: StateDep,
    user: WriterUser,
    file: Annotated[UploadFile, File(description="XLSX, CSV or JSONL export of proposals")],
    year: int | None = Form(
        default=None, ge=1900, le=2100, description="year for rows without one"
    ),
    update: bool = Form(default=False, description="replace stored rows whose content changed"),
    wait: bool = Form(default=True, description="false: answer 202 at once with a job to poll"),
) -> JSONResponse:
    """Import a file in one transaction; any bad row rejects the whole file (422 + errors).

    Every import is a job (``/api/jobs/N``), also with ``wait=true``, where the answer comes
    when it has finished.
    """
    path, name = await save_upload(
        file, state.settings.data_dir / "uploads", state.settings.max_upload_bytes
    )
    user_id = user.id
    from starlette.concurrency import run_in_threadpool

    # Queueing writes to the database, which may wait (SQLite's single write lock): never on
    # the event loop, where the wait would stop every other request, /healthz included.
    if not wait:
        job = await run_in_threadpool(submit_import, state, path, name, user_id, year, update)
        return JSONResponse({"job": job.id, "status_url": f"/api/jobs/{job.id}"}, status_code=202)
    try:
        job = await run_in_threadpool(state.jobs.create, "import", user_id)
    except HTTPException:
        path.unlink(missing_ok=True)
        raise
    outcome: dict[str, Any] = {}

    def work(j: Job) -> dict[str, Any]:
        try:
            outcome["out"] = run_import(state, path, name, user_id, year, update, j)
        except ImportRejected as exc:
            outcome["rejected"] = exc
            raise
        return outcome["out"]

    await run_in_threadpool(state.jobs.run, job, work)
    if "rejected" in outcome:
        body = rejection(outcome["rejected"])
        return JSONResponse({**body, "job": job.id}, status_code=422)
    if "out" not in outcome:
        raise HTTPException(500, job.message)
    out = {**outcome["out"], "job": job.id}
    return JSONResponse(out, status_code=201 if out["added"] or out["updated"] else 200)


@router.get("/imports", response_model=list[ImportBatchOut], response_model_exclude_unset=True)
def list_imports(session: SessionDep, user: CurrentUser) -> list[dict[str, Any]]:
    """Accepted imports, newest first."""
    rows = session.scalars(select(ImportBatch).order_by(ImportBatch.id.desc()).limit(200))
    return [
        {
            "id": b.id,
            "file_name": b.file_name,
            "sha256": b.sha256,
            "rows": b.rows,
            "added": b.added,
            "updated": b.updated,
            "unchanged": b.unchanged,
            "at": b.created_at.isoformat(),
        }
        for b in rows
    ]


@router.get("/jobs/{job_id}", response_model=JobOut, response_model_exclude_unset=True)
def get_job(job_id: int, state: StateDep, user: CurrentUser) -> dict[str, Any]:
    """Progress of a background job (imports, analysis); kept in the database.

    ``status`` is queued, running, done, failed or interrupted (its worker stopped).
    """
    job = state.jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"没有编号为 {job_id} 的任务")
    return job.to_dict()


@router.post(
    "/analyse",
    status_code=202,
    response_model=JobQueued,
    response_model_exclude_unset=True,
    responses={429: {"description": "too many jobs"}},
)
def analyse_year(year: YearQuery, state: StateDep, user: WriterUser) -> dict[str, Any]:
    """Recompute missing suggestions, duplicates and topics of a year."""
    job = queue_analysis(state, [year], None, owner_id=user.id)
    return {"job": job.id, "status_url": f"/api/jobs/{job.id}"}
