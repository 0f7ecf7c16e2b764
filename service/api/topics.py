"""Reference topics (提案参考题目): upload a year's list, list them, coverage."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Response, UploadFile
from pydantic import BaseModel, Field
from sqlalchemy import select

from service.deps import CurrentUser, SessionDep, StateDep, WriterUser
from service.models import Proposal, Topic
from service.queries import YearPath, YearQuery, coverage_report, get_proposal, queue_analysis
from service.schemas import CoverageOut, TopicDecisionOut, TopicOut, TopicsStored, file_response
from service.uploads import save_upload

router = APIRouter(prefix="/api/topics", tags=["topics"])


@router.post("", status_code=201, response_model=TopicsStored, response_model_exclude_unset=True)
async def upload_topics(
    state: StateDep,
    session: SessionDep,
    user: WriterUser,
    year: Annotated[int, Form(ge=1900, le=2100)],
    file: Annotated[UploadFile, File(description="CSV/XLSX with topic_id,topic or TXT one a line")],
) -> dict[str, Any]:
    """Add or update a year's topics (all or nothing), then recompute the year's matches."""
    from starlette.concurrency import run_in_threadpool

    from model.topics import read_topics
    from service.bootstrap import store_topics

    path, name = await save_upload(
        file, state.settings.data_dir / "uploads", state.settings.max_upload_bytes
    )

    def store() -> tuple[list[Any], int, int, Any]:
        # Off the event loop: reading the file and writing may wait (SQLite's write lock),
        # and a wait there would stop every other request, /healthz included.
        try:
            topics = read_topics(path)
        except (ValueError, OSError) as exc:
            raise HTTPException(422, f"{name}: {str(exc).replace(str(path), name)}") from None
        finally:
            path.unlink(missing_ok=True)
        added, changed = store_topics(session, year, topics)
        session.commit()
        job = queue_analysis(state, [year], []) if added or changed else None
        return topics, added, changed, job

    topics, added, changed, job = await run_in_threadpool(store)
    return {
        "year": year,
        "topics": len(topics),
        "added": added,
        "updated": changed,
        "analysis_job": job.id if job else None,
    }


@router.get("", response_model=list[TopicOut], response_model_exclude_unset=True)
def list_topics(year: YearQuery, session: SessionDep, user: CurrentUser) -> list[dict[str, Any]]:
    rows = session.scalars(select(Topic).where(Topic.year == year).order_by(Topic.topic_id))
    return [{"topic_id": t.topic_id, "topic": t.topic} for t in rows]


@router.get("/coverage", response_model=CoverageOut, response_model_exclude_unset=True)
def topic_coverage(year: YearQuery, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """Proposals per topic, topics with none, proposals that answer no topic."""
    return coverage_report(session, year)


class TopicDecisionIn(BaseModel):
    """A reviewer's topics for one proposal: the year's topic ids (empty: answers none)."""

    topics: list[Annotated[str, Field(max_length=100)]] = Field(max_length=20)
    confirm: bool = Field(default=False, description="taking the model's match as it is")
    note: str = Field(default="", max_length=1000)


@router.post(
    "/{year}/{pid}",
    status_code=201,
    response_model=TopicDecisionOut,
    response_model_exclude_unset=True,
)
def decide_topics(
    year: YearPath, pid: str, body: TopicDecisionIn, session: SessionDep, user: WriterUser
) -> dict[str, Any]:
    """Confirm or assign the reference topics a proposal answers (stored as a decision)."""
    from service.topic_review import TopicDecisionError, record_topics

    p = get_proposal(session, year, pid)
    try:
        d = record_topics(session, p, user, body.topics, confirm=body.confirm, note=body.note)
    except TopicDecisionError as exc:
        raise HTTPException(422, {"code": "bad_topic", "message": str(exc)}) from None
    session.commit()
    return {"year": year, "id": pid, "topics": d.new_value, "action": d.action}


ASSIGNMENT_HEADER = ("提案号", "案由", "参考题目编号", "参考题目", "来源")


def topic_assignments(session: Any, year: int) -> list[tuple[str, str, str, str, str]]:
    """One row per (proposal, topic) it answers; a proposal with none gets one empty row."""
    report = coverage_report(session, year)
    texts = {t["topic_id"]: t["topic"] for t in report["topics"]}
    by_proposal: dict[str, list[str]] = {}
    for t in report["topics"]:
        for pid in t["proposals"]:
            by_proposal.setdefault(pid, []).append(t["topic_id"])
    confirmed = set(report["confirmed_proposals"])
    out = []
    for p in session.scalars(select(Proposal).where(Proposal.year == year).order_by(Proposal.pid)):
        source = "审核确认" if p.pid in confirmed else "模型匹配"
        tids = by_proposal.get(p.pid, [])
        if not tids:
            out.append((p.pid, p.title, "", "", source + "（无对应题目）"))
        for tid in tids:
            out.append((p.pid, p.title, tid, texts.get(tid, ""), source))
    return out


@router.get(
    "/{year}/assignments.csv",
    response_class=Response,
    responses=file_response("text/csv", "proposals and the topics they answer (CSV)"),
)
def export_assignments(year: YearPath, session: SessionDep, user: CurrentUser) -> Response:
    """Proposals and the topics they answer (reviewer decisions first), as CSV for Excel."""
    import csv
    import io

    from model.formulas import neutralise

    buf = io.StringIO()
    buf.write("\ufeff")  # Excel opens UTF-8 CSV correctly only with a BOM
    writer = csv.writer(buf)
    writer.writerow(ASSIGNMENT_HEADER)
    for row in topic_assignments(session, year):
        writer.writerow([neutralise(v) for v in row])
    name = f"topics_{year}.csv"
    return Response(
        buf.getvalue().encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
