"""Reference topics (提案参考题目): upload a year's list, list them, coverage."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, UploadFile
from sqlalchemy import select

from service.api.common import YearQuery
from service.deps import CurrentUser, SessionDep, StateDep, WriterUser
from service.models import Proposal, Topic, TopicMatch
from service.uploads import save_upload

router = APIRouter(prefix="/api/topics", tags=["topics"])


@router.post("", status_code=201)
async def upload_topics(
    state: StateDep,
    session: SessionDep,
    user: WriterUser,
    year: Annotated[int, Form(ge=1900, le=2100)],
    file: Annotated[UploadFile, File(description="CSV/XLSX with topic_id,topic or TXT one a line")],
) -> dict[str, Any]:
    """Add or update a year's topics (all or nothing), then recompute the year's matches."""
    from model.topics import read_topics
    from service.api.imports import queue_analysis
    from service.bootstrap import store_topics

    path, name = await save_upload(
        file, state.settings.data_dir / "uploads", state.settings.max_upload_bytes
    )
    try:
        topics = read_topics(path)
    except (ValueError, OSError) as exc:
        raise HTTPException(422, f"{name}: {str(exc).replace(str(path), name)}") from None
    finally:
        path.unlink(missing_ok=True)
    added, changed = store_topics(session, year, topics)
    session.commit()
    job = queue_analysis(state, [year], []) if added or changed else None
    return {
        "year": year,
        "topics": len(topics),
        "added": added,
        "updated": changed,
        "analysis_job": job.id if job else None,
    }


@router.get("")
def list_topics(year: YearQuery, session: SessionDep, user: CurrentUser) -> list[dict[str, Any]]:
    rows = session.scalars(select(Topic).where(Topic.year == year).order_by(Topic.topic_id))
    return [{"topic_id": t.topic_id, "topic": t.topic} for t in rows]


def coverage_report(session: Any, year: int, threshold: float = 0.5) -> dict[str, Any]:
    """How many of the year's proposals answer each topic (``model.topics.coverage``)."""
    from model.topics import Topic as ModelTopic
    from model.topics import TopicMatch as ModelMatch
    from model.topics import coverage

    topics = list(session.scalars(select(Topic).where(Topic.year == year).order_by(Topic.topic_id)))
    by_row = {t.id: t.topic_id for t in topics}
    props = {p.id: p.pid for p in session.scalars(select(Proposal).where(Proposal.year == year))}
    ranked: dict[int, list[tuple[str, float]]] = {pid: [] for pid in props}
    if props:
        rows = session.scalars(
            select(TopicMatch)
            .where(TopicMatch.proposal_id.in_(list(props)))
            .order_by(TopicMatch.rank)
        )
        for m in rows:
            if m.topic_row_id in by_row:
                ranked[m.proposal_id].append((by_row[m.topic_row_id], m.score))
    matches = [
        ModelMatch(props[i], r, no_topic=not r or r[0][1] < threshold)
        for i, r in ranked.items()
        if r
    ]
    report = coverage(
        matches, [ModelTopic(t.topic_id, t.topic) for t in topics], threshold=threshold
    )
    report["year"] = year
    report["proposals_not_matched_yet"] = sum(1 for r in ranked.values() if not r)
    return report


@router.get("/coverage")
def topic_coverage(year: YearQuery, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """Proposals per topic, topics with none, proposals that answer no topic."""
    return coverage_report(session, year)
