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


def model_labels(state: AppState) -> dict[str, list[str]]:
    """The live model's label sets (empty without a live model)."""
    live = state.runtime.current
    labels = getattr(live.classifier, "labels", None) if live is not None else None
    return dict(labels) if isinstance(labels, dict) else {}


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
            known_labels=model_labels(state),
            timeout_s=state.settings.import_timeout_s,
            memory_mb=state.settings.import_memory_mb,
            job_id=job.id if job.id > 0 else None,
        )
    except ImportRejected as exc:
        job.result = rejection(exc)
        raise
    finally:
        path.unlink(missing_ok=True)
    out = result.to_dict()
    if result.changed_ids:
        # The follow-up is the system's, not the user's: it never counts against their limit.
        out["analysis_job"] = queue_analysis(
            state, result.years, result.changed_ids, limited=False
        ).id
    return out


def queue_analysis(
    state: AppState,
    years: list[int],
    ids: list[int] | None,
    *,
    owner_id: int | None = None,
    limited: bool = True,
) -> Job:
    """Queue suggestions, duplicates and topics for ``years`` (after an import or promotion).

    A reviewer's own request counts against their job limit (429 past it); the analysis an
    import queues for itself (``limited=False``) does not.
    """
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

    return state.jobs.submit("analysis", work, owner_id, limited=limited)


def rejection(exc: ImportRejected) -> dict[str, Any]:
    """The body of a 422 and the ``result`` of a rejected import job (Chinese messages)."""
    return {
        "detail": exc.user_message,
        "code": "import_rejected",
        "file_name": exc.file_name,
        "errors": [i.to_dict() for i in exc.issues],
        "more_errors": exc.more,
    }


def submit_import(
    state: AppState, path: Path, name: str, user_id: int, year: int | None, update: bool
) -> Job:
    """Queue an import job (429 past the user's job limit; the upload is then removed)."""
    try:
        return state.jobs.submit(
            "import", lambda j: run_import(state, path, name, user_id, year, update, j), user_id
        )
    except HTTPException:
        path.unlink(missing_ok=True)
        raise


@router.post(
    "/imports",
    responses={
        422: {"description": "rejected: row-level errors"},
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
    """Progress of a background job (imports, analysis); kept in the database.

    ``status`` is queued, running, done, failed or interrupted (its worker stopped).
    """
    job = state.jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"没有编号为 {job_id} 的任务")
    return job.to_dict()


@router.post("/analyse", status_code=202, responses={429: {"description": "too many jobs"}})
def analyse_year(year: YearQuery, state: StateDep, user: WriterUser) -> dict[str, Any]:
    """Recompute missing suggestions, duplicates and topics of a year."""
    job = queue_analysis(state, [year], None, owner_id=user.id)
    return {"job": job.id, "status_url": f"/api/jobs/{job.id}"}
