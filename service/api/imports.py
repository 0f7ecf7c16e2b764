"""Imports of proposal files (all or nothing) and the progress of background jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, UploadFile
from fastapi.responses import JSONResponse
from sqlalchemy import select

from service.api.common import YearQuery
from service.deps import CurrentUser, SessionDep, StateDep, WriterUser
from service.importer import ImportRejected, import_file
from service.jobs import Job
from service.models import ImportBatch
from service.state import AppState
from service.uploads import save_upload

router = APIRouter(prefix="/api", tags=["imports"])


def run_import(
    state: AppState, path: Path, name: str, user_id: int, year: int | None, update: bool, job: Job
) -> dict[str, Any]:
    """The import job: store the file, then queue the follow-up analysis. Removes ``path``."""
    try:
        result = import_file(
            state.factory,
            path,
            file_name=name,
            user_id=user_id,
            default_year=year,
            update=update,
            progress=lambda done, total, msg: job.progress(done, total, msg),
        )
    except ImportRejected as exc:
        job.result = rejection(exc)
        raise
    finally:
        path.unlink(missing_ok=True)
    out = result.to_dict()
    if result.changed_ids:
        out["analysis_job"] = queue_analysis(state, result.years, result.changed_ids).id
    return out


def queue_analysis(state: AppState, years: list[int], ids: list[int] | None) -> Job:
    """Queue suggestions, duplicates and topics for ``years`` (after an import or promotion)."""
    from service.analysis import analyse

    def work(job: Job) -> dict[str, Any]:
        return analyse(
            state.factory,
            state.runtime,
            state.encoders,
            years=years,
            proposal_ids=ids,
            threshold=state.settings.dedup_threshold,
            job=job,
        )

    return state.jobs.submit("analysis", work)


def rejection(exc: ImportRejected) -> dict[str, Any]:
    return {
        "detail": f"{exc.file_name}: the file was rejected and nothing was stored",
        "file_name": exc.file_name,
        "errors": [i.to_dict() for i in exc.issues],
        "more_errors": exc.more,
    }


@router.post("/imports", responses={422: {"description": "rejected: row-level errors"}})
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
    """Import a file in one transaction; any bad row rejects the whole file (422 + errors)."""
    path, name = await save_upload(
        file, state.settings.data_dir / "uploads", state.settings.max_upload_bytes
    )
    user_id = user.id
    if not wait:
        job = state.jobs.submit(
            "import", lambda j: run_import(state, path, name, user_id, year, update, j)
        )
        return JSONResponse({"job": job.id, "status_url": f"/api/jobs/{job.id}"}, status_code=202)
    from starlette.concurrency import run_in_threadpool

    job = Job(id=0, kind="import")
    try:
        out = await run_in_threadpool(run_import, state, path, name, user_id, year, update, job)
    except ImportRejected as exc:
        return JSONResponse(rejection(exc), status_code=422)
    return JSONResponse(out, status_code=201 if out["added"] or out["updated"] else 200)


@router.get("/imports")
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


@router.get("/jobs/{job_id}")
def get_job(job_id: int, state: StateDep, user: CurrentUser) -> dict[str, Any]:
    """Progress of a background job (imports, analysis)."""
    job = state.jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id} (jobs are kept in memory until restart)")
    return job.to_dict()


@router.post("/analyse", status_code=202)
def analyse_year(year: YearQuery, state: StateDep, user: WriterUser) -> dict[str, Any]:
    """Recompute missing suggestions, duplicates and topic matches of a year."""
    job = queue_analysis(state, [year], None)
    return {"job": job.id, "status_url": f"/api/jobs/{job.id}"}
